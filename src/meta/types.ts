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
  /**
   * Families of images: [height, width, channels] of one input, flattened row-major (h, w, c) into
   * its inputDim values. What a conv body convolves over; absent where inputs are not images.
   */
  readonly inputShape?: readonly [number, number, number];
  /** Draws one episode from the given split (held-out tasks live in 'val' and 'test'). */
  sampleEpisode(rng: Rng, split: Split, shape: EpisodeShape): Episode;
  /**
   * A fixed pool of training tasks for meta-training by hard parameter sharing (multitask): `size`
   * tasks drawn from `rng` by a generator; a dataset's own training tasks; a family whose classes keep
   * their identity across episodes (digits) pools them as one task over all its training classes.
   */
  trainingPool?(rng: Rng, size: number): TaskPool;
}

/**
 * Training tasks that one shared body learns jointly, each through its own output head. Task t's
 * targets are values (regression) or labels of its own classes, 0..outputs[t]-1 (classification).
 */
export interface TaskPool {
  /** Outputs of each task's head: 1 for regression, its number of classes for classification. */
  readonly outputs: readonly number[];
  /** `n` labelled examples of task `t` (classification: each of a class drawn uniformly). */
  examples(t: number, rng: Rng, n: number): Examples;
}

/** A minibatch of a task pool: `tasks` pool tasks with `n` examples each, packed task-major. */
export interface PoolBatch {
  tasks: number;
  inputDim: number;
  n: number;
  /** Pool index of each task: [tasks]. */
  taskIds: Int32Array;
  /** Outputs of each task's head (TaskPool.outputs of its pool index): [tasks]. */
  outputs: Int32Array;
  /** [tasks, n, inputDim] and [tasks, n] (labels in the pool task's own classes). */
  x: Float32Array;
  y: Float32Array;
}

/** What one meta-training iteration consumes: a meta-batch of episodes, or a minibatch of a task pool. */
export type TrainingBatch = EpisodeBatch | PoolBatch;

/** Whether a training batch is a pool minibatch (it carries pool task ids). */
export function isPoolBatch(batch: TrainingBatch): batch is PoolBatch {
  return 'taskIds' in batch;
}
