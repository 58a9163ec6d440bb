/**
 * bench:meta's figures over runs (bench/meta-runs.ts): a row over runs is the median of every run's
 * figure with its [min, max], and the fastest PyTorch form is the one fastest in most rounds of all
 * runs, so that no single run's figure (or a lucky round) becomes the headline.
 */
import { describe, expect, it } from 'vitest';
import { summarise, type TimingRun } from '../../../bench/meta-runs.js';
import { quartiles, type Row } from '../../../bench/meta-timing.js';

const load = { start: [1, 1, 1], end: [1, 1, 1] };

function row(msPerIteration: number, speedupVsPytorch: number, fastest: Record<'batched' | 'functorch' | 'loop', number>, task = 'sinusoid'): Row {
  return {
    algorithm: 'maml',
    backend: 'fused-wasm',
    task,
    msPerIteration,
    msPerIterationIqr: [msPerIteration, msPerIteration],
    naiveLoopMsPerIteration: 10 * msPerIteration,
    naiveLoopMsPerIterationIqr: [10 * msPerIteration, 10 * msPerIteration],
    speedup: 10,
    pytorchMsPerIteration: { batched: speedupVsPytorch * msPerIteration, functorch: 5, loop: 20 },
    pytorchMsPerIterationIqr: { batched: [1, 1], functorch: [5, 5], loop: [20, 20] },
    pytorchFastestForm: 'batched',
    pytorchFastestRounds: fastest,
    speedupVsPytorch,
    speedupVsPytorchIqr: [speedupVsPytorch, speedupVsPytorch],
    roundsMs: { engine: { batched: [msPerIteration], loop: [10 * msPerIteration] } },
  };
}

describe('bench:meta over runs', () => {
  it('reports each row as the median over runs with the range, and the form fastest in most rounds of all runs', () => {
    const runs: TimingRun[] = [
      { run: 1, loadAverage: load, rows: [row(0.9, 4.4, { batched: 9, functorch: 0, loop: 0 }), row(2, 3, { batched: 9, functorch: 0, loop: 0 }, 'digits')] },
      { run: 2, loadAverage: load, rows: [row(0.7, 5.9, { batched: 2, functorch: 7, loop: 0 }), row(2.2, 3.2, { batched: 9, functorch: 0, loop: 0 }, 'digits')] },
      { run: 3, loadAverage: load, rows: [row(0.92, 4.2, { batched: 3, functorch: 6, loop: 0 }), row(2.1, 3.1, { batched: 9, functorch: 0, loop: 0 }, 'digits')] },
    ];
    const [sinusoid, digits] = summarise(runs);
    expect(sinusoid).toMatchObject({ task: 'sinusoid', runs: 3, msPerIteration: 0.9, msPerIterationRange: [0.7, 0.92], speedupVsPytorch: 4.4, speedupVsPytorchRange: [4.2, 5.9] });
    // functorch was fastest in 13 of the 27 rounds, batched in 14: batched, though two of three runs' medians say functorch.
    expect(sinusoid).toMatchObject({ pytorchFastestRounds: { batched: 14, functorch: 13, loop: 0 }, pytorchFastestForm: 'batched' });
    expect(digits).toMatchObject({ task: 'digits', msPerIteration: 2.1, msPerIterationRange: [2, 2.2], speedupVsPytorch: 3.1, speedupVsPytorchRange: [3, 3.2] });
  });

  it('keeps a row without PyTorch figures without them', () => {
    // A row of an algorithm bench/pytorch does not implement (multitask) has no PyTorch fields.
    const bare = Object.fromEntries(Object.entries(row(1, 1, { batched: 9, functorch: 0, loop: 0 })).filter(([key]) => !/^(pytorch|speedupVs)/.test(key))) as unknown as Row;
    const [summary] = summarise([{ run: 1, loadAverage: load, rows: [bare] }]);
    expect(summary).toMatchObject({ runs: 1, msPerIteration: 1 });
    expect(summary).not.toHaveProperty('speedupVsPytorch');
  });

  it('takes quartiles between order statistics', () => {
    expect(quartiles([9, 1, 8, 2, 7, 3, 6, 4, 5])).toEqual([3, 7]);
    expect(quartiles([1, 2, 3, 4])).toEqual([1.75, 3.25]);
    expect(quartiles([5])).toEqual([5, 5]);
  });
});
