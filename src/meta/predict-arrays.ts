/**
 * The engine's MLP forward pass in plain JavaScript over Float32Array parameters, for serving.
 *
 * A served task runs a tiny network (e.g. 1-40-40-1) on a handful of inputs per request; dispatching
 * that through tfjs costs far more in kernel launches and tensor bookkeeping than the arithmetic
 * itself. The maths is the engine's `forward` (act(h W + b) per hidden layer, then the head, then
 * softmax for classification), accumulated in double precision, so it agrees with `predict` to
 * float32 rounding.
 */

import type { Prediction } from './adapt.js';
import { HEAD_BIAS, HEAD_WEIGHT, modelShapes, type Activation, type ModelSpec, type ParamArrays } from './model.js';

/** One dense layer prepared for plain-JS serving, stored transposed: `weightT` is row-major [fanOut, fanIn]. */
interface PreparedLayer {
  /** Unit j's incoming weights are `weightT[j * fanIn .. (j + 1) * fanIn)`: each output is one contiguous dot product. */
  readonly weightT: Float32Array;
  readonly bias: Float32Array;
  readonly fanIn: number;
  readonly fanOut: number;
  /** Absent for the head (linear output). */
  readonly activation?: Activation;
}

/** Task parameters checked and laid out once, ready to run on any number of inputs. */
export interface PreparedMlp {
  readonly kind: ModelSpec['kind'];
  readonly inputDim: number;
  readonly outputDim: number;
  readonly layers: readonly PreparedLayer[];
  /** Widest layer output: the size of the scratch buffers. */
  readonly width: number;
  /**
   * Two activation buffers of `width`, reused by every call: runMlp is synchronous, so calls never
   * overlap, and serving allocates nothing per layer.
   */
  readonly scratch: readonly [Float64Array, Float64Array];
}

/** [fanIn, fanOut] row-major -> [fanOut, fanIn] row-major. */
function transpose(weight: Float32Array, fanIn: number, fanOut: number): Float32Array {
  const out = new Float32Array(weight.length);
  for (let i = 0; i < fanIn; i++) for (let j = 0; j < fanOut; j++) out[j * fanIn + i] = weight[i * fanOut + j];
  return out;
}

/**
 * Checks that `params` hold every parameter the spec names, shaped as it says: what serving and
 * export both need before they read task parameters (see taskParams). Extra entries (e.g. Meta-SGD's
 * `lr.*`) are allowed.
 * @throws RangeError naming a missing or mis-shaped parameter.
 */
export function checkTaskParams(spec: ModelSpec, params: ParamArrays): void {
  for (const [name, shape] of modelShapes(spec)) {
    const p = Object.hasOwn(params, name) ? params[name] : undefined;
    if (!p) throw new RangeError(`missing parameter '${name}'`);
    const size = shape.reduce((a, b) => a * b, 1);
    if (p.shape.length !== shape.length || p.shape.some((d, i) => d !== shape[i]) || p.data.length !== size) {
      throw new RangeError(`parameter '${name}' has shape [${p.shape}], expected [${shape}]`);
    }
  }
}

/**
 * Checks `params` (checkTaskParams) and lays them out as layers. Extra entries are ignored; biases
 * are shared, weights are copied transposed (the same size: a served head holds only the prepared copy).
 * @throws RangeError naming a missing or mis-shaped parameter.
 */
export function prepareMlp(spec: ModelSpec, params: ParamArrays): PreparedMlp {
  checkTaskParams(spec, params);
  const layers: PreparedLayer[] = [];
  let fanIn = spec.inputDim;
  spec.hidden.forEach((units, i) => {
    layers.push({ weightT: transpose(params[`body.${i}.weight`].data, fanIn, units), bias: params[`body.${i}.bias`].data, fanIn, fanOut: units, activation: spec.activation });
    fanIn = units;
  });
  layers.push({ weightT: transpose(params[HEAD_WEIGHT].data, fanIn, spec.outputDim), bias: params[HEAD_BIAS].data, fanIn, fanOut: spec.outputDim });
  const width = Math.max(spec.inputDim, ...layers.map((l) => l.fanOut));
  return { kind: spec.kind, inputDim: spec.inputDim, outputDim: spec.outputDim, layers, width, scratch: [new Float64Array(width), new Float64Array(width)] };
}

