/**
 * The conv body (conv.ts) as ONNX graphs with its parameters as graph inputs (onnxruntime's training
 * graphs do the same: parameters are inputs shared across sessions, gradients are outputs named
 * `<param>_grad` in the parameters' order), built for one batch size so every shape is static.
 *
 * - forward: `x` [N, h w c] and the parameters in the engine's layouts (weight [3, 3, in, out], bias,
 *   scale, offset [out]; each weight also as Conv's kernel [out, in, 3, 3], kernelLayout) to
 *   `embedding` [N, D] in (h, w, c) order. Each block is what conv.ts computes: Conv (pads 1, bias;
 *   on a plane of at most 2 x 2, a dense product instead: isDenseBlock), the
 *   per-example layer norm over (c, h, w) (LayerNormalization, axis 1: biased variance, epsilon
 *   NORM_EPSILON), the per-channel scale and offset, the activation and the 2x2 max pool with ceil
 *   (as conv.ts' 'same' pool: an odd edge's window holds its real entries only).
 * - training forward: the same graph, also answering what the backward pass reads of each block
 *   (the convolution's output, its layer norm's mean and reciprocal standard deviation, the index
 *   of each pooling window's first maximum, and the block's input), so the backward graph never
 *   recomputes the forward one.
 * - backward: from those and `embedding_grad` (dL/d embedding) to every parameter's gradient, the
 *   chain rule written out in standard operators: the pooled gradient put at each window's first
 *   maximum (MaxUnpool) times the activation's slope, the affine's and the
 *   layer norm's gradients from per-(example, channel) sums, the filter gradient as matrix products
 *   of the input's shifted windows by the output gradient (the first block's without forming that
 *   gradient: firstBlockGradNodes), and the input gradient as a
 *   convolution with the kernel rotated 180 degrees (what conv.ts' conv3x3 does on tfjs).
 * - a whole meta-step of ProtoNets or ANIL in one graph: step-graphs.ts.
 */

import { blockSides, NORM_EPSILON, type ImageShape } from '../conv.js';
import type { Activation } from '../model.js';
import { FLOAT, INT64, floatScalar, floatTensor, int64Tensor, int64Vector, node, onnxModel, valueInfo, type Field } from '../../util/onnx-graph.js';

/** LayerNormalization (one kernel: normalised output, mean and reciprocal standard deviation) is in opset 17; ReduceMean still takes its axes as an attribute there. */
export const OPSET = 17;

/** A conv body's architecture and the batch size a graph is built for. */
export interface ConvGraphShape {
  inputShape: ImageShape;
  channels: readonly number[];
  activation: Activation;
  batch: number;
}

/** The graph's parameter inputs, first block first (convShapes' order). */
export function paramNames(channels: readonly number[]): string[] {
  return channels.flatMap((_, i) => ['weight', 'bias', 'scale', 'offset'].map((p) => `body.${i}.${p}`));
}

export const gradName = (param: string): string => `${param}_grad`;

/** What the training forward answers per block and the backward graph takes back, by block. */
export function savedNames(blocks: number, activation: Activation): string[] {
  const perBlock = Array.from({ length: blocks }, (_, i) => [`b${i}.conv`, `b${i}.mean`, `b${i}.rstd`, `b${i}.argmax`, ...(activation === 'softplus' ? [`b${i}.slope`] : []), ...(i > 0 ? [`b${i - 1}.pool`] : [])]);
  return [...perBlock.flat(), `b${blocks - 1}.pool`];
}

interface BlockDims {
  cin: number;
  cout: number;
  /** Its input side (and the convolution's output side). */
  h: number;
  w: number;
  /** After pooling. */
  ph: number;
  pw: number;
}

export function blockDims(shape: ConvGraphShape): BlockDims[] {
  const sides = blockSides(shape.inputShape, shape.channels.length);
  let [h, w, cin] = shape.inputShape;
  return shape.channels.map((cout, i) => {
    const dims = { cin, cout, h, w, ph: sides[i][0], pw: sides[i][1] };
    [h, w, cin] = [sides[i][0], sides[i][1], cout];
    return dims;
  });
}

/** The input of block `i`'s kernel in Conv's layout [out, in, 3, 3] (kernelLayout). */
export const kernelName = (i: number): string => `b${i}.kernel`;
/** The input of block `i`'s kernel rotated 180 degrees, in and out swapped [in, out, 3, 3] (the backward graph's, blocks after the first). */
export const flippedKernelName = (i: number): string => `b${i}.kernel.flipped`;

