import { describe, expect, it } from 'vitest';
import { withTimeout } from '../../../src/util/timeout.js';

const after = <T>(ms: number, value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));

describe('withTimeout', () => {
  it('passes through what settles in time, success or failure', async () => {
    await expect(withTimeout(after(5, 'ok'), 1_000)).resolves.toBe('ok');
    await expect(withTimeout(Promise.reject(new Error('refused')), 1_000)).rejects.toThrow('refused');
  });

  it('rejects with the default or the given error once ms pass first', async () => {
    await expect(withTimeout(after(1_000, 'late'), 10)).rejects.toThrow('no answer within 10 ms');
    await expect(withTimeout(new Promise(() => {}), 10, () => new RangeError('Postgres did not answer'))).rejects.toThrow(RangeError);
  });

  it('leaves no timer behind once the work settled', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    await withTimeout(Promise.resolve(1), 60_000);
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBe(before);
  });
});