function activate(value: number, activation: Activation): number {
  if (activation === 'relu') return value > 0 ? value : 0;
  // softplus, written so that neither branch overflows.
  return value > 0 ? value + Math.log1p(Math.exp(-value)) : Math.log1p(Math.exp(value));
}

/** In place: logits -> probabilities (max subtracted first, so large logits do not overflow). */
function softmaxInPlace(values: Float64Array, n: number): void {
  let max = -Infinity;
  for (let j = 0; j < n; j++) if (values[j] > max) max = values[j];
  let sum = 0;
  for (let j = 0; j < n; j++) {
    values[j] = Math.exp(values[j] - max);
    sum += values[j];
  }
  for (let j = 0; j < n; j++) values[j] /= sum;
}

/**
 * Runs prepared parameters on `x`: row-major [n, inputDim]. The caller has checked the inputs are
 * finite (the HTTP layer does, naming the bad one).
 * @throws RangeError when `x` is not a whole number of rows.
 */
export function runMlp(mlp: PreparedMlp, x: Float32Array | Float64Array | readonly number[]): Prediction {
  if (x.length % mlp.inputDim !== 0) throw new RangeError(`x has ${x.length} values, not a multiple of inputDim ${mlp.inputDim}`);
  const n = x.length / mlp.inputDim;
  let [input, output] = mlp.scratch;
  const values: number[] = [];
  const labels: number[] = [];
  const probabilities: number[][] = [];
  for (let row = 0; row < n; row++) {
    for (let i = 0; i < mlp.inputDim; i++) input[i] = x[row * mlp.inputDim + i];
    for (const layer of mlp.layers) {
      const { weightT, bias, fanIn, fanOut, activation } = layer;
      // Four independent partial sums in registers: one serial chain of adds would wait on each
      // add's latency. In double precision the order changes nothing at float32 resolution.
      const whole = fanIn - (fanIn % 4);
      for (let j = 0; j < fanOut; j++) {
        const offset = j * fanIn;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        let i = 0;
        for (; i < whole; i += 4) {
          s0 += input[i] * weightT[offset + i];
          s1 += input[i + 1] * weightT[offset + i + 1];
          s2 += input[i + 2] * weightT[offset + i + 2];
          s3 += input[i + 3] * weightT[offset + i + 3];
        }
        for (; i < fanIn; i++) s0 += input[i] * weightT[offset + i];
        const sum = bias[j] + (s0 + s1 + (s2 + s3));
        output[j] = activation === undefined ? sum : activate(sum, activation);
      }
      const swap = input;
      input = output;
      output = swap;
    }
    if (mlp.kind === 'regression') {
      values.push(input[0]);
    } else {
      softmaxInPlace(input, mlp.outputDim);
      const p = Array.from(input.subarray(0, mlp.outputDim));
      let label = 0;
      for (let j = 1; j < p.length; j++) if (p[j] > p[label]) label = j;
      labels.push(label);
      probabilities.push(p);
    }
  }
  return mlp.kind === 'regression' ? { kind: 'regression', values } : { kind: 'classification', labels, probabilities };
}

/**
 * The engine's `predict` without tfjs: task parameters (see taskParams) on row-major inputs.
 * Prepare once with {@link prepareMlp} and call {@link runMlp} when serving many requests.
 */
export function predictArrays(spec: ModelSpec, params: ParamArrays, x: Float32Array | readonly number[]): Prediction {
  return runMlp(prepareMlp(spec, params), x);
}
