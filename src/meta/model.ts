/**
 * The model: a functional network whose parameters are plain named tensors, so the inner loop can take
 * gradients with respect to them and produce new tensors (adapted parameters) without mutation.
 *
 * It has two parts, as in the source idea: the body maps inputs into a common representation, and
 * the head maps that representation to the task's output (`head.weight` / `head.bias`: one output for
 * regression, one logit per class for N-way classification). The body is an MLP (hidden layers
 * `body.<i>.weight` / `body.<i>.bias`) or a convolutional stack for images (conv.ts: Conv-4 by
 * default, `body.<i>.weight` / `.bias` / `.scale` / `.offset` per block).
 *
 * The same forward pass serves one task and a whole meta-batch: with parameters of shape
 * [in, out] / [out] and inputs [n, in] it is an ordinary MLP; with parameters tiled to
 * [T, in, out] / [T, 1, out] and inputs [T, n, in] it runs T tasks as batched matMuls.
 */

import { tf } from './backend.js';
import { plainMatMul } from './ops.js';
import { convEmbed, convEmbeddingDim, convShapes, DEFAULT_CHANNELS, imageShapeError, type ImageShape } from './conv.js';
import type { Rng } from './rng.js';
import type { TaskKind } from './types.js';

/** Hidden-layer nonlinearities whose second-order gradients are correct in tfjs (relu, softplus). */
export type Activation = 'relu' | 'softplus';

export const ACTIVATIONS: readonly Activation[] = ['relu', 'softplus'];

/** The body's architecture: fully connected layers, or 3x3 convolution blocks over an image. */
export type BodyKind = 'mlp' | 'conv';

export const BODY_KINDS: readonly BodyKind[] = ['mlp', 'conv'];

/** Architecture choices a client makes. */
export interface ModelConfig {
  /** Default 'mlp'. */
  body?: BodyKind;
  /** MLP body: hidden layer sizes. Default [128, 64] (the MAML paper uses [40, 40]). */
  hidden?: number[];
  /** Conv body: [height, width, channels] of an input; inputs stay flattened row-major (h, w, c). */
  inputShape?: number[];
  /** Conv body: output channels of each block. Default [64, 64, 64, 64] (Conv-4). */
  channels?: number[];
  /** Hidden-layer nonlinearity. Default 'relu'. */
  activation?: Activation;
}

/** An architecture with its body named, as jobs and meta-models store it. */
export type StoredModelConfig = ModelConfig & { body: BodyKind; activation: Activation };

/** Everything needed to build and run the network. */
export interface ModelSpec {
  kind: TaskKind;
  inputDim: number;
  /** 1 for regression; the number of ways (classes) for classification. */
  outputDim: number;
  body: BodyKind;
  /** MLP body: hidden layer sizes ([] for a conv body). */
  hidden: number[];
  /** Conv body only. */
  inputShape?: ImageShape;
  /** Conv body only: output channels of each block. */
  channels?: number[];
  activation: Activation;
}

export const DEFAULT_HIDDEN: readonly number[] = [128, 64];
export const DEFAULT_ACTIVATION: Activation = 'relu';
/** Most blocks of a conv body (each halves the image; more only repeat 1x1). */
export const MAX_CONV_BLOCKS = 8;

/** Parameters as tensors, by name. */
export type NamedTensors = Record<string, tf.Tensor>;

/** One parameter as plain data (what checkpoints, the codec and the database hold). */
export interface ParamArray {
  shape: number[];
  data: Float32Array;
}

/** Parameters as plain data, by name. */
export type ParamArrays = Record<string, ParamArray>;

export const HEAD_WEIGHT = 'head.weight';
export const HEAD_BIAS = 'head.bias';
export const HEAD_NAMES: readonly string[] = [HEAD_WEIGHT, HEAD_BIAS];

