/**
 * What every meta-learning algorithm provides. An algorithm is a choice of (1) which meta-parameters
 * exist, (2) how a task adapts from them (through the shared inner loop, unless it runs no inner
 * steps, as ProtoNets' closed-form head), and (3) how the outer loop's meta-gradient is formed from
 * the adapted tasks. What the service needs to know about an algorithm it asks here, never by name.
 */

import type { tf } from '../backend.js';
import type { ModelSpec, NamedTensors, ParamArrays } from '../model.js';
import type { Rng } from '../rng.js';
import type { BatchTensors, TaskTensors } from '../tensors.js';
import type { TaskKind } from '../types.js';
import type { InnerMonitor } from '../inner-loop.js';

export const ALGORITHM_NAMES = ['maml', 'fomaml', 'reptile', 'anil', 'metasgd', 'protonet'] as const;

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

export interface MetaAlgorithm {
  readonly name: AlgorithmName;
  /** Task kinds it can meta-learn (ProtoNets: classification only). */
  readonly kinds: readonly TaskKind[];
  /** Whether adaptation moves the body too (false: only the head is adapted). */
  readonly adaptsBody: boolean;
  /**
   * Whether meta-training learns a head (false: ProtoNets, whose head is built from each task's
   * support set, so a stored meta-model has none and there is no loss "before adaptation" of its own).
   */
  readonly metaTrainsHead: boolean;
  /** Whether adaptation runs inner-loop gradient steps (false: ProtoNets' closed-form head runs none). */
  readonly runsInnerSteps: boolean;
  /** Initial meta-parameters: model parameters it meta-learns plus any extras (Meta-SGD's `lr.*`). */
  initMetaParams(spec: ModelSpec, rng: Rng, inner: InnerSettings): ParamArrays;
  /**
   * Adapts the meta-parameters to each task of a support set ([T, n, ...]); returns model
   * parameters (body and head) with task-batched entries for what was adapted.
   */
  adapt(spec: ModelSpec, theta: NamedTensors, support: TaskTensors, inner: InnerSettings): NamedTensors;
  /** The outer loop's gradient for one meta-batch. */
  metaGradient(spec: ModelSpec, theta: NamedTensors, batch: BatchTensors, inner: InnerSettings): MetaGradient;
}
