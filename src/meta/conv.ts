/**
 * The convolutional body (Conv-4 by default, the body of the few-shot image literature): per block a
 * 3x3 convolution with bias ('same' padding), a per-example layer normalisation with a per-channel
 * scale and offset, the nonlinearity, and 2x2 max pooling (ceil: an odd edge keeps its last row or
 * column). Images enter flattened row-major (h, w, c) as every input does and are reshaped here; the
 * embedding is the last block's output flattened the same way.
 *
 * Why these ops. Every algorithm runs on this body, second-order MAML included, so every op needs a
 * gradient that tfjs can differentiate again, and the meta-gradient has to be right:
 * - the normalisation is per example (over h, w, c), like nn.GroupNorm(1, C): no running statistics
 *   to carry between tasks, and an example's prediction never depends on the other inputs of a
 *   request, which a served model needs (batch statistics would make /predict answer differently for
 *   one image than for the same image among others). Written in mean / squaredDifference / rsqrt,
 *   whose gradients tfjs differentiates correctly (finite-difference tests in test/unit/meta/conv.test.ts);
 * - tfjs has no gradient of maxPool's gradient, so pooling is two elementwise maxima of strided
 *   halves (reshape, slice, maximum), whose gradient is a mask multiply: differentiable again;
 * - the wasm backend has no kernel for the convolution's filter gradient, so conv3x3 brings its own:
 *   the input gradient is a convolution with the flipped kernel (conv3x3 again, so it differentiates
 *   the same way) and the filter gradient is an im2col matrix product on plainMatMul.
 *
 * Parameters of block i: `body.<i>.weight` [3, 3, in, out], `body.<i>.bias`, `body.<i>.scale`,
 * `body.<i>.offset` [out]. A meta-batch with per-task parameters (MAML's inner loop adapts the body:
 * weight [T, 3, 3, in, out], the others [T, 1, out]) runs task by task; shared ones run the whole
 * meta-batch as one batch of images.
 */

import { tf } from './backend.js';
import type { Activation, NamedTensors } from './model.js';
import { plainMatMul, type CustomGradient } from './ops.js';

/** [height, width, channels] of one input image. */
export type ImageShape = [number, number, number];

export const DEFAULT_CHANNELS: readonly number[] = [64, 64, 64, 64];

/** The layer normalisation's variance floor (PyTorch's GroupNorm default). */
export const NORM_EPSILON = 1e-5;

/** The image side after a 2x2 pooling with ceil. */
export const pooledSide = (side: number): number => Math.ceil(side / 2);

/** [height, width] of each block's output, first block first. */
export function blockSides(inputShape: ImageShape, blocks: number): Array<[number, number]> {
  const sides: Array<[number, number]> = [];
  let [h, w] = inputShape;
  for (let i = 0; i < blocks; i++) {
    [h, w] = [pooledSide(h), pooledSide(w)];
    sides.push([h, w]);
  }
  return sides;
}

/** Length of the embedding: the last block's h x w x channels. */
export function convEmbeddingDim(inputShape: ImageShape, channels: readonly number[]): number {
  const [h, w] = blockSides(inputShape, channels.length)[channels.length - 1];
  return h * w * channels[channels.length - 1];
}

/** Names and shapes of the conv body's parameters, first block first. */
export function convShapes(inputShape: ImageShape, channels: readonly number[]): Array<[string, number[]]> {
  const shapes: Array<[string, number[]]> = [];
  let fanIn = inputShape[2];
  channels.forEach((out, i) => {
    shapes.push([`body.${i}.weight`, [3, 3, fanIn, out]], [`body.${i}.bias`, [out]], [`body.${i}.scale`, [out]], [`body.${i}.offset`, [out]]);
    fanIn = out;
  });
  return shapes;
}

/** Kernel of the input gradient: rotated 180 degrees, input and output channels swapped. */
function flipKernel(w: tf.Tensor): tf.Tensor {
  return tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2]);
}

/**
 * dL/dw of a 3x3 'same' convolution: im2col of the input ([9 in, N h w], tap-major to match the
 * kernel's [3, 3, in, out] layout) times dy ([N h w, out]), one plain matrix product.
 */
function kernelGradient(x: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  const [n, h, w, cin] = x.shape as [number, number, number, number];
  const cout = dy.shape[3] as number;
  const padded = tf.pad(tf.transpose(x, [3, 0, 1, 2]), [
    [0, 0],
    [0, 0],
    [1, 1],
    [1, 1],
  ]); // [in, N, h + 2, w + 2]
  const taps: tf.Tensor[] = [];
  for (let dh = 0; dh < 3; dh++) for (let dw = 0; dw < 3; dw++) taps.push(tf.slice(padded, [0, 0, dh, dw], [cin, n, h, w]));
  const columns = tf.reshape(tf.stack(taps), [9 * cin, n * h * w]);
  return tf.reshape(plainMatMul(columns, tf.reshape(dy, [n * h * w, cout])), [3, 3, cin, cout]);
}

/** 3x3 convolution, stride 1, 'same' padding, NHWC, with a gradient every backend can run and differentiate. */
export const conv3x3: (x: tf.Tensor, w: tf.Tensor) => tf.Tensor = tf.customGrad(((x: tf.Tensor, w: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
  save([x, w]);
  return {
    value: tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'),
    gradFunc: (dy: tf.Tensor, [sx, sw]: tf.Tensor[]) => [conv3x3(dy, flipKernel(sw)), kernelGradient(sx, dy)],
  };
}) as unknown as CustomGradient) as (x: tf.Tensor, w: tf.Tensor) => tf.Tensor;