/** Builds a ModelSpec from a task's shape and the client's choices, validating them. */
export function modelSpec(kind: TaskKind, inputDim: number, config: ModelConfig = {}, ways?: number): ModelSpec {
  const body = config.body ?? 'mlp';
  const activation = config.activation ?? DEFAULT_ACTIVATION;
  const positiveList = (list: number[]) => list.length > 0 && list.every((h) => Number.isInteger(h) && h >= 1);
  if (!Number.isInteger(inputDim) || inputDim < 1) throw new RangeError(`inputDim must be a positive integer, got ${inputDim}`);
  if (!BODY_KINDS.includes(body)) throw new RangeError(`model.body must be one of ${BODY_KINDS.join(', ')}, got '${body}'`);
  if (!ACTIVATIONS.includes(activation)) throw new RangeError(`model.activation must be one of ${ACTIVATIONS.join(', ')}, got '${activation}'`);
  let outputDim = 1;
  if (kind === 'classification') {
    if (ways === undefined || !Number.isInteger(ways) || ways < 2) throw new RangeError(`classification needs ways >= 2, got ${ways}`);
    outputDim = ways;
  }
  if (body === 'mlp') {
    if (config.inputShape !== undefined || config.channels !== undefined) throw new RangeError(`model.${config.inputShape ? 'inputShape' : 'channels'} applies to the conv body only (model.body: 'conv')`);
    const hidden = config.hidden ?? [...DEFAULT_HIDDEN];
    if (!positiveList(hidden)) throw new RangeError(`model.hidden must be a non-empty list of positive integers, got [${hidden.join(', ')}]`);
    return { kind, inputDim, outputDim, body, hidden: [...hidden], activation };
  }
  if (config.hidden !== undefined) throw new RangeError("model.hidden applies to the mlp body only; a conv body takes model.channels");
  const shape = config.inputShape;
  const shapeError = imageShapeError(shape, inputDim);
  if (shapeError) throw new RangeError(`model.inputShape (a conv body's input image) ${shapeError}`);
  const channels = config.channels ?? [...DEFAULT_CHANNELS];
  if (!positiveList(channels) || channels.length > MAX_CONV_BLOCKS) throw new RangeError(`model.channels must be 1 to ${MAX_CONV_BLOCKS} positive integers, got [${channels.join(', ')}]`);
  const [h, w, c] = shape as number[];
  return { kind, inputDim, outputDim, body, hidden: [], inputShape: [h, w, c], channels: [...channels], activation };
}

/** The architecture as a client would ask for it again (what meta-models and jobs store). */
export function modelConfigOf(spec: ModelSpec): StoredModelConfig {
  if (spec.body === 'conv') return { body: 'conv', inputShape: [...spec.inputShape!], channels: [...spec.channels!], activation: spec.activation };
  return { body: 'mlp', hidden: [...spec.hidden], activation: spec.activation };
}

/**
 * A stored architecture as clients read it: rows written before conv bodies existed hold no `body`
 * and are MLPs.
 */
export function storedModelConfig(stored: unknown): StoredModelConfig {
  const config = stored as ModelConfig;
  return { ...config, body: config.body ?? 'mlp', activation: config.activation ?? DEFAULT_ACTIVATION };
}

/** The widest layer output of the body for one example (what bounds the memory of a forward pass). */
export function activationWidth(spec: ModelSpec): number {
  if (spec.body === 'mlp') return Math.max(spec.inputDim, ...spec.hidden);
  const [h, w, c] = spec.inputShape!;
  return Math.max(h * w * c, ...spec.channels!.map((out) => h * w * out));
}

/**
 * Width of the body's output, the common representation the head reads. An MLP without hidden
 * layers (the head on precomputed embeddings: the ONNX Runtime engine, ort/index.ts) reads its inputs.
 */
export function embeddingDim(spec: ModelSpec): number {
  if (spec.body === 'conv') return convEmbeddingDim(spec.inputShape!, spec.channels!);
  return spec.hidden.length === 0 ? spec.inputDim : spec.hidden[spec.hidden.length - 1];
}

/** Names and shapes of the body's parameters, input layer first. */
export function bodyShapes(spec: ModelSpec): Array<[string, number[]]> {
  if (spec.body === 'conv') return convShapes(spec.inputShape!, spec.channels!);
  const shapes: Array<[string, number[]]> = [];
  let fanIn = spec.inputDim;
  spec.hidden.forEach((units, i) => {
    shapes.push([`body.${i}.weight`, [fanIn, units]], [`body.${i}.bias`, [units]]);
    fanIn = units;
  });
  return shapes;
}

/** Names and shapes of the head's parameters. */
export function headShapes(spec: ModelSpec): Array<[string, number[]]> {
  const embedding = embeddingDim(spec);
  return [
    [HEAD_WEIGHT, [embedding, spec.outputDim]],
    [HEAD_BIAS, [spec.outputDim]],
  ];
}

/** Names and shapes of all model parameters in a fixed order (body, then head). */
export function modelShapes(spec: ModelSpec): Array<[string, number[]]> {
  return [...bodyShapes(spec), ...headShapes(spec)];
}

/** Splits named parameters into body and head. */
export function splitBodyHead<T>(params: Record<string, T>): { body: Record<string, T>; head: Record<string, T> } {
  const body: Record<string, T> = {};
  const head: Record<string, T> = {};
  for (const [name, value] of Object.entries(params)) {
    if (name.startsWith('body.')) body[name] = value;
    else if (name.startsWith('head.')) head[name] = value;
  }
  return { body, head };
}

/**
 * Initial values: weights and biases uniform in +-1/sqrt(fanIn) (PyTorch's nn.Linear and nn.Conv2d
 * default, which the MAML reference implementations use), drawn from `rng` in the fixed parameter
 * order; a conv block's normalisation starts as the identity (scale 1, offset 0, nothing drawn).
 */
