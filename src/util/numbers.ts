/** Numbers as the service accepts them: decimal text, and values that stay finite as float32. */

/** The largest finite float32: a value beyond it becomes Infinity once stored as float32. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/** Whether `value` stays a finite number as float32 (false for NaN, ±Infinity and beyond FLOAT32_MAX). */
export function isFiniteFloat32(value: number): boolean {
  return Math.abs(value) <= FLOAT32_MAX;
}

/**
 * A number written in decimal: optional sign, digits with an optional fraction, optional exponent.
 * Stricter than `Number(text)`, which also takes '', blanks, hex, binary and 'Infinity'.
 */
export const DECIMAL_NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** A number as JSON can carry it: NaN and ±Infinity (a diverged loss) become null. */
export function finiteOrNull(value: number): number | null {
  return Number.isFinite(value) ? value : null;
}