/**
 * A weight [3, 3, in, out] as Conv's kernel [out, in, 3, 3] or (`flipped`) as the backward pass's,
 * rotated 180 degrees with in and out swapped [in, out, 3, 3]. Rearranged here rather than by
 * Transpose and Slice nodes: onnxruntime's generic Transpose took about 0.2 ms per 64-channel
 * kernel, each run. Prediction needs only the first.
 */
export function kernelLayout(weight: Float32Array, cin: number, cout: number, flipped = false): Float32Array {
  const out = new Float32Array(weight.length);
  for (let a = 0; a < 3; a++) {
    for (let b = 0; b < 3; b++) {
      for (let i = 0; i < cin; i++) {
        const row = ((a * 3 + b) * cin + i) * cout;
        if (flipped) for (let o = 0; o < cout; o++) out[((i * cout + o) * 3 + (2 - a)) * 3 + (2 - b)] = weight[row + o];
        else for (let o = 0; o < cout; o++) out[((o * cin + i) * 3 + a) * 3 + b] = weight[row + o];
      }
    }
  }
  return out;
}

/**
 * Whether a block runs its convolution as one dense product: a 'same' 3x3 convolution of an
 * h x w plane with h w <= 4 maps its in h w inputs to its out h w outputs with at most 4/9 of the
 * convolution's multiply-adds, and onnxruntime's Conv runs such small planes at a fraction of its
 * rate (Conv-4's 2 x 2 block on 14 x 14 digits). Capped so the dense map stays small.
 */
export function isDenseBlock({ cin, cout, h, w }: { cin: number; cout: number; h: number; w: number }): boolean {
  return h * w <= 4 && cin * cout * (h * w) ** 2 <= 1 << 20;
}

/**
 * A weight [3, 3, in, out] as a dense block's map [in h w, out h w] (isDenseBlock): row (i, y', x'),
 * column (o, y, x), both in NCHW order, holds the tap W[y' - y + 1, x' - x + 1, i, o] that joins
 * them (zero where the two positions are more than one apart).
 */
export function denseLayout(weight: Float32Array, cin: number, cout: number, h: number, w: number): Float32Array {
  const hw = h * w;
  const out = new Float32Array(cin * hw * cout * hw);
  for (let i = 0; i < cin; i++) {
    for (let p = 0; p < hw; p++) {
      const [yIn, xIn] = [Math.floor(p / w), p % w];
      const row = (i * hw + p) * cout * hw;
      for (let q = 0; q < hw; q++) {
        const [a, b] = [yIn - Math.floor(q / w) + 1, xIn - (q % w) + 1];
        if (a < 0 || a > 2 || b < 0 || b > 2) continue;
        const tap = ((a * 3 + b) * cin + i) * cout;
        for (let o = 0; o < cout; o++) out[row + o * hw + q] = weight[tap + o];
      }
    }
  }
  return out;
}

/**
 * The image and the parameters, each weight also as the forward's kernel (a dense block's as its
 * map, denseLayout): what every graph takes.
 */
export function inputs(shape: ConvGraphShape, dims: BlockDims[]): Field[] {
  const [h, w, c] = shape.inputShape;
  return [
    valueInfo(11, 'x', FLOAT, [shape.batch, h * w * c]),
    ...dims.flatMap((block, i) => [
      valueInfo(11, `body.${i}.weight`, FLOAT, [3, 3, block.cin, block.cout]),
      ...['bias', 'scale', 'offset'].map((p) => valueInfo(11, `body.${i}.${p}`, FLOAT, [block.cout])),
      valueInfo(11, kernelName(i), FLOAT, isDenseBlock(block) ? [block.cin * block.h * block.w, block.cout * block.h * block.w] : [block.cout, block.cin, 3, 3]),
    ]),
  ];
}

