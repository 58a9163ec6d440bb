import { describe, expect, it } from 'vitest';
import { DECIMAL_NUMBER, FLOAT32_MAX, isFiniteFloat32 } from '../../../src/util/numbers.js';

describe('numbers', () => {
  it('FLOAT32_MAX is the largest float32 that stays finite', () => {
    expect(Float32Array.of(FLOAT32_MAX)[0]).toBe(FLOAT32_MAX);
    expect(Float32Array.of(FLOAT32_MAX * (1 + 1e-7))[0]).toBe(Infinity);
    expect([0, -1.5, FLOAT32_MAX, -FLOAT32_MAX].every(isFiniteFloat32)).toBe(true);
    expect([NaN, Infinity, -Infinity, 1e39, -1e39].some(isFiniteFloat32)).toBe(false);
  });

  it('DECIMAL_NUMBER takes decimal text only', () => {
    for (const text of ['0', '-1', '+2.5', '.5', '5.', '1e-3', '-2.5E+10']) expect(DECIMAL_NUMBER.test(text), text).toBe(true);
    for (const text of ['', ' ', ' 1', '0x10', '0b1', 'Infinity', 'NaN', '1e', '.', '1,2', '--1']) expect(DECIMAL_NUMBER.test(text), text).toBe(false);
  });
});
