/**
 * The convolutional body (Conv-4 by default, the body of the few-shot image literature): per block a
 * 3x3 convolution with bias ('same' padding), a per-example layer normalisation with a per-channel
 * scale and offset, the nonlinearity, and 2x2 max pooling (ceil: an odd edge keeps its last row or
 * column). Images enter flattened row-major (h, w, c) as every input does and are reshaped here; the
 * embedding is the last block's output flattened the same way.
 *
 * Why these ops. Every algorithm runs on this body, second-order MAML included, so every op needs a
 * gradient that tfjs can differentiate again, on every backend, and the meta-gradient has to be right
 * (finite-difference tests on cpu and wasm: test/unit/meta/conv.test.ts, conv-wasm.test.ts):
 * - the normalisation is per example (over h, w, c), like nn.GroupNorm(1, C): no running statistics
 *   to carry between tasks, and an example's prediction never depends on the other inputs of a
 *   request, which a served model needs (batch statistics would make /predict answer differently for
 *   one image than for the same image among others). Written in mean / sub / square / rsqrt;
 * - tfjs has no gradient of maxPool's gradient, so maxPool2x2's gradient is an op of its own whose
 *   gradient sends each window's cotangent back through its maximum;
 * - the wasm backend has no kernel for a convolution's filter gradient, so conv3x3 brings its own:
 *   the input gradient is conv3x3 with the flipped kernel, the filter gradient one convolution over
 *   the batch (kernelGradient), each with a gradient made of conv3x3 again;
 * - a per-channel bias, scale or offset reduces its gradient with a product by a row of ones
 *   (channelSums): tfjs' broadcast reduction is a slow transposing loop on wasm.
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

/**
 * Why `value` is not the [height, width, channels] of inputs of `inputDim` values (a family's or a
 * conv body's inputShape), or null when it is.
 */
export function imageShapeError(value: unknown, inputDim: number): string | null {
  if (!Array.isArray(value) || value.length !== 3 || !value.every((v) => Number.isInteger(v) && v >= 1)) return 'must be [height, width, channels]: three positive integers';
  const [h, w, c] = value as number[];
  return h * w * c === inputDim ? null : `[${h}, ${w}, ${c}] holds ${h * w * c} values, but inputDim is ${inputDim}; their product must be inputDim`;
}

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

/** The permutation that reverses the 9 taps of a 3x3 kernel, made once and kept for the process. */
let reverseTaps: tf.Tensor | null = null;

/** Kernel of the input gradient: rotated 180 degrees, input and output channels swapped. */
function flipKernel(w: tf.Tensor): tf.Tensor {
  const [, , cin, cout] = w.shape as [number, number, number, number];
  // Rotating by 180 degrees reverses the flattened taps: a product with an anti-diagonal matrix, which
  // runs on the fast matrix path and differentiates on every backend (tf.reverse is a slow loop on
  // wasm; tf.gather's gradient needs a kernel wasm lacks).
  reverseTaps ??= tf.keep(tf.reverse(tf.eye(9), 0));
  return tf.transpose(tf.reshape(plainMatMul(reverseTaps, tf.reshape(w, [9, cin * cout])), [3, 3, cin, cout]), [0, 1, 3, 2]);
}

/**
 * dL/dw of a 3x3 'same' convolution, dw[a, b, i, o] = sum over n, y, x of xpad[n, y + a, x + b, i] *
 * dy[n, y, x, o]: itself a 'valid' convolution, of the padded input with the examples as channels
 * ([in, h + 2, w + 2, N]) by dy as an h x w kernel ([h, w, N, out]), which the backends run as one
 * fast kernel (the wasm backend has no filter-gradient kernel). Bilinear in x and dy, so its own
 * gradient, for the second order, is two 3x3 convolutions.
 */
const kernelGradient: (x: tf.Tensor, dy: tf.Tensor) => tf.Tensor = tf.customGrad(((x: tf.Tensor, dy: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
  save([x, dy]);
  const padded = tf.pad(tf.transpose(x, [3, 1, 2, 0]), [
    [0, 0],
    [1, 1],
    [1, 1],
    [0, 0],
  ]);
  const byInput = tf.conv2d(padded as tf.Tensor4D, tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D, 1, 'valid'); // [in, 3, 3, out]
  return {
    value: tf.transpose(byInput, [1, 2, 0, 3]),
    gradFunc: (g: tf.Tensor, [sx, sdy]: tf.Tensor[]) => [conv3x3(sdy, flipKernel(g)), conv3x3(sx, g)],
  };
}) as unknown as CustomGradient) as (x: tf.Tensor, dy: tf.Tensor) => tf.Tensor;

/** 3x3 convolution, stride 1, 'same' padding, NHWC, with a gradient every backend can run and differentiate. */
const conv3x3Op: (x: tf.Tensor, w: tf.Tensor) => tf.Tensor = tf.customGrad(((x: tf.Tensor, w: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
  save([x, w]);
  return {
    value: tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'),
    gradFunc: (dy: tf.Tensor, [sx, sw]: tf.Tensor[]) => [conv3x3(dy, flipKernel(sw)), kernelGradient(sx, dy)],
  };
}) as unknown as CustomGradient) as (x: tf.Tensor, w: tf.Tensor) => tf.Tensor;

/** conv3x3 of inputs that are data, not a function of any parameter: it skips their gradient. */
const conv3x3OfData: (x: tf.Tensor, w: tf.Tensor) => tf.Tensor = tf.customGrad(((x: tf.Tensor, w: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
  save([x]);
  return {
    value: tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'),
    gradFunc: (dy: tf.Tensor, [sx]: tf.Tensor[]) => [tf.zerosLike(sx), kernelGradient(sx, dy)],
  };
}) as unknown as CustomGradient) as (x: tf.Tensor, w: tf.Tensor) => tf.Tensor;

