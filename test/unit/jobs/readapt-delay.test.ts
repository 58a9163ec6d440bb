/** readapt auto's chain: the next adaptation waits out READAPT_DELAY_MS from the previous one's start, no more. */
import { describe, expect, it } from 'vitest';
import { chainDelayMs } from '../../../src/jobs/adapt-processor.js';

describe('chainDelayMs', () => {
  it('waits the rest of the delay after a quick adaptation, and none after a slow one', () => {
    expect(chainDelayMs(40, 1_000, 1_010)).toBe(30);
    expect(chainDelayMs(40, 1_000, 1_040)).toBe(0);
    expect(chainDelayMs(40, 1_000, 1_250)).toBe(0);
    expect(chainDelayMs(0, 1_000, 1_000)).toBe(0);
  });
});
