/**
 * A meta-learner: an algorithm, its meta-parameters and the outer-loop optimiser. `metaStep` is one
 * outer-loop iteration on one meta-batch (a pool minibatch for an algorithm that trains on a task
 * pool); `evaluate` measures post-adaptation query loss. The training generator (train.ts) and the
 * benchmark drive it.
 */

import { tf, tidyValues } from './backend.js';
import { Adam, clipScale, globalNorm, type AdamState, type Gradients } from './adam.js';
import { getAlgorithm, POOL_PREFIX, type AlgorithmName, type InnerSettings, type MetaAlgorithm, type MetaGradient } from './algorithms/index.js';
import { chooseEngine, type EngineName, type EnginePreference } from './engine.js';
import { slicePoolBatch } from './families/pool.js';
import { fusedEvaluate, fusedMetaGradient } from './fused/index.js';
import { embedBatch, ortMetaGradient, withoutBody } from './ort/index.js';
import { DEFAULT_GUARD } from './guard.js';
import { accuracy, taskLoss } from './losses.js';
import { activationWidth, copyArrays, forward, HEAD_NAMES, toTensors, type ModelSpec, type NamedTensors, type ParamArrays } from './model.js';
import type { Rng } from './rng.js';
import { batchToTensors, sliceEpisodeBatch, type BatchTensors } from './tensors.js';
import { isPoolBatch, type EpisodeBatch, type TaskKind, type TrainingBatch } from './types.js';
import { drainYielding } from '../util/yielding.js';

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
  /**
   * Every task's head starts at zero: the learner sets the head to zero and never meta-trains it
   * (hyper.zeroHead). Adaptation needs nothing of its own: it starts from the stored head, zero.
   */
  zeroHead?: boolean;
  /** Which engine computes meta-gradients and evaluations. Default 'auto' (see chooseEngine). */
  engine?: EnginePreference;
}

/** Activation values one evaluation chunk may hold (examples x activationWidth): 2^24, 64 MiB of float32. */
const EVALUATION_ACTIVATIONS = 2 ** 24;

/** A loss, gradient or optimiser step that is NaN or infinite: training stops instead of storing it. */
export class NonFiniteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NonFiniteError';
  }
}

/** Post-adaptation quality on a meta-batch of held-out tasks. */
export interface Evaluation {
  /** Mean query loss over the tasks. */
  loss: number;
  /** Mean query accuracy over the tasks (classification only). */
  accuracy?: number;
  /** Each task's query loss, in the batch's order: the spread behind the mean (its confidence interval). */
  taskLosses: number[];
  /** Each task's query accuracy (classification only). */
  taskAccuracies?: number[];
}

export class MetaLearner {
  readonly algorithm: MetaAlgorithm;
  readonly spec: ModelSpec;
  readonly inner: InnerSettings;
  readonly clipNorm?: number;
  /** The engine that runs this learner ('fused-wasm', 'onnxruntime' or 'tfjs-<backend>'). */
  readonly engine: EngineName;
  /**
   * The meta-parameters (and a pool algorithm's pool parameters): the master copy the optimiser
   * updates, and its upload. The fused engine never
   * reads the upload, so after its steps the upload is only marked stale and refreshed when asked for
   * (the learner always holds one set of tensors: the tensor count stays flat).
   */
  private readonly values: ParamArrays;
  private theta: NamedTensors;
  private thetaStale = false;
  private readonly optimizer: Adam;
  /** With zeroHead: the head's meta-gradient, always zero, which Adam then never moves. */
  private readonly frozenHead?: Gradients;

  /**
   * @param params - initial meta-parameters (see initMetaParams; with a pool algorithm's pool
   *   parameters, see initPoolParams) or those of a checkpoint (copied).
   * @param optimizerState - Adam state to continue from (resuming a checkpoint); fresh when absent.
   */
  constructor(config: LearnerConfig, params: ParamArrays, optimizerState?: AdamState) {
    this.algorithm = getAlgorithm(config.algorithm);
    if (!this.algorithm.kinds.includes(config.spec.kind)) {
      throw new RangeError(`algorithm '${config.algorithm}' does not support ${config.spec.kind} tasks`);
    }
    if (!Number.isInteger(config.inner.steps) || config.inner.steps < 1) {
      throw new RangeError(`meta-training needs at least one inner step, got ${config.inner.steps}`);
    }
    if (config.zeroHead && !this.algorithm.metaTrainsHead) {
      throw new RangeError(`algorithm '${config.algorithm}' meta-learns no head to start at zero`);
    }
    this.spec = config.spec;
    this.inner = { ...config.inner };
    this.clipNorm = config.clipNorm;
    this.engine = chooseEngine(config.engine, config.algorithm, config.spec.body);
    this.values = copyArrays(params);
    if (config.zeroHead) {
      for (const name of HEAD_NAMES) this.values[name].data.fill(0);
      this.frozenHead = Object.fromEntries(HEAD_NAMES.map((n) => [n, new Float32Array(this.values[n].data.length)]));
    }
    this.theta = this.upload();
    this.optimizer = new Adam({ lr: config.metaLr }, this.values, optimizerState);
  }

