/**
 * What every meta-learning algorithm provides. An algorithm is a choice of (1) which meta-parameters
 * exist, (2) how a task adapts from them (through the shared inner loop, unless it runs no inner
 * steps, as ProtoNets' and multitask's closed-form heads), and (3) what one training iteration
 * does: an episodic algorithm forms the outer loop's meta-gradient from a meta-batch of adapted
 * tasks; a pool algorithm (multitask) takes the gradient of the joint loss of a minibatch of a fixed
 * pool of training tasks. What the service needs to know about an algorithm it asks here, never by name.
 */

import type { tf } from '../backend.js';
import type { ModelSpec, NamedTensors, ParamArrays } from '../model.js';
import type { Rng } from '../rng.js';
import type { BatchTensors, TaskTensors } from '../tensors.js';
import type { PoolBatch, TaskKind } from '../types.js';
import type { InnerMonitor } from '../inner-loop.js';

export const ALGORITHM_NAMES = ['maml', 'fomaml', 'reptile', 'anil', 'metasgd', 'protonet', 'multitask'] as const;

export type AlgorithmName = (typeof ALGORITHM_NAMES)[number];

/** Inner-loop settings: gradient steps on the support set and their step size. */
export interface InnerSettings {
  steps: number;
  lr: number;
  /** Evaluation and adaptation: trace the support loss and guard the result (inner-loop.ts). */
  monitor?: InnerMonitor;
}

/** A meta-gradient: the mean post-adaptation query loss of the meta-batch and d(outer objective)/d(theta). */
export interface MetaGradient {
  loss: tf.Scalar;
  grads: NamedTensors;
}

interface AlgorithmBase {
  readonly name: AlgorithmName;
  /** Task kinds it can meta-learn (ProtoNets: classification only). */
  readonly kinds: readonly TaskKind[];
  /** Whether adaptation moves the body too (false: only the head is adapted). */
  readonly adaptsBody: boolean;
  /**
   * Whether meta-training learns a head (false: ProtoNets and multitask, whose head is built from each
   * task's support set, so a stored meta-model has none and there is no loss "before adaptation" of its own).
   */
  readonly metaTrainsHead: boolean;
  /** Whether adaptation runs inner-loop gradient steps (false: ProtoNets' and multitask's closed-form heads run none). */
  readonly runsInnerSteps: boolean;
  /** Initial meta-parameters: model parameters it meta-learns plus any extras (Meta-SGD's `lr.*`). */
  initMetaParams(spec: ModelSpec, rng: Rng, inner: InnerSettings): ParamArrays;
  /**
   * Adapts the meta-parameters to each task of a support set ([T, n, ...]); returns model
   * parameters (body and head) with task-batched entries for what was adapted.
   */
  adapt(spec: ModelSpec, theta: NamedTensors, support: TaskTensors, inner: InnerSettings): NamedTensors;
}

/** Meta-trained on meta-batches of episodes (MAML, FOMAML, Reptile, ANIL, Meta-SGD, ProtoNets). */
export interface EpisodicAlgorithm extends AlgorithmBase {
  readonly trainsOn: 'episodes';
  /** The outer loop's gradient for one meta-batch. */
  metaGradient(spec: ModelSpec, theta: NamedTensors, batch: BatchTensors, inner: InnerSettings): MetaGradient;
}

/**
 * Meta-trained on minibatches of a fixed pool of training tasks (multitask). Besides its
 * meta-parameters it trains parameters of its own for the pool (named POOL_PREFIX + ...): they are
 * stepped and checkpointed with the meta-parameters, but the stored meta-model leaves them out.
 */
export interface PoolAlgorithm extends AlgorithmBase {
  readonly trainsOn: 'pool';
  /** Initial pool parameters for a pool whose tasks have these numbers of outputs. */
  initPoolParams(spec: ModelSpec, outputs: readonly number[], rng: Rng): ParamArrays;
  /** Mean training loss of a pool minibatch and its gradient w.r.t. all parameters (caller tidies). */
  poolGradient(spec: ModelSpec, params: NamedTensors, batch: PoolBatch): MetaGradient;
}

export type MetaAlgorithm = EpisodicAlgorithm | PoolAlgorithm;

/** Names of parameters that exist only while training on a task pool (never in a meta-model). */
export const POOL_PREFIX = 'pool.';
