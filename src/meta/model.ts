/**
 * The model: a functional MLP whose parameters are plain named tensors, so the inner loop can take
 * gradients with respect to them and produce new tensors (adapted parameters) without mutation.
 *
 * It has two parts, as in the source idea: the body maps inputs into a common representation
 * (hidden layers `body.<i>.weight` / `body.<i>.bias`), and the head maps that representation to the
 * task's output (`head.weight` / `head.bias`: one output for regression, one logit per class for
 * N-way classification).
 *
 * The same forward pass serves one task and a whole meta-batch: with parameters of shape
 * [in, out] / [out] and inputs [n, in] it is an ordinary MLP; with parameters tiled to
 * [T, in, out] / [T, 1, out] and inputs [T, n, in] it runs T tasks as batched matMuls.
 */

import { tf } from './backend.js';
import type { Rng } from './rng.js';
import type { TaskKind } from './types.js';

/** Hidden-layer nonlinearities whose second-order gradients are correct in tfjs (relu, softplus). */
export type Activation = 'relu' | 'softplus';

export const ACTIVATIONS: readonly Activation[] = ['relu', 'softplus'];

/** Architecture choices a client makes. */
export interface ModelConfig {
  /** Hidden layer sizes of the body. Default [128, 64] (the MAML paper uses [40, 40]). */
  hidden?: number[];
  /** Hidden-layer nonlinearity. Default 'relu'. */
  activation?: Activation;
}

/** Everything needed to build and run the network. */
export interface ModelSpec {
  kind: TaskKind;
  inputDim: number;
  /** 1 for regression; the number of ways (classes) for classification. */
  outputDim: number;
  hidden: number[];
  activation: Activation;
}

export const DEFAULT_HIDDEN: readonly number[] = [128, 64];
export const DEFAULT_ACTIVATION: Activation = 'relu';

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
  const hidden = config.hidden ?? [...DEFAULT_HIDDEN];
  const activation = config.activation ?? DEFAULT_ACTIVATION;
  if (!Number.isInteger(inputDim) || inputDim < 1) throw new RangeError(`inputDim must be a positive integer, got ${inputDim}`);
  if (hidden.length === 0 || hidden.some((h) => !Number.isInteger(h) || h < 1)) {
    throw new RangeError(`model.hidden must be a non-empty list of positive integers, got [${hidden.join(', ')}]`);
  }
  if (!ACTIVATIONS.includes(activation)) throw new RangeError(`model.activation must be one of ${ACTIVATIONS.join(', ')}, got '${activation}'`);
  let outputDim = 1;
  if (kind === 'classification') {
    if (ways === undefined || !Number.isInteger(ways) || ways < 2) throw new RangeError(`classification needs ways >= 2, got ${ways}`);
    outputDim = ways;
  }
  return { kind, inputDim, outputDim, hidden: [...hidden], activation };
}

/** Names and shapes of the body's parameters, input layer first. */
export function bodyShapes(spec: ModelSpec): Array<[string, number[]]> {
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
  const embedding = spec.hidden[spec.hidden.length - 1];
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
 * Initial values: weights and biases uniform in +-1/sqrt(fanIn) (PyTorch's nn.Linear default, which
 * the MAML reference implementations use), drawn from `rng` in the fixed parameter order.
 */
export function initModelParams(spec: ModelSpec, rng: Rng, names?: readonly string[]): ParamArrays {
  const out: ParamArrays = {};
  let fanIn = spec.inputDim;
  for (const [name, shape] of modelShapes(spec)) {
    // A bias shares its layer's fan-in: it follows its weight in modelShapes' order.
    if (name.endsWith('.weight')) fanIn = shape[0];
    const bound = 1 / Math.sqrt(fanIn);
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = rng.uniform(-bound, bound);
    if (!names || names.includes(name)) out[name] = { shape, data };
  }
  return out;
}

// tfjs types the function as taking its inputs and a save callback in one rest parameter.
export type CustomGradient = Parameters<typeof tf.customGrad>[0];

/**
 * a @ b for 2-D a and b, with a gradient that stays on the same path. The wasm backend runs only a
 * plain [m, k] x [k, n] product on XNNPACK; a transposed or batched one falls back to a loop that
 * is 5-10x slower at these sizes, and tfjs' own matMul gradient uses the transposed forms. So
 * transposes are made explicit (cheap copies) and every product, forward or backward, is a plain one.
 */
export const plainMatMul: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, [sa, sb]: tf.Tensor[]) => [plainMatMul(dy, tf.transpose(sb)), plainMatMul(tf.transpose(sa), dy)],
  };
}) as unknown as CustomGradient) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

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

/** Repeats shared parameters once per task: [in, out] -> [T, in, out], [out] -> [T, 1, out]. */
export function tileParams(params: NamedTensors, tasks: number): NamedTensors {
  // Broadcasting against zeros rather than tf.tile: tile's gradient is a sum of T slices (two ops
  // per task and parameter, on every backward pass), broadcast-add's is a single reduction.
  const zeros = tf.zeros([tasks, 1, 1]);
  const out: NamedTensors = {};
  for (const [name, p] of Object.entries(params)) {
    out[name] = tf.add(p.rank === 1 ? tf.reshape(p, [1, 1, p.shape[0]]) : p, zeros);
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