  /** The meta-parameters as tensors (owned by the learner: do not dispose). */
  get params(): NamedTensors {
    if (this.thetaStale) this.refresh();
    return this.theta;
  }

  /** Replaces the upload with the current meta-parameters. */
  private refresh(): void {
    tf.dispose(this.theta);
    this.theta = this.upload();
    this.thetaStale = false;
  }

  /** The meta-parameters as tensors kept outside any tidy scope (the learner disposes them). */
  private upload(): NamedTensors {
    const theta = tf.tidy(() => toTensors(this.values));
    for (const t of Object.values(theta)) tf.keep(t);
    return theta;
  }

  /**
   * One outer-loop iteration; returns the meta-batch's mean post-adaptation query loss (a pool
   * minibatch's mean training loss).
   */
  metaStep(batch: TrainingBatch, mode: MetaStepMode = 'batched'): number {
    // The fused kernels take meta-batches of episodes; ONNX Runtime pool minibatches too.
    const { loss, grads: taken } =
      mode === 'batched' && this.engine === 'fused-wasm' && !isPoolBatch(batch)
        ? fusedMetaGradient(this.algorithm.name, this.spec, this.inner, this.values, batch)
        : mode === 'batched' && this.engine === 'onnxruntime'
          ? ortMetaGradient(this.algorithm.name, this.spec, this.inner, this.values, batch)
          : this.tfjsGradient(batch, mode);
    const grads = this.frozenHead ? { ...taken, ...this.frozenHead } : taken;
    const norm = globalNorm(grads);
    if (!Number.isFinite(loss) || !Number.isFinite(norm)) {
      throw new NonFiniteError(
        `meta-${Number.isFinite(loss) ? 'gradient' : 'loss'} is not finite (loss ${loss}, gradient norm ${norm}); ` +
          'lower innerLr or metaLr, or set clipNorm',
      );
    }
    if (!this.optimizer.step(this.values, grads, clipScale(norm, this.clipNorm))) {
      throw new NonFiniteError(
        `optimiser state is not finite after the step (gradient norm ${norm} overflows Adam's moments or the parameters in float32; nothing was updated); ` +
          'lower innerLr or metaLr, or set clipNorm',
      );
    }
    // tfjs reads the upload on its next step: refresh it now; the fused and ONNX Runtime engines only when asked for it.
    if (this.engine === 'fused-wasm' || this.engine === 'onnxruntime') this.thetaStale = true;
    else this.refresh();
    return loss;
  }

  /** The loss and meta-gradient from tfjs, downloaded once per iteration (loss and gradients together). */
  private tfjsGradient(batch: TrainingBatch, mode: MetaStepMode): { loss: number; grads: Gradients } {
    const names = Object.keys(this.values);
    const flat = tidyValues(() => {
      const { loss, grads } = mode === 'batched' ? this.batchedGradient(batch) : this.loopGradient(batch);
      return tf.concat([tf.reshape(loss, [1]), ...names.map((n) => tf.reshape(grads[n], [-1]))]);
    });
    const grads: Gradients = {};
    let offset = 1;
    for (const name of names) {
      const size = this.values[name].data.length;
      grads[name] = flat.subarray(offset, offset + size) as Float32Array;
      offset += size;
    }
    return { loss: flat[0], grads };
  }

  /**
   * The meta-gradient of a meta-batch computed as batched ops across its tasks (caller tidies).
   * @throws TypeError for a batch of the other kind than the algorithm trains on.
   */
  batchedGradient(batch: TrainingBatch): MetaGradient {
    const algorithm = this.algorithm;
    if (algorithm.trainsOn === 'pool') {
      if (!isPoolBatch(batch)) throw new TypeError(`${algorithm.name} trains on task-pool minibatches, not episodes`);
      return algorithm.poolGradient(this.spec, this.params, batch);
    }
    if (isPoolBatch(batch)) throw new TypeError(`${algorithm.name} trains on meta-batches of episodes, not task-pool minibatches`);
    const tensors: BatchTensors = batchToTensors(this.spec, batch);
    return algorithm.metaGradient(this.spec, this.params, tensors, this.inner);
  }