/**
 * Which entry of each 2x2 window takes the pooled gradient, computed in the forward pass: the first
 * maximum in row-major order (tfjs' MaxPoolGrad; ties are common, e.g. the equal activations of a
 * plain background), as its flat index into the activations [N, C, h, w] (`argmax`, int64
 * [N, C, ph, pw]): what MaxPool's Indices output holds and MaxUnpool takes back.
 *
 * MaxPool's own Indices output would do, but onnxruntime computes it in a generic kernel about 20
 * times slower than the plain pool. Here the entries are told apart by three more max pools over
 * parts of each window, its top-left entry (1x1), its top row (1x2) and its left column (2x1), each
 * compared with the window's maximum m (A, T and L: 1 where equal), and the chosen entry's offset
 * in its window is
 *   0 (top-left) if A; else 1 (top-right) if T; else w (bottom-left) if L; else w + 1
 *   = (1 - A) (1 + (1 - T) (w - L)),
 * computed in float (exact: small integers; onnxruntime's int64 arithmetic is several times slower)
 * and added to the window's first entry's index, (n C + c) h w + 2 y w + 2 x (constant).
 * An odd edge's windows hold their real entries only, as the 2x2 pool's do, so no padded entry
 * is ever taken. Softplus also keeps its slope, sigmoid, at every activation (`slope`);
 * relu's is 1 at a positive maximum, and a window whose maximum is 0 gets no gradient (zeroed at
 * the pooled size in the backward pass).
 */
function argmaxNodes(shape: ConvGraphShape, b: (part: string) => string, { cout, h, w, ph, pw }: BlockDims, nodes: Field[], initializers: Field[]): void {
  // Padded at the end of an odd side where the part spans two entries (ceil_mode would also add a
  // window past the end of an even side where it spans one).
  const part = (name: string, [kh, kw]: [number, number]) =>
    node('MaxPool', [b('act')], [b(name)], { kernel_shape: [kh, kw], strides: [2, 2], pads: [0, 0, kh === 2 ? h % 2 : 0, kw === 2 ? w % 2 : 0] });
  const isMax = (name: string) => [node('Equal', [b(name), b('pool')], [b(`${name}.is_max`)]), node('Cast', [b(`${name}.is_max`)], [b(`${name}.max`)], { to: FLOAT })];
  // The per-plane and per-position parts of each window's first index; onnxruntime folds their sum
  // into one constant when it loads the graph.
  initializers.push(
    int64Tensor(b('plane.base'), [shape.batch, cout, 1, 1], Array.from({ length: shape.batch * cout }, (_, k) => k * h * w)),
    int64Tensor(b('window.base'), [1, 1, ph, pw], Array.from({ length: ph * pw }, (_, k) => 2 * Math.floor(k / pw) * w + 2 * (k % pw))),
    floatScalar(b('width'), w),
  );
  nodes.push(
    part('top_left', [1, 1]),
    part('top_row', [1, 2]),
    part('left_column', [2, 1]),
    ...isMax('top_left'),
    ...isMax('top_row'),
    ...isMax('left_column'),
    node('Sub', ['one', b('top_row.max')], [b('below_top_row')]),
    node('Sub', [b('width'), b('left_column.max')], [b('below_offset')]),
    node('Mul', [b('below_top_row'), b('below_offset')], [b('after_first.minus_one')]),
    node('Add', [b('after_first.minus_one'), 'one'], [b('after_first')]),
    node('Sub', ['one', b('top_left.max')], [b('after_top_left')]),
    node('Mul', [b('after_top_left'), b('after_first')], [b('window.offset.float')]),
    node('Cast', [b('window.offset.float')], [b('window.offset')], { to: INT64 }),
    node('Add', [b('plane.base'), b('window.base')], [b('window.first')]),
    node('Add', [b('window.first'), b('window.offset')], [b('argmax')]),
  );
  if (shape.activation === 'softplus') nodes.push(node('Sigmoid', [b('shifted')], [b('slope')]));
}

/**
 * The backward of the max pool and the activation: the pooled gradient `g` [N, C, ph, pw] to each
 * window's first maximum (MaxUnpool at `argmax`), [N, C, h, w], times the activation's slope.
 */
function unpoolNodes(shape: ConvGraphShape, b: (part: string) => string, { cout, h, w }: BlockDims, nodes: Field[], initializers: Field[]): void {
  const { activation } = shape;
  let g = b('pool_grad');
  if (activation === 'relu') {
    nodes.push(node('Greater', [b('pool'), 'zero'], [b('pool.positive')]), node('Cast', [b('pool.positive')], [b('pool.slope')], { to: FLOAT }), node('Mul', [g, b('pool.slope')], [b('pool_grad.live')]));
    g = b('pool_grad.live');
  }
  initializers.push(int64Vector(b('act.shape'), [shape.batch, cout, h, w]));
  // The pads make MaxUnpool's smallest output h x w on an odd side, as the ceil-mode pool's input.
  nodes.push(node('MaxUnpool', [g, b('argmax'), b('act.shape')], [activation === 'relu' ? b('shifted_grad') : b('act_grad')], { kernel_shape: [2, 2], strides: [2, 2], pads: [0, 0, h % 2, w % 2] }));
  if (activation === 'softplus') nodes.push(node('Mul', [b('act_grad'), b('slope')], [b('shifted_grad')]));
}

