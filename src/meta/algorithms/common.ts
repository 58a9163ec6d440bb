/** Meta-gradient shapes shared by several algorithms. */

import { tf } from '../backend.js';
import { lossOn } from '../inner-loop.js';
import type { ModelSpec, NamedTensors } from '../model.js';
import type { BatchTensors } from '../tensors.js';
import type { MetaGradient } from './types.js';

function named(names: readonly string[], tensors: tf.Tensor[]): NamedTensors {
  return Object.fromEntries(names.map((n, i) => [n, tensors[i]]));
}

/** The model's own parameters (body and head) among the meta-parameters. */
export function modelPart(theta: NamedTensors): NamedTensors {
  return Object.fromEntries(Object.entries(theta).filter(([n]) => n.startsWith('body.') || n.startsWith('head.')));
}

/**
 * Differentiates the mean post-adaptation query loss through the adaptation itself (MAML, ANIL,
 * Meta-SGD: through the inner loop's gradient steps; ProtoNets: through the prototypes).
 */
export function throughAdaptation(
  spec: ModelSpec,
  theta: NamedTensors,
  batch: BatchTensors,
  adapt: (theta: NamedTensors) => NamedTensors,
): MetaGradient {
  const names = Object.keys(theta);
  const objective = (...p: tf.Tensor[]): tf.Scalar => tf.mean(lossOn(spec, adapt(named(names, p)), batch.query));
  const { value, grads } = tf.valueAndGrads(objective)(names.map((n) => theta[n]));
  return { loss: value, grads: named(names, grads) };
}

/**
 * First-order MAML's gradient: the query-loss gradient at the adapted parameters, averaged over
 * tasks, treating the adapted parameters as if they did not depend on theta.
 */
export function atAdaptedParams(spec: ModelSpec, theta: NamedTensors, batch: BatchTensors, adapted: NamedTensors): MetaGradient {
  const names = Object.keys(adapted);
  const objective = (...p: tf.Tensor[]): tf.Scalar => tf.mean(lossOn(spec, named(names, p), batch.query));
  const { value, grads } = tf.valueAndGrads(objective)(names.map((n) => adapted[n]));
  // The objective is a mean over tasks, so summing the per-task slices gives the task-mean gradient.
  const untiled = grads.map((g, i) => tf.reshape(tf.sum(g, 0), theta[names[i]].shape));
  return { loss: value, grads: named(names, untiled) };
}
