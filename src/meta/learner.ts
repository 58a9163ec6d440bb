/**
 * A meta-learner: an algorithm, its meta-parameters and the outer-loop optimiser. `metaStep` is one
 * outer-loop iteration on one meta-batch; `evaluate` measures post-adaptation query loss. The
 * training generator (train.ts) and the benchmark drive it.
 */

import { tf } from './backend.js';
import { Adam, clipByGlobalNorm, globalNorm, type AdamState } from './adam.js';
import { getAlgorithm, type AlgorithmName, type InnerSettings, type MetaAlgorithm, type MetaGradient } from './algorithms/index.js';
import { accuracy, taskLoss } from './losses.js';
import { forward, toArrays, toTensors, type ModelSpec, type NamedTensors, type ParamArrays } from './model.js';
import type { Rng } from './rng.js';
import { batchToTensors, sliceEpisodeBatch, type BatchTensors } from './tensors.js';
import type { EpisodeBatch } from './types.js';

/** 'batched': the whole meta-batch as batched tensor ops; 'loop': one task at a time (baseline, tests). */
export type MetaStepMode = 'batched' | 'loop';

export interface LearnerConfig {
  algorithm: AlgorithmName;
  spec: ModelSpec;
  inner: InnerSettings;
  /** Adam step size of the outer loop. */
  metaLr: number;
  /** Clip the meta-gradient to this global L2 norm; no clipping when absent. */
  clipNorm?: number;
}

/** A loss or gradient that is NaN or infinite: training stops instead of storing it. */
export class NonFiniteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NonFiniteError';
  }
}

/** Post-adaptation quality on a meta-batch of held-out tasks. */
export interface Evaluation {
  loss: number;
  /** Classification only. */
  accuracy?: number;
}

export class MetaLearner {
  readonly algorithm: MetaAlgorithm;
  readonly spec: ModelSpec;
  readonly inner: InnerSettings;
  readonly clipNorm?: number;
  private theta: NamedTensors;
  private readonly optimizer: Adam;

  /**
   * @param params - initial meta-parameters (see initMetaParams) or those of a checkpoint.
   * @param optimizerState - Adam state to continue from (resuming a checkpoint); fresh when absent.
   */
  constructor(config: LearnerConfig, params: ParamArrays, optimizerState?: AdamState) {
    this.algorithm = getAlgorithm(config.algorithm);
    if (!this.algorithm.kinds.includes(config.spec.kind)) {
      throw new RangeError(`algorithm '${config.algorithm}' does not support ${config.spec.kind} tasks`);
    }
    this.spec = config.spec;
    this.inner = { ...config.inner };
    this.clipNorm = config.clipNorm;
    this.theta = tf.tidy(() => toTensors(params));
    this.optimizer = new Adam({ lr: config.metaLr }, params, optimizerState);
  }

  /** The meta-parameters as tensors (owned by the learner: do not dispose). */
  get params(): NamedTensors {
    return this.theta;
  }

  /** One outer-loop iteration; returns the meta-batch's mean post-adaptation query loss. */
  metaStep(batch: EpisodeBatch, mode: MetaStepMode = 'batched'): number {
    const previous = this.theta;
    const { loss, params } = tf.tidy(() => {
      const { loss, grads } = mode === 'batched' ? this.batchedGradient(batch) : this.loopGradient(batch);
      const norm = globalNorm(grads);
      // One download per iteration: the loss and the gradient norm together.
      const [lossValue, normValue] = tf.stack([loss, norm]).dataSync();
      if (!Number.isFinite(lossValue) || !Number.isFinite(normValue)) {
        throw new NonFiniteError(
          `meta-${Number.isFinite(lossValue) ? 'gradient' : 'loss'} is not finite (loss ${lossValue}, gradient norm ${normValue}); ` +
            'lower innerLr or metaLr, or set clipNorm',
        );
      }
      const clipped = this.clipNorm === undefined ? grads : clipByGlobalNorm(grads, norm, this.clipNorm);
      return { loss: lossValue, params: this.optimizer.step(this.theta, clipped) };
    });
    this.theta = params;
    tf.dispose(previous);
    return loss;
  }

  /** The meta-gradient of a meta-batch computed as batched ops across its tasks (caller tidies). */
  batchedGradient(batch: EpisodeBatch): MetaGradient {
    const tensors: BatchTensors = batchToTensors(this.spec, batch);
    return this.algorithm.metaGradient(this.spec, this.theta, tensors, this.inner);
  }

  /** The same meta-gradient task by task, averaged (caller tidies). */
  loopGradient(batch: EpisodeBatch): MetaGradient {
    let loss: tf.Scalar = tf.scalar(0);
    let grads: NamedTensors = Object.fromEntries(Object.entries(this.theta).map(([n, p]) => [n, tf.zerosLike(p)]));
    for (let t = 0; t < batch.tasks; t++) {
      const [nextLoss, nextGrads] = tf.tidy(() => {
        const one = this.algorithm.metaGradient(this.spec, this.theta, batchToTensors(this.spec, sliceEpisodeBatch(batch, t)), this.inner);
        const summed = Object.fromEntries(Object.entries(grads).map(([n, g]) => [n, tf.add(g, one.grads[n])]));
        return [tf.add(loss, one.loss) as tf.Scalar, summed] as const;
      });
      tf.dispose([loss, grads]);
      loss = nextLoss;
      grads = nextGrads;
    }
    const scale = tf.scalar(1 / batch.tasks);
    return {
      loss: tf.mul(loss, scale),
      grads: Object.fromEntries(Object.entries(grads).map(([n, g]) => [n, tf.mul(g, scale)])),
    };
  }

  /** Adapts to every task's support set and measures the query set (no meta-update). */
  evaluate(batch: EpisodeBatch): Evaluation {
    const values = tf.tidy(() => {
      const tensors = batchToTensors(this.spec, batch);
      const adapted = this.algorithm.adapt(this.spec, this.theta, tensors.support, this.inner);
      const output = forward(this.spec, adapted, tensors.query.x);
      const loss = tf.mean(taskLoss(this.spec.kind, output, tensors.query.y));
      if (this.spec.kind === 'regression') return [loss.dataSync()[0]];
      return Array.from(tf.stack([loss, tf.mean(accuracy(output, tensors.query.y))]).dataSync());
    });
    if (!values.every(Number.isFinite)) throw new NonFiniteError(`validation loss is not finite (${values[0]})`);
    return values.length === 2 ? { loss: values[0], accuracy: values[1] } : { loss: values[0] };
  }

  /** The meta-parameters as plain data. */
  exportParams(): ParamArrays {
    return toArrays(this.theta);
  }

  /** The optimiser's state as plain data. */
  exportOptimizer(): AdamState {
    return this.optimizer.getState();
  }

  dispose(): void {
    tf.dispose(this.theta);
    this.optimizer.dispose();
  }
}

/** Initial meta-parameters for a learner configuration, drawn from `rng`. */
export function initMetaParams(config: LearnerConfig, rng: Rng): ParamArrays {
  return getAlgorithm(config.algorithm).initMetaParams(config.spec, rng, config.inner);
}

/** One outer-loop iteration of `learner` on `batch` (see MetaLearner.metaStep). */
export function metaStep(learner: MetaLearner, batch: EpisodeBatch, mode: MetaStepMode = 'batched'): number {
  return learner.metaStep(batch, mode);
}
