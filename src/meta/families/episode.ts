/**
 * Pieces every family shares: checking an episode shape, drawing distinct indices cheaply, and the
 * held-out task pools that make 'val' and 'test' tasks disjoint from training ones.
 */

import { Rng } from '../rng.js';
import type { Episode, EpisodeShape, Examples, TaskFamily } from '../types.js';

/** An episode shape that a family cannot serve (bad numbers, too many ways or shots). */
export class EpisodeShapeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EpisodeShapeError';
  }
}

function positiveInt(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 1) throw new EpisodeShapeError(`${name} must be a positive integer, got ${value}`);
}

/** Validates shots and queryShots; returns them. */
export function checkShape(shape: EpisodeShape): { shots: number; queryShots: number } {
  positiveInt(shape.shots, 'shots');
  positiveInt(shape.queryShots, 'queryShots');
  return { shots: shape.shots, queryShots: shape.queryShots };
}

/**
 * The number of ways an episode of a classification family draws: `shape.ways` when given (at least 2,
 * at most `maxWays`), else the family's own.
 */
export function resolveWays(family: Pick<TaskFamily, 'name' | 'ways'>, shape: EpisodeShape, maxWays: number): number {
  const ways = shape.ways ?? family.ways;
  if (ways === undefined) throw new EpisodeShapeError(`family '${family.name}' needs ways for classification episodes`);
  if (!Number.isInteger(ways) || ways < 2) throw new EpisodeShapeError(`ways must be an integer >= 2, got ${ways}`);
  if (ways > maxWays) throw new EpisodeShapeError(`family '${family.name}' can draw at most ${maxWays} ways, asked for ${ways}`);
  return ways;
}

/**
 * k distinct indices from [0, n) in random order. Equivalent in distribution to `rng.sample`, but
 * draws by rejection when k is small next to n, so picking 15 of 1,000 images costs 15 draws, not 1,000.
 */
export function sampleDistinct(rng: Rng, n: number, k: number): number[] {
  if (k > n) throw new EpisodeShapeError(`cannot draw ${k} distinct items from ${n}`);
  if (k * 4 > n) return rng.sample(n, k);
  const seen = new Set<number>();
  const out: number[] = [];
  while (out.length < k) {
    const i = rng.int(n);
    if (!seen.has(i)) {
      seen.add(i);
      out.push(i);
    }
  }
  return out;
}

/** Mixes a seed with a salt into a new 32-bit seed (murmur3 finaliser): one stream per split. */
export function deriveSeed(seed: number, salt: number): number {
  let h = (seed ^ Math.imul(salt, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

const SPLIT_SALT = { val: 0x76616c, test: 0x74657374 } as const;

/**
 * The fixed tasks of a held-out split: `count` tasks drawn from a stream derived from `seed` and the
 * split's salt. Training tasks come from the caller's rng instead, so the two never share a stream,
 * and evaluation always meets the same tasks, which keeps validation curves comparable across runs.
 */
export function heldOutPool<T>(seed: number, split: 'val' | 'test', count: number, draw: (rng: Rng) => T): T[] {
  const rng = new Rng(deriveSeed(seed, SPLIT_SALT[split]));
  return Array.from({ length: count }, () => draw(rng));
}

/** Writes example `j` (0 <= j < shots + queryShots) of class `way` into `out` at `offset`. */
export type FillExample = (way: number, j: number, out: Float32Array, offset: number) => void;

/**
 * Builds an N-way episode, class-major: for each class its first `shots` examples go to the support
 * set and the next `queryShots` to the query set, labelled with the class's episode index 0..N-1.
 */
export function classificationEpisode(inputDim: number, ways: number, shots: number, queryShots: number, fill: FillExample): Episode {
  const part = (count: number, first: number): Examples => {
    const n = ways * count;
    const x = new Float32Array(n * inputDim);
    const y = new Float32Array(n);
    for (let way = 0; way < ways; way++) {
      for (let j = 0; j < count; j++) {
        const row = way * count + j;
        fill(way, first + j, x, row * inputDim);
        y[row] = way;
      }
    }
    return { x, y, n };
  };
  return { support: part(shots, 0), query: part(queryShots, shots) };
}
