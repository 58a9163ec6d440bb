/**
 * A task family backed by a generator of task parameters (sinusoid amplitude and phase, blob means,
 * ...). Training tasks are fresh draws from the caller's rng; 'val' and 'test' tasks come from fixed
 * held-out pools (see heldOutPool), so held-out evaluation never meets a task the meta-learner
 * trained on and always meets the same ones.
 */

import type { Rng } from '../rng.js';
import type { Episode, EpisodeShape, Examples, Split, TaskFamily, TaskKind, TaskPool } from '../types.js';
import { checkShape, heldOutPool } from './episode.js';
import { numberParam, type RawParams } from './params.js';

/** How a generator draws one task and one episode of it. */
export interface TaskGenerator<T> {
  readonly kind: TaskKind;
  readonly inputDim: number;
  readonly ways?: number;
  drawTask(rng: Rng): T;
  episode(task: T, rng: Rng, shape: EpisodeShape): Episode;
  /** Outputs of a task's own head (1 for regression, its classes for classification). */
  readonly outputs: number;
  /** `n` labelled examples of a task, labels in its own classes (a task pool's minibatches). */
  examples(task: T, rng: Rng, n: number): Examples;
}

/** Held-out pool settings every generator accepts. */
export interface HeldOutParams {
  /** Seed of the 'val' and 'test' task pools. Default 0. */
  heldOutSeed: number;
  /** Tasks in each held-out pool. Default 100. */
  heldOutTasks: number;
}

export const HELD_OUT_KEYS = ['heldOutSeed', 'heldOutTasks'] as const;

export function readHeldOut(params: RawParams, path: string): HeldOutParams {
  return {
    heldOutSeed: numberParam(params, 'heldOutSeed', path, 0, { min: 0, max: 2 ** 32 - 1, integer: true }),
    heldOutTasks: numberParam(params, 'heldOutTasks', path, 100, { min: 1, max: 10_000, integer: true }),
  };
}

export class GeneratedFamily<T> implements TaskFamily {
  readonly kind: TaskKind;
  readonly inputDim: number;
  readonly ways?: number;
  private readonly pools: { val?: T[]; test?: T[] } = {};

  constructor(
    readonly name: string,
    private readonly generator: TaskGenerator<T>,
    private readonly heldOut: HeldOutParams,
  ) {
    this.kind = generator.kind;
    this.inputDim = generator.inputDim;
    if (generator.ways !== undefined) this.ways = generator.ways;
  }

  /** The fixed tasks of a held-out split (built on first use). */
  heldOutTasks(split: 'val' | 'test'): readonly T[] {
    this.pools[split] ??= heldOutPool(this.heldOut.heldOutSeed, split, this.heldOut.heldOutTasks, (rng) =>
      this.generator.drawTask(rng),
    );
    return this.pools[split];
  }

  /** One task of a split: a fresh draw for 'train', a pool member for 'val' and 'test'. */
  sampleTask(rng: Rng, split: Split): T {
    if (split === 'train') return this.generator.drawTask(rng);
    const pool = this.heldOutTasks(split);
    return pool[rng.int(pool.length)];
  }

  /** An episode of a given task (e.g. one from heldOutTasks). */
  episodeFor(task: T, rng: Rng, shape: EpisodeShape): Episode {
    checkShape(shape);
    return this.generator.episode(task, rng, shape);
  }

  sampleEpisode(rng: Rng, split: Split, shape: EpisodeShape): Episode {
    return this.episodeFor(this.sampleTask(rng, split), rng, shape);
  }

  /** `size` training tasks drawn from `rng`, fixed from then on. */
  trainingPool(rng: Rng, size: number): TaskPool {
    const tasks = Array.from({ length: size }, () => this.generator.drawTask(rng));
    return { outputs: tasks.map(() => this.generator.outputs), examples: (t, r, n) => this.generator.examples(tasks[t], r, n) };
  }
}

/** A regression task: a function of one input row. */
export interface RegressionTask {
  /** The task's parameters (e.g. [amplitude, phase]), for inspection and tests. */
  readonly params: readonly number[];
  value(x: Float32Array, offset: number): number;
}

/** Settings shared by the regression generators. */
export interface RegressionSampling {
  inputDim: number;
  /** Inputs are uniform in this interval in every dimension. */
  x: readonly [number, number];
  /** Standard deviation of Gaussian noise added to targets. */
  noise: number;
}

/** `n` examples of a regression task: inputs uniform in the sampling interval, targets from the task. */
export function regressionExamples(task: RegressionTask, rng: Rng, n: number, s: RegressionSampling): Examples {
  const x = new Float32Array(n * s.inputDim);
  const y = new Float32Array(n);
  for (let i = 0; i < x.length; i++) x[i] = rng.uniform(s.x[0], s.x[1]);
  for (let i = 0; i < n; i++) {
    // Targets are computed from the float32 inputs the model will see, not the float64 draws.
    y[i] = task.value(x, i * s.inputDim) + (s.noise > 0 ? s.noise * rng.normal() : 0);
  }
  return { x, y, n };
}

/** A regression episode: `shots` support and `queryShots` query points of one task. */
export function regressionEpisode(task: RegressionTask, rng: Rng, shape: EpisodeShape, s: RegressionSampling): Episode {
  const { shots, queryShots } = checkShape(shape);
  return { support: regressionExamples(task, rng, shots, s), query: regressionExamples(task, rng, queryShots, s) };
}

/** Options of the family constructors. */
export interface FamilyOptions {
  /** The family's name. Default: the generator's type. */
  name?: string;
  /** Where the parameters sit in the caller's input, for error paths. Default 'params'. */
  path?: string;
}