/** The forward nodes; with `train`, MaxPool also answers its indices. */
export function forwardNodes(shape: ConvGraphShape, dims: BlockDims[], train: boolean): { nodes: Field[]; initializers: Field[] } {
  const { batch: n, inputShape } = shape;
  const initializers = [
    int64Vector('image.shape', [n, ...inputShape]),
    int64Vector('channel.shape.3', [-1, 1, 1]),
    ...(train ? [floatScalar('one', 1)] : []),
  ];
  const nodes = [node('Reshape', ['x', 'image.shape'], ['image']), node('Transpose', ['image'], ['b0.input'], { perm: [0, 3, 1, 2] })];
  let h = 'b0.input';
  dims.forEach((_, i) => {
    const b = (part: string) => `b${i}.${part}`;
    const p = (part: string) => `body.${i}.${part}`;
    const { cin, cout, h: height, w: width } = dims[i];
    if (isDenseBlock(dims[i])) {
      initializers.push(int64Vector(b('input.flat.shape'), [n, cin * height * width]), int64Vector(b('conv.shape'), [n, cout, height, width]));
      nodes.push(
        node('Reshape', [h, b('input.flat.shape')], [b('input.flat')]),
        node('MatMul', [b('input.flat'), kernelName(i)], [b('conv.flat')]),
        node('Reshape', [b('conv.flat'), b('conv.shape')], [b('conv.unbiased')]),
        node('Reshape', [p('bias'), 'channel.shape.3'], [b('bias.channel')]),
        node('Add', [b('conv.unbiased'), b('bias.channel')], [b('conv')]),
      );
    } else {
      nodes.push(node('Conv', [h, kernelName(i), p('bias')], [b('conv')], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] }));
    }
    nodes.push(node('Reshape', [p('scale'), 'channel.shape.3'], [b('scale')]), node('Reshape', [p('offset'), 'channel.shape.3'], [b('offset')]));
    // The per-channel scale and offset, spread over (c, h, w), inside the one normalisation kernel;
    // training also keeps the mean and reciprocal standard deviation, which with the convolution's
    // output are what the backward pass reads of the layer norm (the normalised activations
    // themselves would cost two more passes: a LayerNormalization without the affine, then Mul and Add).
    initializers.push(int64Vector(b('feature.shape'), [cout, height, width]));
    nodes.push(
      node('Expand', [b('scale'), b('feature.shape')], [b('scale.full')]),
      node('Expand', [b('offset'), b('feature.shape')], [b('offset.full')]),
      node('LayerNormalization', [b('conv'), b('scale.full'), b('offset.full')], train ? [b('shifted'), b('mean'), b('rstd')] : [b('shifted')], { axis: 1, epsilon: { float: NORM_EPSILON } }),
    );
    nodes.push(
      node(shape.activation === 'relu' ? 'Relu' : 'Softplus', [b('shifted')], [b('act')]),
      node('MaxPool', [b('act')], [b('pool')], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 }),
    );
    if (train) argmaxNodes(shape, b, dims[i], nodes, initializers);
    h = b('pool');
  });
  initializers.push(int64Vector('embedding.shape', [n, embeddingWidth(dims)]));
  nodes.push(node('Transpose', [h], ['body.nhwc'], { perm: [0, 2, 3, 1] }), node('Reshape', ['body.nhwc', 'embedding.shape'], ['embedding']));
  return { nodes, initializers };
}

/** The dims of each saved tensor, for the graph outputs (training forward) and inputs (backward). */
function savedInfo(field: 11 | 12, shape: ConvGraphShape, dims: BlockDims[]): Field[] {
  const n = shape.batch;
  const last = dims[dims.length - 1];
  return [
    ...dims.flatMap(({ cout, h, w, ph, pw }, i) => [
      valueInfo(field, `b${i}.conv`, FLOAT, [n, cout, h, w]),
      valueInfo(field, `b${i}.mean`, FLOAT, [n, 1, 1, 1]),
      valueInfo(field, `b${i}.rstd`, FLOAT, [n, 1, 1, 1]),
      valueInfo(field, `b${i}.argmax`, INT64, [n, cout, ph, pw]),
      ...(shape.activation === 'softplus' ? [valueInfo(field, `b${i}.slope`, FLOAT, [n, cout, h, w])] : []),
      ...(i > 0 ? [valueInfo(field, `b${i - 1}.pool`, FLOAT, [n, dims[i - 1].cout, h, w])] : []),
    ]),
    valueInfo(field, `b${dims.length - 1}.pool`, FLOAT, [n, last.cout, last.ph, last.pw]),
  ];
}

