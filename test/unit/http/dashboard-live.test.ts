/** The dashboard's live curve: the running accuracy or MSE over a task's last scored examples. */
import { describe, expect, it } from 'vitest';
import { formatLive, liveCurve } from '../../../web/dashboard/live.js';

describe('liveCurve', () => {
  it('is the running mean of the per-example scores, one point per scored example', () => {
    expect(liveCurve([1, 0, 1, 1])).toEqual([[1, 1], [2, 0.5], [3, 2 / 3], [4, 0.75]]);
    expect(liveCurve([0.5, 1.5])).toEqual([[1, 0.5], [2, 1]]);
    expect(liveCurve([])).toEqual([]);
  });

  it('formats accuracy as a percentage and MSE with three figures, and nothing before a score', () => {
    expect(formatLive({ metric: 'accuracy', value: 0.87, scored: 100 })).toBe('accuracy 87.0% (of 100)');
    expect(formatLive({ metric: 'mse', value: 0.031234, scored: 40 })).toBe('MSE 0.0312 (of 40)');
    expect(formatLive({ metric: 'mse', value: null, scored: 0 })).toBe('');
  });
});