export function initModelParams(spec: ModelSpec, rng: Rng, names?: readonly string[]): ParamArrays {
  const out: ParamArrays = {};
  let fanIn = spec.inputDim;
  for (const [name, shape] of modelShapes(spec)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith('.scale')) data.fill(1);
    else if (!name.endsWith('.offset')) {
      // A bias shares its layer's fan-in (every input a unit reads: [in, out] or [3, 3, in, out]):
      // it follows its weight in modelShapes' order.
      if (name.endsWith('.weight')) fanIn = shape.slice(0, -1).reduce((a, b) => a * b, 1);
      const bound = 1 / Math.sqrt(fanIn);
      for (let i = 0; i < data.length; i++) data[i] = rng.uniform(-bound, bound);
    }
    if (!names || names.includes(name)) out[name] = { shape, data };
  }
  return out;
}

/**
 * act(h W + b). Per-task weights [T, in, out] run as one batched matMul; a weight shared by all tasks
 * ([in, out]) with batched inputs [T, n, in] runs as a single [T*n, in] matMul (ANIL's and ProtoNets'
 * body, which the inner loop does not adapt, needs no tiling), through plainMatMul so that the outer
 * loop's gradient into that body stays on the fast path too. Not tf.fused.matMul: the wasm backend
 * only fuses a rank-1 bias, and the per-task biases are [T, 1, out].
 */
function dense(h: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, activation?: Activation): tf.Tensor {
  const affine = (a: tf.Tensor): tf.Tensor => tf.add(a.rank === 2 && weight.rank === 2 ? plainMatMul(a, weight) : tf.matMul(a, weight), bias);
  let out: tf.Tensor;
  if (h.rank === 3 && weight.rank === 2) {
    const [tasks, n, width] = h.shape as [number, number, number];
    out = tf.reshape(affine(tf.reshape(h, [tasks * n, width])), [tasks, n, weight.shape[1] as number]);
  } else {
    out = affine(h);
  }
  if (activation === undefined) return out;
  return activation === 'relu' ? tf.relu(out) : tf.softplus(out);
}

/** The body's output (the common representation), [n, D] or [T, n, D]. */
export function embed(spec: ModelSpec, params: NamedTensors, x: tf.Tensor): tf.Tensor {
  if (spec.body === 'conv') return convEmbed(spec.inputShape!, spec.channels!, spec.activation, params, x);
  let h = x;
  for (let i = 0; i < spec.hidden.length; i++) {
    h = dense(h, params[`body.${i}.weight`], params[`body.${i}.bias`], spec.activation);
  }
  return h;
}

/** The head applied to a representation: regression values [.., n, 1] or class logits [.., n, C]. */
export function applyHead(head: NamedTensors, h: tf.Tensor): tf.Tensor {
  return dense(h, head[HEAD_WEIGHT], head[HEAD_BIAS]);
}

/** The whole network: body then head. */
export function forward(spec: ModelSpec, params: NamedTensors, x: tf.Tensor): tf.Tensor {
  return applyHead(params, embed(spec, params, x));
}

/**
 * Repeats shared parameters once per task: [out] -> [T, 1, out] (a bias, broadcast over a task's
 * examples), any other shape s -> [T, ...s].
 */
export function tileParams(params: NamedTensors, tasks: number): NamedTensors {
  // Broadcasting against zeros rather than tf.tile: tile's gradient is a sum of T slices (two ops
  // per task and parameter, on every backward pass), broadcast-add's is a single reduction.
  const zeros: Record<number, tf.Tensor> = {};
  const out: NamedTensors = {};
  for (const [name, p] of Object.entries(params)) {
    const shape = p.rank === 1 ? [1, p.shape[0]] : p.shape;
    zeros[shape.length] ??= tf.zeros([tasks, ...shape.map(() => 1)]);
    out[name] = tf.add(tf.reshape(p, [1, ...shape]), zeros[shape.length]);
  }
  return out;
}

/** Uploads plain parameters as tensors. */
export function toTensors(params: ParamArrays): NamedTensors {
  const out: NamedTensors = {};
  for (const [name, { shape, data }] of Object.entries(params)) out[name] = tf.tensor(data, shape, 'float32');
  return out;
}

/** Downloads tensors as plain parameters (synchronously: small tensors, called once per export). */
export function toArrays(params: NamedTensors): ParamArrays {
  const out: ParamArrays = {};
  for (const [name, t] of Object.entries(params)) out[name] = { shape: [...t.shape], data: Float32Array.from(t.dataSync()) };
  return out;
}

/** Deep copy of plain parameters (so callers can never alias engine-owned buffers). */
export function copyArrays(params: ParamArrays): ParamArrays {
  const out: ParamArrays = {};
  for (const [name, { shape, data }] of Object.entries(params)) out[name] = { shape: [...shape], data: Float32Array.from(data) };
  return out;
}