/** The width D of the embedding: the last block's pooled output, flattened. */
export function embeddingWidth(dims: readonly BlockDims[]): number {
  const last = dims[dims.length - 1];
  return last.ph * last.pw * last.cout;
}

function embeddingInfo(field: 11 | 12, name: string, shape: ConvGraphShape, dims: BlockDims[]): Field {
  return valueInfo(field, name, FLOAT, [shape.batch, embeddingWidth(dims)]);
}

/** The forward graph: `embedding` only (prediction, adaptation, evaluation), or with what the backward graph reads (`train`). */
export function forwardGraph(shape: ConvGraphShape, train = false): Uint8Array {
  const dims = blockDims(shape);
  const { nodes, initializers } = forwardNodes(shape, dims, train);
  const outputs = [embeddingInfo(12, 'embedding', shape, dims), ...(train ? savedInfo(12, shape, dims) : [])];
  return onnxModel({ name: train ? 'conv-body-train' : 'conv-body', nodes, initializers, inputs: inputs(shape, dims), outputs }, OPSET);
}

/**
 * The backward pass's nodes, from `embedding_grad` and the saved tensors to each parameter's
 * `<param>_grad`; `withImage` also lays out the image (a graph that runs the forward pass too has it).
 */
export function backwardNodes(shape: ConvGraphShape, dims: BlockDims[], withImage: boolean): { nodes: Field[]; initializers: Field[] } {
  const n = shape.batch;
  const last = dims[dims.length - 1];
  const initializers = [
    ...(withImage ? [int64Vector('image.shape', [n, ...shape.inputShape])] : []),
    int64Vector('channel.shape', [1, -1, 1, 1]),
    int64Vector('channel.axes', [0, 2, 3]),
    int64Vector('spatial.axes', [2, 3]),
    ...(shape.activation === 'relu' ? [floatScalar('zero', 0)] : []),
    int64Vector('feature.axes', [1, 2, 3]),
    int64Vector('pooled.nhwc', [n, last.ph, last.pw, last.cout]),
  ];
  const nodes = [
    ...(withImage ? [node('Reshape', ['x', 'image.shape'], ['image']), node('Transpose', ['image'], ['b0.input'], { perm: [0, 3, 1, 2] })] : []),
    node('Reshape', ['embedding_grad', 'pooled.nhwc'], ['embedding_grad.nhwc']),
    node('Transpose', ['embedding_grad.nhwc'], [`b${dims.length - 1}.pool_grad`], { perm: [0, 3, 1, 2] }),
  ];
  for (let i = dims.length - 1; i >= 0; i--) {
    const { cout, h, w } = dims[i];
    const b = (part: string) => `b${i}.${part}`;
    const p = (part: string) => `body.${i}.${part}`;
    const input = i === 0 ? 'b0.input' : `b${i - 1}.pool`;
    // Max pool and activation: the pooled gradient spread over each window, kept at its maximum, times the slope.
    unpoolNodes(shape, b, dims[i], nodes, initializers);
    // Layer norm over (c, h, w) of each example, its affine and bias, from per-(example, channel) sums
    // (the means over (c, h, w) are scale-weighted sums of them): few passes over the activations.
    //   S[n, c] = sum_hw g, P[n, c] = sum_hw g xhat (g: shifted_grad); doffset = sum_n S, dscale = sum_n P;
    //   m1[n] = sum_c scale S / chw, m2[n] = sum_c scale P / chw;
    //   dz = rstd (g scale - m1 - xhat m2) = g (rstd scale) - xhat (rstd m2) - rstd m1.
    // xhat itself is not kept (see forwardNodes): xhat = rstd (z - mean) with z the convolution's
    // output, so P = rstd (sum_hw g z - mean S), and dz = g A - z B - C with A = rstd scale,
    // B = rstd^2 m2 and C = rstd m1 - mean B: the same passes, over z.
    initializers.push(floatScalar(b('per_value'), 1 / (cout * h * w)));
    nodes.push(
      node('ReduceSum', [b('shifted_grad'), 'spatial.axes'], [b('S')], { keepdims: 1 }),
      node('Mul', [b('shifted_grad'), b('conv')], [b('shifted_grad.conv')]),
      node('ReduceSum', [b('shifted_grad.conv'), 'spatial.axes'], [b('Q')], { keepdims: 1 }),
      node('Mul', [b('mean'), b('S')], [b('mean.S')]),
      node('Sub', [b('Q'), b('mean.S')], [b('Q.centred')]),
      node('Mul', [b('rstd'), b('Q.centred')], [b('P')]),
      node('ReduceSum', [b('S'), 'channel.axes'], [gradName(p('offset'))], { keepdims: 0 }),
      node('ReduceSum', [b('P'), 'channel.axes'], [gradName(p('scale'))], { keepdims: 0 }),
      node('Reshape', [p('scale'), 'channel.shape'], [b('scale.channel')]),
      node('Mul', [b('S'), b('scale.channel')], [b('S.scaled')]),
      node('Mul', [b('P'), b('scale.channel')], [b('P.scaled')]),
      node('ReduceSum', [b('S.scaled'), 'feature.axes'], [b('S.sum')], { keepdims: 1 }),
      node('ReduceSum', [b('P.scaled'), 'feature.axes'], [b('P.sum')], { keepdims: 1 }),
      node('Mul', [b('S.sum'), b('per_value')], [b('m1')]),
      node('Mul', [b('P.sum'), b('per_value')], [b('m2')]),
      node('Mul', [b('rstd'), b('scale.channel')], [b('rstd.scale')]),
      node('Mul', [b('rstd'), b('m2')], [b('rstd.m2')]),
      node('Mul', [b('rstd'), b('m1')], [b('rstd.m1')]),
      node('Mul', [b('rstd'), b('rstd.m2')], [b('B')]),
      node('Mul', [b('mean'), b('B')], [b('mean.B')]),
      node('Sub', [b('rstd.m1'), b('mean.B')], [b('C')]),
    );
    if (i === 0) {
      firstBlockGradNodes(shape, dims[0], nodes, initializers);
      continue;
    }
    nodes.push(
      node('Mul', [b('shifted_grad'), b('rstd.scale')], [b('ln.a')]),
      node('Mul', [b('conv'), b('B')], [b('ln.b')]),
      node('Sub', [b('ln.a'), b('ln.b')], [b('ln.c')]),
      node('Sub', [b('ln.c'), b('C')], [b('conv_grad')]),
      node('ReduceSum', [b('conv_grad'), 'channel.axes'], [gradName(p('bias'))], { keepdims: 0 }),
    );
    kernelGradNodes(input, b, gradName(p('weight')), n, dims[i], nodes, initializers);
    if (i > 0 && isDenseBlock(dims[i])) {
      // The input gradient of a dense block: conv_grad times its map, transposed.
      initializers.push(int64Vector(b('conv_grad.flat.shape'), [n, cout * h * w]), int64Vector(b('input_grad.shape'), [n, dims[i].cin, h, w]));
      nodes.push(
        node('Reshape', [b('conv_grad'), b('conv_grad.flat.shape')], [b('conv_grad.flat')]),
        node('Gemm', [b('conv_grad.flat'), kernelName(i)], [b('input_grad.flat')], { transB: 1 }),
        node('Reshape', [b('input_grad.flat'), b('input_grad.shape')], [`b${i - 1}.pool_grad`]),
      );
    } else if (i > 0) {
      // The input gradient: a 'same' convolution of conv_grad with the kernel rotated 180 degrees, in
      // and out swapped ([in, out, 3, 3]); onnxruntime runs Conv in its blocked layout, faster than ConvTranspose.
      nodes.push(
        node('Conv', [b('conv_grad'), flippedKernelName(i)], [`b${i - 1}.pool_grad`], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] }),
      );
    }
  }
  return { nodes, initializers };
}