/** 3x3 convolution, stride 1, 'same' padding, NHWC (x: [N, h, w, in], w: [3, 3, in, out]). */
export function conv3x3(x: tf.Tensor, w: tf.Tensor, of: 'activations' | 'data' = 'activations'): tf.Tensor {
  return of === 'data' ? conv3x3OfData(x, w) : conv3x3Op(x, w);
}

/**
 * Sum over every axis but the last of [..., C]: (t as [rows, C]) transposed times a column of ones.
 * tfjs-wasm prepares (packs) a product's second operand on every call; as ones times t, that was the
 * whole [rows, C] activation, which cost more than the product itself; a column of ones is cheap.
 */
function channelSums(t: tf.Tensor): tf.Tensor {
  const channels = t.shape[t.rank - 1] as number;
  const rows = t.size / channels;
  return tf.reshape(plainMatMul(tf.transpose(tf.reshape(t, [rows, channels])), tf.ones([rows, 1])), [channels]);
}

/**
 * x * scale + offset per channel of [..., C]. tfjs reduces a broadcast operand's gradient with a
 * transposing Sum kernel, slow at these sizes on wasm; channelSums is one GEMV, and every op of this
 * gradient is differentiable again.
 */
const channelAffine: (x: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor) => tf.Tensor = tf.customGrad(((x: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
  save([x, scale]);
  return {
    value: tf.add(tf.mul(x, scale), offset),
    gradFunc: (dy: tf.Tensor, [sx, sscale]: tf.Tensor[]) => [tf.mul(dy, sscale), channelSums(tf.mul(dy, sx)), channelSums(dy)],
  };
}) as unknown as CustomGradient) as (x: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor) => tf.Tensor;

/** x + bias per channel of [..., C], with channelAffine's fast gradient. */
const channelBias: (x: tf.Tensor, bias: tf.Tensor) => tf.Tensor = tf.customGrad(((x: tf.Tensor, bias: tf.Tensor) => ({
  value: tf.add(x, bias),
  gradFunc: (dy: tf.Tensor) => [dy, channelSums(dy)],
})) as unknown as CustomGradient) as (x: tf.Tensor, bias: tf.Tensor) => tf.Tensor;

/** Per-example layer normalisation over (h, w, c) of [N, h, w, c]. */
function layerNorm(x: tf.Tensor): tf.Tensor {
  // square(x - mean), not squaredDifference(x, mean): tfjs does not reduce squaredDifference's
  // gradient to a broadcast input's shape.
  const centered = tf.sub(x, tf.mean(x, [1, 2, 3], true));
  const variance = tf.mean(tf.square(centered), [1, 2, 3], true);
  return tf.mul(centered, tf.rsqrt(tf.add(variance, NORM_EPSILON)));
}

const POOL = { filterSize: 2, strides: 2, pad: 'same' } as const;

/** tfjs' max-pool gradient kernel: dy routed to each window's (first) maximum of x. */
function maxPoolGradKernel(dy: tf.Tensor, x: tf.Tensor, y: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel('MaxPoolGrad', { dy, input: x, output: y }, { ...POOL }) as tf.Tensor;
}

/** Sum over each 2x2 window (stride 2, an odd edge padded with zeros) of [N, h, w, c]. */
function sumPool2x2(x: tf.Tensor): tf.Tensor {
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
  return tf.sum(tf.reshape(even, [n, ph, 2, pw, 2, c]), [2, 4]);
}

/**
 * The max pool's gradient as an op of its own, so a second-order meta-gradient can differentiate
 * it: linear in dy, so its gradient with respect to dy is the transpose, each window taking the
 * cotangent at its maximum (a one-hot mask of the maxima: the same kernel routing ones; summed over
 * the window), and zero with respect to x and y (the maxima only switch on a measure-zero set).
 */
const maxPoolBackward: (dy: tf.Tensor, x: tf.Tensor, y: tf.Tensor) => tf.Tensor = tf.customGrad(((dy: tf.Tensor, x: tf.Tensor, y: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
  save([x, y]);
  return {
    value: maxPoolGradKernel(dy, x, y),
    gradFunc: (g: tf.Tensor, [sx, sy]: tf.Tensor[]) => [sumPool2x2(tf.mul(g, maxPoolGradKernel(tf.onesLike(sy), sx, sy))), tf.zerosLike(sx), tf.zerosLike(sy)],
  };
}) as unknown as CustomGradient) as (dy: tf.Tensor, x: tf.Tensor, y: tf.Tensor) => tf.Tensor;

/**
 * 2x2 max pooling, stride 2, 'same' (ceil: an odd edge's last row or column pools alone, as
 * PyTorch's ceil_mode) of [N, h, w, c], on tfjs' own kernels, with a gradient that is itself
 * differentiable (tfjs has no gradient of maxPool's gradient).
 */
export const maxPool2x2: (x: tf.Tensor) => tf.Tensor = tf.customGrad(((x: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
  const y = tf.maxPool(x as tf.Tensor4D, POOL.filterSize, POOL.strides, POOL.pad);
  // The output is kept for the gradient kernel's routing only, never differentiated through.
  save([x, y]);
  return {
    value: y,
    gradFunc: (dy: tf.Tensor, [sx, sy]: tf.Tensor[]) => maxPoolBackward(dy, sx, sy),
  };
}) as unknown as CustomGradient) as (x: tf.Tensor) => tf.Tensor;

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
  for (const [i, { weight, bias, scale, offset }] of blocks.entries()) {
    const normed = channelAffine(layerNorm(channelBias(conv3x3(h, weight, i === 0 ? 'data' : 'activations'), bias)), scale, offset);
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