/** Per-example layer normalisation over (h, w, c) of [N, h, w, c]. */
function layerNorm(x: tf.Tensor): tf.Tensor {
  // square(x - mean), not squaredDifference(x, mean): tfjs does not reduce squaredDifference's
  // gradient to a broadcast input's shape.
  const centered = tf.sub(x, tf.mean(x, [1, 2, 3], true));
  const variance = tf.mean(tf.square(centered), [1, 2, 3], true);
  return tf.mul(centered, tf.rsqrt(tf.add(variance, NORM_EPSILON)));
}

/**
 * max(a, b) elementwise. tfjs' own maximum has a gradient built on `less`, which has no gradient of
 * its own, so a second-order meta-gradient cannot pass through it; this one routes dy with a mask from
 * greaterEqual (gradient zero, as a mask's is) and its complement. Ties go to a.
 */
const maximum: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
  save([a, b]);
  return {
    value: tf.maximum(a, b),
    gradFunc: (dy: tf.Tensor, [sa, sb]: tf.Tensor[]) => {
      const first = tf.cast(tf.greaterEqual(sa, sb), 'float32');
      return [tf.mul(dy, first), tf.mul(dy, tf.sub(1, first))];
    },
  };
}) as unknown as CustomGradient) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

/** Elementwise maximum of the two halves of axis 1 of [m, 2, k]: [m, 1, k]. */
function maxOfPairs(x: tf.Tensor, m: number, k: number): tf.Tensor {
  return maximum(tf.slice(x, [0, 0, 0], [m, 1, k]), tf.slice(x, [0, 1, 0], [m, 1, k]));
}

/**
 * 2x2 max pooling, stride 2, of non-negative [N, h, w, c] (after relu or softplus), ceil: an odd edge
 * is padded with zeros, which never exceed a non-negative value, so the result is the maximum of the
 * real entries as in PyTorch's ceil_mode.
 */
export function maxPool2x2(x: tf.Tensor): tf.Tensor {
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const [ph, pw] = [pooledSide(h), pooledSide(w)];
  const even =
    h % 2 || w % 2
      ? tf.pad(x, [
          [0, 0],
          [0, h % 2],
          [0, w % 2],
          [0, 0],
        ])
      : x;
  const rows = maxOfPairs(tf.reshape(even, [n * ph, 2, 2 * pw * c]), n * ph, 2 * pw * c); // [N ph, 2 pw c]
  return tf.reshape(maxOfPairs(tf.reshape(rows, [n * ph * pw, 2, c]), n * ph * pw, c), [n, ph, pw, c]);
}

/** One block's parameters, each in its shared shape ([3, 3, in, out] and [out]). */
interface Block {
  weight: tf.Tensor;
  bias: tf.Tensor;
  scale: tf.Tensor;
  offset: tf.Tensor;
}

/** The blocks over images [N, h, w, c]: the embeddings [N, D]. */
function runBlocks(blocks: Block[], activation: Activation, images: tf.Tensor): tf.Tensor {
  let h = images;
  for (const { weight, bias, scale, offset } of blocks) {
    const normed = tf.add(tf.mul(layerNorm(tf.add(conv3x3(h, weight), bias)), scale), offset);
    h = maxPool2x2(activation === 'relu' ? tf.relu(normed) : tf.softplus(normed));
  }
  return tf.reshape(h, [h.shape[0], -1]);
}

/**
 * The conv body's output, [n, D] for inputs [n, h w c], [T, n, D] for [T, n, h w c]. Per-task
 * parameters (a leading T axis on every weight) run task by task: tfjs has no grouped convolution.
 */
export function convEmbed(inputShape: ImageShape, channels: readonly number[], activation: Activation, params: NamedTensors, x: tf.Tensor): tf.Tensor {
  const block = (i: number, pick: (p: tf.Tensor) => tf.Tensor = (p) => p): Block => {
    const [weight, bias, scale, offset] = ['weight', 'bias', 'scale', 'offset'].map((name) => pick(params[`body.${i}.${name}`]));
    return { weight, bias, scale, offset };
  };
  const asImages = (rows: tf.Tensor) => tf.reshape(rows, [-1, ...inputShape]);
  const shared = () => channels.map((_, i) => block(i));
  if (x.rank === 2) return runBlocks(shared(), activation, asImages(x));
  const [tasks, n] = x.shape as [number, number, number];
  if (params['body.0.weight'].rank === 4) return tf.reshape(runBlocks(shared(), activation, asImages(x)), [tasks, n, -1]);
  // Task t's slice of a tensor, without its task axis. Slice and concat, not unstack and stack: tfjs
  // fails to differentiate those for a single task (the per-task loop's meta-batches).
  const slice = (p: tf.Tensor, t: number) => tf.reshape(tf.slice(p, t, 1), p.shape.slice(1));
  const embeddings = Array.from({ length: tasks }, (_, t) =>
    runBlocks(
      channels.map((_, i) => block(i, (p) => (p.rank === 3 ? tf.reshape(slice(p, t), [-1]) : slice(p, t)))), // bias [T, 1, out] -> [out]
      activation,
      asImages(slice(x, t)),
    ),
  );
  return tf.concat(embeddings.map((e) => tf.expandDims(e, 0)));
}