/** Each parameter's gradient, the backward pass's outputs. */
export function gradInfo(dims: BlockDims[]): Field[] {
  return dims.flatMap(({ cin, cout }, i) => [
    valueInfo(12, gradName(`body.${i}.weight`), FLOAT, [3, 3, cin, cout]),
    ...['bias', 'scale', 'offset'].map((part) => valueInfo(12, gradName(`body.${i}.${part}`), FLOAT, [cout])),
  ]);
}

/** The backward pass's rotated kernels (blocks after the first, but dense ones). */
export function flippedInfo(dims: BlockDims[]): Field[] {
  return dims.flatMap((block, i) => (i > 0 && !isDenseBlock(block) ? [valueInfo(11, flippedKernelName(i), FLOAT, [block.cin, block.cout, 3, 3])] : []));
}

/** The backward graph: saved tensors, `x`, the parameters and `embedding_grad` in, each parameter's `<param>_grad` out. */
export function backwardGraph(shape: ConvGraphShape): Uint8Array {
  const dims = blockDims(shape);
  const { nodes, initializers } = backwardNodes(shape, dims, true);
  const graphInputs = [...inputs(shape, dims), ...flippedInfo(dims), ...savedInfo(11, shape, dims), embeddingInfo(11, 'embedding_grad', shape, dims)];
  // The offsets, weights and forward kernels are not read by the backward pass; onnxruntime accepts
  // unused graph inputs, and the forward's input list lets one set of feeds serve both graphs.
  return onnxModel({ name: 'conv-body-backward', nodes, initializers, inputs: graphInputs, outputs: gradInfo(dims) }, OPSET);
}

