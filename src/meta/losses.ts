/**
 * Per-task losses, written only with ops whose second-order gradients tfjs gets right, because MAML,
 * ANIL, Meta-SGD and ProtoNets differentiate through the inner loop's gradients.
 *
 * tfjs' own `exp`, `logSoftmax` and `softmaxCrossEntropy` are unusable there: `exp` and `logSoftmax`
 * compute their gradient from a saved output that is cut off the tape (second derivatives come out
 * silently wrong) and `softmaxCrossEntropy` has no second derivative at all. So cross-entropy is
 * built on a log-sum-exp whose custom gradient (the softmax) is again made of differentiable ops,
 * down to an `exp` whose gradient calls itself. Any order of derivative is therefore exact; the
 * losses test checks Hessian-vector products against finite differences.
 */

import { tf } from './backend.js';
import type { CustomGradient } from './ops.js';
import type { TaskKind } from './types.js';

/**
 * Inputs a gradient needs are kept with `save`: tfjs keeps a clone that is itself on the tape, so the
 * gradient stays differentiable with respect to them (a tensor captured by the closure instead would
 * be disposed when the inner gradient's scope ends, and would not be on the outer tape).
 */
type Save = (tensors: tf.Tensor[]) => void;

/** exp whose gradient is expressed through itself, so it stays on the tape at every order. */
export const differentiableExp: (x: tf.Tensor) => tf.Tensor = tf.customGrad(((x: tf.Tensor, save: Save) => {
  save([x]);
  return {
    value: tf.exp(x),
    gradFunc: (dy: tf.Tensor, [input]: tf.Tensor[]) => tf.mul(dy, differentiableExp(input)),
  };
}) as unknown as CustomGradient) as (x: tf.Tensor) => tf.Tensor;

/**
 * log(sum(exp(x))) over the last axis (no kept dimension), computed stably (max-shifted) in the
 * forward pass; its gradient is the softmax exp(x - lse(x)), which is built from differentiable ops.
 */
export const logSumExp: (x: tf.Tensor) => tf.Tensor = tf.customGrad(((x: tf.Tensor, save: Save) => {
  save([x]);
  const axis = x.rank - 1;
  // The forward value is not recorded on any tape (only the custom node is), so max is safe here.
  const shift = tf.max(x, axis, true);
  const value = tf.add(tf.squeeze(shift, [axis]), tf.log(tf.sum(tf.exp(tf.sub(x, shift)), axis)));
  return {
    value,
    gradFunc: (dy: tf.Tensor, [input]: tf.Tensor[]) => tf.mul(tf.expandDims(dy, axis), softmax(input)),
  };
}) as unknown as CustomGradient) as (x: tf.Tensor) => tf.Tensor;

/** softmax over the last axis from differentiable ops (values <= 1, so exp cannot overflow). */
export function softmax(logits: tf.Tensor): tf.Tensor {
  return differentiableExp(tf.sub(logits, tf.expandDims(logSumExp(logits), logits.rank - 1)));
}

/**
 * Mean cross-entropy per task. logits and oneHot are [T, n, C]; returns [T].
 * For logits [n, C] it returns a scalar-shaped [] mean.
 */
export function crossEntropy(logits: tf.Tensor, oneHot: tf.Tensor): tf.Tensor {
  const last = logits.rank - 1;
  const perExample = tf.sub(logSumExp(logits), tf.sum(tf.mul(oneHot, logits), last));
  return tf.mean(perExample, last - 1);
}

/** Mean squared error per task. output and target are [T, n, 1]; returns [T]. */
export function meanSquaredError(output: tf.Tensor, target: tf.Tensor): tf.Tensor {
  const last = output.rank - 1;
  return tf.mean(tf.squaredDifference(output, target), [last - 1, last]);
}

/** The task loss for a kind: MSE on regression values, cross-entropy on class logits. Returns [T]. */
export function taskLoss(kind: TaskKind, output: tf.Tensor, target: tf.Tensor): tf.Tensor {
  return kind === 'regression' ? meanSquaredError(output, target) : crossEntropy(output, target);
}

/** Fraction of examples whose arg-max logit is the labelled class, per task: [T, n, C] -> [T]. */
export function accuracy(logits: tf.Tensor, oneHot: tf.Tensor): tf.Tensor {
  const last = logits.rank - 1;
  const hit = tf.equal(tf.argMax(logits, last), tf.argMax(oneHot, last));
  return tf.mean(tf.cast(hit, 'float32'), last - 1);
}
