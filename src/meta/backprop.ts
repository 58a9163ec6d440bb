/**
 * The inner loop's gradient written out by hand: explicit backpropagation through the MLP for the
 * task losses (MSE on values, cross-entropy on logits), per task of a meta-batch.
 *
 * Why: MAML, ANIL and Meta-SGD differentiate through the inner loop's gradient steps. With autodiff
 * that is `tf.grads` inside `tf.grads`: the inner tape's backward pass runs on the outer tape, with
 * its bookkeeping, broadcasting reductions and saved-tensor clones. Written out, the inner gradient
 * is an ordinary computation graph of matMul, add, mul, sum, step / sigmoid and softmax, and the
 * outer tape needs only first-order autodiff through it. That is still exact second-order MAML as
 * long as every op's FIRST derivative is right in tfjs, which holds for all of these (step's is zero,
 * which is right everywhere but at the kink; autodiff's relu gradient uses the same step).
 * The unit tests check this gradient, and meta-gradients through it, against autodiff.
 *
 * Layout: parameters shared by all tasks (weights [in, out], biases [out]) run as one matMul over all
 * T * n rows; per-task parameters ([T, in, out] / [T, 1, out]) as batched matMuls over [T, n, d].
 * Gradients always come out per task: [T, in, out] and [T, 1, out].
 */

import { tf } from './backend.js';
import type { Activation } from './model.js';
import { plainMatMul, type CustomGradient } from './ops.js';
import type { TaskKind } from './types.js';

/** One dense layer's tensors on the tape: weight [in, out] or [T, in, out], bias [out] or [T, 1, out]. */
export interface LayerTensors {
  weight: tf.Tensor;
  bias: tf.Tensor;
}

/** Per-task gradients of one layer: [T, in, out] and [T, 1, out]. */
export interface LayerGradient {
  weight: tf.Tensor;
  bias: tf.Tensor;
}

/**
 * delta * relu'(z) as one recorded op. relu' = step(z) is piecewise constant, so the outer tape needs
 * no gradient through it: recorded as plain ops, the mask's side of the product would cost a multiply,
 * two casts, step's zeros and their accumulation on every backward pass, all to add zeros.
 */
const throughRelu: (delta: tf.Tensor, z: tf.Tensor) => tf.Tensor = tf.customGrad(((delta: tf.Tensor, z: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
  const mask = tf.step(z);
  save([mask]);
  return {
    value: tf.mul(delta, mask),
    gradFunc: (dy: tf.Tensor, [kept]: tf.Tensor[]) => [tf.mul(dy, kept), tf.zerosLike(kept)],
  };
}) as unknown as CustomGradient) as (delta: tf.Tensor, z: tf.Tensor) => tf.Tensor;

/** h @ w: one plain product over all rows for a shared weight, batched per task otherwise. */
function times(h: tf.Tensor, w: tf.Tensor): tf.Tensor {
  return w.rank === 2 ? plainMatMul(h, w) : tf.matMul(h, w);
}

/** d @ w^T, the same way. */
function timesTransposed(d: tf.Tensor, w: tf.Tensor): tf.Tensor {
  return w.rank === 2 ? plainMatMul(d, tf.transpose(w)) : tf.matMul(d, w, false, true);
}

/** What the backward pass needs from the forward pass. */
interface ForwardCache {
  /** Each layer's input (the examples, then each hidden activation), in the layers' layout. */
  inputs: tf.Tensor[];
  /** Each hidden layer's pre-activation z (relu) or act'(z) (softplus: sigmoid(z)). */
  slopes: tf.Tensor[];
  output: tf.Tensor;
}

/** [T * n, d] rows as [T, n, d] (per-task tensors pass through). */
function byTask(t: tf.Tensor, tasks: number): tf.Tensor {
  return t.rank === 3 ? t : tf.reshape(t, [tasks, t.shape[0] / tasks, t.shape[1] as number]);
}

function forwardCached(layers: readonly LayerTensors[], activation: Activation, x: tf.Tensor): ForwardCache {
  const inputs: tf.Tensor[] = [];
  const slopes: tf.Tensor[] = [];
  let h = x;
  layers.forEach(({ weight, bias }, i) => {
    inputs.push(h);
    const z = tf.add(times(h, weight), bias);
    if (i === layers.length - 1) {
      h = z;
      return;
    }
    if (activation === 'relu') {
      h = tf.relu(z);
      slopes.push(z);
    } else {
      h = tf.softplus(z);
      slopes.push(tf.sigmoid(z));
    }
  });
  return { inputs, slopes, output: h };
}

/**
 * d(scale * sum over tasks of the task's mean loss)/d(output): MSE 2 (o - y) / (n * outDim),
 * cross-entropy (softmax(o) - y) / n, each times `scale`.
 */
function outputGradient(kind: TaskKind, output: tf.Tensor, target: tf.Tensor, examples: number, scale: number): tf.Tensor {
  if (kind === 'regression') {
    const outDim = output.shape[output.rank - 1] as number;
    return tf.mul(tf.sub(output, target), tf.scalar((2 * scale) / (examples * outDim)));
  }
  return tf.mul(tf.sub(tf.softmax(output), target), tf.scalar(scale / examples));
}

/**
 * Gradients of `scale` * (sum over tasks of each task's mean loss) with respect to every layer's
 * parameters, per task. `x` and `y` are [T, n, in] and [T, n, out] (y one-hot for classification).
 * Layers must be all shared or all per-task.
 */
export function layerGradients(kind: TaskKind, activation: Activation, layers: readonly LayerTensors[], x: tf.Tensor, y: tf.Tensor, scale: number): LayerGradient[] {
  const [tasks, n] = x.shape as [number, number, number];
  const shared = layers[0].weight.rank === 2;
  if (layers.some((l) => (l.weight.rank === 2) !== shared)) throw new Error('layers must be all shared or all per-task');
  const rows = (t: tf.Tensor) => (shared ? tf.reshape(t, [tasks * n, t.shape[2] as number]) : t);
  const { inputs, slopes, output } = forwardCached(layers, activation, rows(x));
  let delta = outputGradient(kind, output, rows(y), n, scale);
  const grads: LayerGradient[] = new Array(layers.length);
  for (let i = layers.length - 1; i >= 0; i--) {
    const perTask = byTask(delta, tasks);
    grads[i] = { weight: tf.matMul(byTask(inputs[i], tasks), perTask, true, false), bias: tf.sum(perTask, 1, true) };
    if (i === 0) break;
    const back = timesTransposed(delta, layers[i].weight);
    delta = activation === 'relu' ? throughRelu(back, slopes[i - 1]) : tf.mul(back, slopes[i - 1]);
  }
  return grads;
}