/**
 * The first block's filter and bias gradients, without its conv gradient dz (no input gradient is
 * needed below it, and dz would cost four more passes over the largest activations):
 * dz = g A - z B - C (A [N, C], B and C [N]: backwardGraph) is linear, so its product with the
 * input's windows is taken term by term. The windows of the zero-padded input, tap-major with a
 * plane of ones after them, W [N, 9 in + 1, h w] (small: the image's channels), give per example
 * Gg = g W^T and Gz = z W^T [N, C, 9 in + 1] and Gw = sum_hw W; then
 * sum_n (A Gg - B Gz - C Gw) [C, 9 in + 1] is dw (transposed) and, in the ones column, the bias
 * gradient. One batched matrix product per term replaces the four passes and the nine Gemms.
 */
function firstBlockGradNodes(shape: ConvGraphShape, { cin, cout, h, w }: BlockDims, nodes: Field[], initializers: Field[]): void {
  const n = shape.batch;
  const b = (part: string) => `b0.${part}`;
  const taps = 9 * cin;
  initializers.push(
    int64Vector(b('pads'), [0, 0, 1, 1, 0, 0, 1, 1]),
    int64Vector(b('tap.axes'), [2, 3]),
    floatTensor(b('ones'), { shape: [n, 1, h, w], data: new Float32Array(n * h * w).fill(1) }),
    int64Vector(b('windows.shape'), [n, taps + 1, h * w]),
    int64Vector(b('rows.shape'), [n, cout, h * w]),
    int64Vector(b('per_example'), [n, cout, 1]),
    int64Vector(b('per_example.1'), [n, 1, 1]),
    int64Vector(b('batch.axis'), [0]),
    int64Vector(b('zero.start'), [0]),
    int64Vector(b('kernel.end'), [taps]),
    int64Vector(b('bias.end'), [taps + 1]),
    int64Vector(b('columns.axis'), [1]),
    int64Vector(b('last.axis'), [2]),
    int64Vector(b('kernel.shape'), [3, 3, cin, cout]),
    int64Vector(b('bias.shape'), [cout]),
  );
  nodes.push(node('Pad', ['b0.input', b('pads')], [b('input.padded')]));
  const windows: string[] = [];
  for (let a = 0; a < 3; a++) {
    for (let c = 0; c < 3; c++) {
      const tap = b(`tap${a}${c}`);
      initializers.push(int64Vector(`${tap}.starts`, [a, c]), int64Vector(`${tap}.ends`, [a + h, c + w]));
      nodes.push(node('Slice', [b('input.padded'), `${tap}.starts`, `${tap}.ends`, b('tap.axes')], [`${tap}.window`]));
      windows.push(`${tap}.window`);
    }
  }
  nodes.push(
    node('Concat', [...windows, b('ones')], [b('windows.planes')], { axis: 1 }),
    node('Reshape', [b('windows.planes'), b('windows.shape')], [b('windows')]),
    node('Transpose', [b('windows')], [b('windows.t')], { perm: [0, 2, 1] }),
    node('ReduceSum', [b('windows'), b('last.axis')], [b('windows.sum')], { keepdims: 0 }),
    node('Unsqueeze', [b('windows.sum'), b('columns.axis')], [b('Gw')]),
    node('Reshape', [b('shifted_grad'), b('rows.shape')], [b('g.rows')]),
    node('Reshape', [b('conv'), b('rows.shape')], [b('conv.rows')]),
    node('MatMul', [b('g.rows'), b('windows.t')], [b('Gg')]),
    node('MatMul', [b('conv.rows'), b('windows.t')], [b('Gz')]),
    node('Reshape', [b('rstd.scale'), b('per_example')], [b('A.rows')]),
    node('Reshape', [b('B'), b('per_example.1')], [b('B.rows')]),
    node('Reshape', [b('C'), b('per_example.1')], [b('C.rows')]),
    node('Mul', [b('Gg'), b('A.rows')], [b('Gg.A')]),
    node('Mul', [b('Gz'), b('B.rows')], [b('Gz.B')]),
    node('Mul', [b('Gw'), b('C.rows')], [b('Gw.C')]),
    node('Sub', [b('Gg.A'), b('Gz.B')], [b('G.ab')]),
    node('Sub', [b('G.ab'), b('Gw.C')], [b('G')]),
    node('ReduceSum', [b('G'), b('batch.axis')], [b('grads')], { keepdims: 0 }),
    node('Slice', [b('grads'), b('zero.start'), b('kernel.end'), b('columns.axis')], [b('kernel_grad.t')]),
    node('Transpose', [b('kernel_grad.t')], [b('kernel_grad.matrix')], { perm: [1, 0] }),
    node('Reshape', [b('kernel_grad.matrix'), b('kernel.shape')], [gradName('body.0.weight')]),
    node('Slice', [b('grads'), b('kernel.end'), b('bias.end'), b('columns.axis')], [b('bias_grad.column')]),
    node('Reshape', [b('bias_grad.column'), b('bias.shape')], [gradName('body.0.bias')]),
  );
}

