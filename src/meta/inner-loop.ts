/**
 * The inner loop: a few gradient steps on each task's support set, starting from the meta-parameters.
 * Meta-training and adaptation (`/tasks/:id/adapt`) both call `adaptToSupport`, so a task is adapted
 * exactly as it was during meta-training.
 *
 * Whether the step is first- or second-order is decided by the caller, not here: called inside an
 * outer `tf.grads` (MAML, ANIL, Meta-SGD) the inner gradients are recorded on the outer tape and the
 * meta-gradient flows through them; called outside (FOMAML, Reptile, evaluation, adaptation) the same
 * code is plain gradient descent.
 */

import { tf } from './backend.js';
import { embed, forward, applyHead, HEAD_NAMES, splitBodyHead, tileParams, type ModelSpec, type NamedTensors } from './model.js';
import { taskLoss } from './losses.js';
import type { TaskTensors } from './tensors.js';

/** Step sizes: one for every adapted tensor, or per parameter by name (Meta-SGD's learned rates). */
export type InnerLr = number | NamedTensors;

/** What the inner loop adapts: the whole network, or only the head (ANIL, ProtoNets' fine-tuning). */
export type AdaptScope = 'all' | 'head';

export interface AdaptOptions {
  scope: AdaptScope;
  /** Gradient steps on the support set (0 returns the starting point). */
  steps: number;
  lr: InnerLr;
}

/**
 * Runs `steps` gradient steps of `loss` from `start`. The loss must be a sum of per-task losses over
 * task-batched tensors, so each task's slice receives exactly its own task's gradient.
 */
export function innerLoop(
  names: readonly string[],
  start: tf.Tensor[],
  loss: (params: tf.Tensor[]) => tf.Scalar,
  steps: number,
  lr: InnerLr,
): tf.Tensor[] {
  let params = start;
  if (typeof lr === 'number') {
    // One step size for all: differentiate lr * loss, which saves a multiply per parameter (and
    // its share of the outer backward pass) on every step.
    const rate = tf.scalar(lr);
    for (let step = 0; step < steps; step++) {
      const scaled = tf.grads((...p: tf.Tensor[]) => tf.mul(loss(p), rate) as tf.Scalar)(params);
      params = params.map((p, i) => tf.sub(p, scaled[i]));
    }
    return params;
  }
  const rates = names.map((name) => {
    const rate = lr[name];
    if (!rate) throw new Error(`no inner learning rate for parameter '${name}'`);
    return rate;
  });
  for (let step = 0; step < steps; step++) {
    const grads = tf.grads((...p: tf.Tensor[]) => loss(p))(params);
    params = params.map((p, i) => tf.sub(p, tf.mul(rates[i], grads[i])));
  }
  return params;
}

/** Per-task loss [T] of task-batched parameters on a set of examples. */
export function lossOn(spec: ModelSpec, params: NamedTensors, examples: TaskTensors): tf.Tensor {
  return taskLoss(spec.kind, forward(spec, params, examples.x), examples.y);
}

/**
 * Adapts shared meta-parameters `theta` (model parameters, [in, out] / [out]) to each task of the
 * support set ([T, n, ...]). Returns the adapted model parameters: task-batched ([T, in, out] /
 * [T, 1, out]) for what was adapted; with scope 'head' the body stays shared and untiled.
 */
export function adaptToSupport(spec: ModelSpec, theta: NamedTensors, support: TaskTensors, options: AdaptOptions): NamedTensors {
  const tasks = support.x.shape[0];
  const { body, head } = splitBodyHead(theta);
  if (options.scope === 'head') {
    // The body is fixed during the inner loop: embed the support set once.
    const features = embed(spec, body, support.x);
    const start = tileParams(head, tasks);
    const adapted = innerLoop(
      HEAD_NAMES,
      HEAD_NAMES.map((n) => start[n]),
      ([weight, bias]) => tf.sum(taskLoss(spec.kind, applyHead({ 'head.weight': weight, 'head.bias': bias }, features), support.y)),
      options.steps,
      options.lr,
    );
    return { ...body, [HEAD_NAMES[0]]: adapted[0], [HEAD_NAMES[1]]: adapted[1] };
  }
  const names = Object.keys(theta);
  const start = tileParams(theta, tasks);
  const adapted = innerLoop(
    names,
    names.map((n) => start[n]),
    (p) => tf.sum(lossOn(spec, Object.fromEntries(names.map((n, i) => [n, p[i]])), support)),
    options.steps,
    options.lr,
  );
  return Object.fromEntries(names.map((n, i) => [n, adapted[i]]));
}
