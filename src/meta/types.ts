/**
 * The engine's shared vocabulary. Task families produce episodes in these shapes; the algorithms,
 * the training loop and adaptation consume them. Plain typed arrays (no tensors) so that data can be
 * built, stored and tested without a tfjs backend, and turned into tensors in one place.
 */

import type { Rng } from './rng.js';

export const TASK_KINDS = ['regression', 'classification'] as const;
export type TaskKind = (typeof TASK_KINDS)[number];
export type Split = 'train' | 'val' | 'test';

/** Labelled examples of one task: `x` is row-major [n, inputDim]; `y` is [n] (a value, or a class index). */
export interface Examples {
  x: Float32Array;
  y: Float32Array;
  n: number;
}

/** One task drawn for one episode: a support set to adapt on and a query set to evaluate on. */
export interface Episode {
  support: Examples;
  query: Examples;
}

/**
 * A meta-batch: `tasks` episodes with the same number of support and query examples each, packed
 * task-major so the engine can run the whole meta-batch as batched tensor ops.
 * support.x is [tasks, supportSize, inputDim], support.y is [tasks, supportSize]; the same for query.
 */
export interface EpisodeBatch {
  tasks: number;
  inputDim: number;
  supportSize: number;
  querySize: number;
  support: { x: Float32Array; y: Float32Array };
  query: { x: Float32Array; y: Float32Array };
}

/** What an episode looks like: for regression `shots` support and `queryShots` query points;
 * for classification `ways` classes with `shots` (and `queryShots`) examples per class. */
export interface EpisodeShape {
  shots: number;
  queryShots: number;
  ways?: number;
}

/** A source of tasks: a seeded generator or a stored dataset. Sampling is a pure function of the rng. */
export interface TaskFamily {
  readonly name: string;
  readonly kind: TaskKind;
  readonly inputDim: number;
  /** Classification families: the number of classes an episode draws (N-way). */
  readonly ways?: number;
  /** Draws one episode from the given split (held-out tasks live in 'val' and 'test'). */
  sampleEpisode(rng: Rng, split: Split, shape: EpisodeShape): Episode;
}
