/**
 * The seeded split of an uploaded family without a `split` column: its tasks (or, for a class pool,
 * its classes) shuffled with a fixed seed and dealt 70/15/15 into train/val/test, so the same upload
 * always gets the same split and no task or class is in two splits.
 */
import { Rng } from '../rng.js';
import type { Split } from '../types.js';

export const SPLIT_FRACTIONS: Readonly<Record<Split, number>> = { train: 0.7, val: 0.15, test: 0.15 };

/** Fixed: a split must not change between two commits of the same rows. */
const SPLIT_SEED = 15;

/**
 * Each key's split. Keys are sorted first, so the order they arrive in does not matter; each split
 * gets at least one key.
 * @throws RangeError for fewer than 3 distinct keys (nothing could be held out).
 */
export function seededSplits(keys: readonly string[]): Map<string, Split> {
  const sorted = [...new Set(keys)].sort();
  const out = new Map<string, Split>();
  if (sorted.length < 3) throw new RangeError(`${sorted.length} tasks or classes cannot be split three ways`);
  new Rng(SPLIT_SEED).shuffle(sorted);
  const n = sorted.length;
  const val = Math.max(1, Math.round(n * SPLIT_FRACTIONS.val));
  const test = Math.max(1, Math.round(n * SPLIT_FRACTIONS.test));
  sorted.forEach((key, i) => out.set(key, i < val ? 'val' : i < val + test ? 'test' : 'train'));
  return out;
}