/**
 * The filter gradient dw[a, b, i, o] = sum over n, y, x of xpad[n, y + a, x + b, i] dz[n, y, x, o]:
 * per tap (a, b), one product of the zero-padded input's shifted window ([N h w, in], channels last,
 * so each window is whole rows) transposed, by dz as [N h w, out]; the nine [in, out] products,
 * tap-major, are already [3, 3, in, out]. onnxruntime's Conv over the batch (examples as channels,
 * dz as an h x w kernel) computes the same but runs twice as long as the forward convolution.
 */
function kernelGradNodes(input: string, b: (part: string) => string, output: string, n: number, { cin, cout, h, w }: BlockDims, nodes: Field[], initializers: Field[]): void {
  initializers.push(
    int64Vector(b('pads'), [0, 1, 1, 0, 0, 1, 1, 0]),
    int64Vector(b('window.rows'), [n * h * w, cin]),
    int64Vector(b('conv_grad.rows'), [n * h * w, cout]),
    int64Vector(b('kernel.shape'), [3, 3, cin, cout]),
    int64Vector(b('tap.axes'), [1, 2]),
  );
  nodes.push(
    node('Transpose', [input], [b('input.nhwc')], { perm: [0, 2, 3, 1] }),
    node('Pad', [b('input.nhwc'), b('pads')], [b('input.padded')]),
    node('Transpose', [b('conv_grad')], [b('conv_grad.nhwc')], { perm: [0, 2, 3, 1] }),
    node('Reshape', [b('conv_grad.nhwc'), b('conv_grad.rows')], [b('conv_grad.matrix')]),
  );
  const taps: string[] = [];
  for (let a = 0; a < 3; a++) {
    for (let c = 0; c < 3; c++) {
      const tap = b(`tap${a}${c}`);
      initializers.push(int64Vector(`${tap}.starts`, [a, c]), int64Vector(`${tap}.ends`, [a + h, c + w]));
      nodes.push(
        node('Slice', [b('input.padded'), `${tap}.starts`, `${tap}.ends`, b('tap.axes')], [`${tap}.window`]),
        node('Reshape', [`${tap}.window`, b('window.rows')], [`${tap}.rows`]),
        node('Gemm', [`${tap}.rows`, b('conv_grad.matrix')], [`${tap}.grad`], { transA: 1 }),
      );
      taps.push(`${tap}.grad`);
    }
  }
  nodes.push(node('Concat', taps, [b('kernel_grad.matrix')], { axis: 0 }), node('Reshape', [b('kernel_grad.matrix'), b('kernel.shape')], [output]));
}