  /** The same meta-gradient task by task, averaged (caller tidies). */
  loopGradient(batch: TrainingBatch): MetaGradient {
    let loss: tf.Scalar = tf.scalar(0);
    const theta = this.params;
    let grads: NamedTensors = Object.fromEntries(Object.entries(theta).map(([n, p]) => [n, tf.zerosLike(p)]));
    for (let t = 0; t < batch.tasks; t++) {
      const [nextLoss, nextGrads] = tf.tidy(() => {
        const one = this.batchedGradient(isPoolBatch(batch) ? slicePoolBatch(batch, t) : sliceEpisodeBatch(batch, t));
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

  /** Adapts to every task's support set, guarded as /adapt is (guard.ts), and measures the query set (no meta-update). */
  evaluate(batch: EpisodeBatch): Evaluation {
    return summariseEvaluation([...this.evaluationParts(batch)], this.spec.kind);
  }

  /** {@link evaluate}, yielding to the event loop between chunks of tasks (src/util/yielding.ts). */
  async evaluateYielding(batch: EpisodeBatch): Promise<Evaluation> {
    return summariseEvaluation(await drainYielding(this.evaluationParts(batch)), this.spec.kind);
  }

  /** The query losses (and accuracies) of `evaluate`, a chunk of tasks at a time. */
  private *evaluationParts(batch: EpisodeBatch): Generator<{ losses: number[]; accuracies?: number[] }> {
    if (this.engine === 'fused-wasm') {
      const { taskLosses, taskAccuracies } = fusedEvaluate(this.algorithm.name, this.spec, this.inner, this.values, batch, DEFAULT_GUARD);
      yield { losses: taskLosses, accuracies: taskAccuracies };
      return;
    }
    // In chunks of tasks: a conv body's activations for hundreds of evaluation episodes at once
    // would take gigabytes.
    const chunk = Math.max(1, Math.floor(EVALUATION_ACTIVATIONS / ((batch.supportSize + batch.querySize) * activationWidth(this.spec))));
    for (let t = 0; t < batch.tasks; t += chunk) {
      const slice = sliceEpisodeBatch(batch, t, Math.min(chunk, batch.tasks - t));
      // ONNX Runtime runs the body; the algorithm adapts and scores on the embeddings. One that
      // adapts the body (FOMAML, Reptile) cannot adapt on embeddings: its evaluation, guarded and
      // batched over the tasks, runs on tfjs.
      const onEmbeddings = this.engine === 'onnxruntime' && !this.algorithm.adaptsBody;
      yield onEmbeddings ? this.evaluateChunk(embedBatch(this.spec, this.values, slice)) : this.evaluateChunk({ spec: this.spec, batch: slice });
    }
  }

  /**
   * Each task's query loss (and accuracy) of one chunk of `evaluate` on tfjs: of the whole model, or
   * (ONNX Runtime) of the head on the chunk's embeddings, with the meta-parameters other than the body.
   */
  private evaluateChunk({ spec, batch }: { spec: ModelSpec; batch: EpisodeBatch }): { losses: number[]; accuracies?: number[] } {
    const onEmbeddings = spec !== this.spec;
    const values = tidyValues(() => {
      const theta = onEmbeddings ? toTensors(withoutBody(this.values)) : this.params;
      const tensors = batchToTensors(spec, batch);
      const adapted = this.algorithm.adapt(spec, theta, tensors.support, { ...this.inner, monitor: { guard: DEFAULT_GUARD } });
      const output = forward(spec, adapted, tensors.query.x);
      const losses = taskLoss(spec.kind, output, tensors.query.y);
      return spec.kind === 'regression' ? losses : tf.concat([losses, accuracy(output, tensors.query.y)]);
    });
    const losses = Array.from(values.subarray(0, batch.tasks));
    return spec.kind === 'regression' ? { losses } : { losses, accuracies: Array.from(values.subarray(batch.tasks)) };
  }

  /** Everything the optimiser steps, as plain data (a copy): what a checkpoint holds. */
  exportParams(): ParamArrays {
    return copyArrays(this.values);
  }

  /** The meta-parameters alone, as plain data (a copy): what a meta-model holds (no pool parameters). */
  exportMetaParams(): ParamArrays {
    return copyArrays(Object.fromEntries(Object.entries(this.values).filter(([name]) => !name.startsWith(POOL_PREFIX))));
  }

  /** The optimiser's state as plain data. */
  exportOptimizer(): AdamState {
    return this.optimizer.getState();
  }

  dispose(): void {
    tf.dispose(this.theta);
  }
}

/** Initial meta-parameters for a learner configuration, drawn from `rng`. */
export function initMetaParams(config: LearnerConfig, rng: Rng): ParamArrays {
  return getAlgorithm(config.algorithm).initMetaParams(config.spec, rng, config.inner);
}

/** One outer-loop iteration of `learner` on `batch` (see MetaLearner.metaStep). */
export function metaStep(learner: MetaLearner, batch: TrainingBatch, mode: MetaStepMode = 'batched'): number {
  return learner.metaStep(batch, mode);
}

/** An evaluation from its parts' per-task scores: their means, refusing a non-finite one. */
function summariseEvaluation(parts: readonly { losses: number[]; accuracies?: number[] }[], kind: TaskKind): Evaluation {
  const taskLosses = parts.flatMap((p) => p.losses);
  const taskAccuracies = kind === 'classification' ? parts.flatMap((p) => p.accuracies ?? []) : undefined;
  const bad = [...taskLosses, ...(taskAccuracies ?? [])].find((value) => !Number.isFinite(value));
  if (bad !== undefined) throw new NonFiniteError(`validation loss is not finite (${bad})`);
  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
  return taskAccuracies === undefined ? { loss: mean(taskLosses), taskLosses } : { loss: mean(taskLosses), accuracy: mean(taskAccuracies), taskLosses, taskAccuracies };
}
