/**
 * The engine's forward pass in plain JavaScript over Float32Array parameters, for serving: the MLP
 * body and the conv body (conv.ts), then the head.
 *
 * A served MLP is a tiny network run on a handful of inputs per request; dispatching that through
 * tfjs costs far more in kernel launches and tensor bookkeeping than the arithmetic itself, so
 * serving runs it here. A conv body's convolutions are big enough that the engine's compiled tfjs
 * kernels win (measured, see convServing), so serving runs those through `predict` unless tfjs runs
 * on its plain cpu backend; runConv is also the reference the engine and the exports are tested
 * against. The maths is the engine's `forward` (model.ts, conv.ts), then softmax for classification,
 * accumulated in double precision, so it agrees with `predict` to float32 rounding.
 */

import { predict, type Prediction } from './adapt.js';
import { activeBackend, tf, tidyValues, type BackendName } from './backend.js';
import { NORM_EPSILON, pooledSide } from './conv.js';
import { chooseEngine } from './engine.js';
import { headSpec, ortAvailable, ortEmbedPrepared, prepareBody, withoutBody, type PreparedBody } from './ort/index.js';
import { embed, embeddingDim, HEAD_BIAS, HEAD_WEIGHT, modelShapes, toTensors, type Activation, type ModelSpec, type ParamArrays } from './model.js';

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
  readonly body: 'mlp';
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

/** One conv block prepared for plain-JS serving: its parameters as the engine holds them, and its sizes. */
interface PreparedBlock {
  /** [3, 3, in, out] row-major (HWIO), the engine's own array: for one tap and input channel the `out` weights are contiguous. */
  readonly weight: Float32Array;
  readonly bias: Float32Array;
  readonly scale: Float32Array;
  readonly offset: Float32Array;
  /** The block's input image: height, width, channels; `out` channels leave it. */
  readonly height: number;
  readonly width: number;
  readonly in: number;
  readonly out: number;
}

/** A conv body and its head, checked and laid out once. */
export interface PreparedConv {
  readonly body: 'conv';
  readonly kind: ModelSpec['kind'];
  readonly inputDim: number;
  readonly outputDim: number;
  readonly activation: Activation;
  readonly blocks: readonly PreparedBlock[];
  readonly head: PreparedLayer;
  /** Sizes of the scratch buffers it needs (see convScratch): the largest block input or pooled output, and block output. */
  readonly imageSize: number;
  readonly convSize: number;
}

/**
 * Buffers every conv network shares, grown to the largest one run so far: runConv is synchronous,
 * so calls never overlap, and a cached task holds no buffers of its own (a Conv-4 block output is
 * 100 KB in float64). `image` holds a block's input and then its pooled output (the next block's
 * input, finally the embedding), `conv` a block's activations before pooling, `logits` the head's output.
 */
const convScratch = { image: new Float64Array(0), conv: new Float64Array(0), logits: new Float64Array(0) };

/**
 * A network that serving runs through the engine's tfjs `predict` (adapt.ts): its architecture and
 * checked task parameters, uploaded on each call (a cached task holds no tensors, which the cache
 * would have to dispose on eviction).
 */
export interface EngineServed {
  readonly body: 'engine';
  readonly kind: ModelSpec['kind'];
  readonly inputDim: number;
  readonly outputDim: number;
  readonly spec: ModelSpec;
  readonly params: ParamArrays;
  /**
   * Where the engine runs conv bodies on ONNX Runtime: the body's parameters as its inputs, prepared
   * once, and the head, prepared for runMlp on the body's embeddings (a few hundred multiply-adds,
   * which tfjs would spend more on dispatching).
   */
  readonly onnx?: { readonly body: PreparedBody; readonly head: PreparedMlp };
}

/** A task's whole network prepared for serving: what the predict cache holds. */
export type PreparedNetwork = PreparedMlp | PreparedConv | EngineServed;

/** How serving runs a conv body: through the engine's tfjs `predict`, or in plain JS (runConv). */
export type ConvServing = 'engine' | 'plain-js';

/**
 * How serving runs a conv body on a tfjs backend (default: the active one). Measured by
 * bench/predict-conv.ts (`npm run bench:predict-conv`), figures in bench/results/predict-conv.json:
 * Conv-4 (64 channels) on 14x14x1 digits, 5-way, one thread, quiet 2-core machine. Milliseconds per
 * call, 1 input / 16 inputs: tfjs on the wasm backend 1.2 / 5.7 (including the upload of the task's
 * parameters on every call), plain JS 3.4 / 54, tfjs on the cpu backend 14 / 202. wasm's SIMD
 * convolutions (XNNPACK) outrun scalar JavaScript 2.8x at one input and 9.5x at 16, so a backend with
 * compiled kernels serves conv bodies; tfjs' cpu backend is JavaScript kernels plus dispatch, ~4x
 * slower than runConv, so on it (and before any backend is initialised) plain JS serves them. The
 * native backends (tfjs-node, -gpu) are not installed where this was measured and are taken to be at
 * least as fast as wasm. An MLP's few small matrix products always run faster in plain JS (runMlp):
 * dispatch dominates them. Where onnxruntime-node loads, `predict` runs the conv body on ONNX Runtime
 * instead (chooseEngine), faster than tfjs-wasm (bench/results/conv-engine.json), so the engine route serves.
 */
export function convServing(backend: BackendName | null = activeBackend()): ConvServing {
  // ONNX Runtime, when it loads, serves conv bodies through `predict` on any backend (bench:conv-engine).
  if (backend !== null && backend !== 'tensorflow-gpu' && ortAvailable()) return 'engine';
  return backend === null || backend === 'cpu' ? 'plain-js' : 'engine';
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

function headLayer(params: ParamArrays, fanIn: number, outputDim: number): PreparedLayer {
  return { weightT: transpose(params[HEAD_WEIGHT].data, fanIn, outputDim), bias: params[HEAD_BIAS].data, fanIn, fanOut: outputDim };
}

/**
 * Checks `params` (checkTaskParams) and lays them out as layers of an MLP spec. Extra entries are
 * ignored; biases are shared, weights are copied transposed (the same size: a served head holds
 * only the prepared copy).
 * @throws RangeError naming a missing or mis-shaped parameter, or for a spec that is not an MLP.
 */
export function prepareMlp(spec: ModelSpec, params: ParamArrays): PreparedMlp {
  if (spec.body !== 'mlp') throw new RangeError(`prepareMlp needs an MLP body, not '${spec.body}' (see prepareNetwork)`);
  checkTaskParams(spec, params);
  const layers: PreparedLayer[] = [];
  let fanIn = spec.inputDim;
  spec.hidden.forEach((units, i) => {
    layers.push({ weightT: transpose(params[`body.${i}.weight`].data, fanIn, units), bias: params[`body.${i}.bias`].data, fanIn, fanOut: units, activation: spec.activation });
    fanIn = units;
  });
  layers.push(headLayer(params, fanIn, spec.outputDim));
  const width = Math.max(spec.inputDim, ...layers.map((l) => l.fanOut));
  return { body: 'mlp', kind: spec.kind, inputDim: spec.inputDim, outputDim: spec.outputDim, layers, width, scratch: [new Float64Array(width), new Float64Array(width)] };
}

/**
 * Checks `params` (checkTaskParams) and prepares a conv spec's body and head. The body's parameters
 * are shared, not copied (the engine's HWIO layout is the one the loops want, and a cached task
 * then shares its body with the meta-model); the head's weight is copied transposed.
 * @throws RangeError naming a missing or mis-shaped parameter, or for a spec that is not a conv body.
 */
export function prepareConv(spec: ModelSpec, params: ParamArrays): PreparedConv {
  if (spec.body !== 'conv') throw new RangeError(`prepareConv needs a conv body, not '${spec.body}' (see prepareNetwork)`);
  checkTaskParams(spec, params);
  let [height, width, channels] = spec.inputShape!;
  let imageSize = spec.inputDim;
  let convSize = 0;
  const blocks = spec.channels!.map((out, i): PreparedBlock => {
    const block = {
      weight: params[`body.${i}.weight`].data,
      bias: params[`body.${i}.bias`].data,
      scale: params[`body.${i}.scale`].data,
      offset: params[`body.${i}.offset`].data,
      height,
      width,
      in: channels,
      out,
    };
    convSize = Math.max(convSize, height * width * out);
    [height, width, channels] = [pooledSide(height), pooledSide(width), out];
    imageSize = Math.max(imageSize, height * width * out);
    return block;
  });
  const embedding = height * width * channels;
  return {
    body: 'conv',
    kind: spec.kind,
    inputDim: spec.inputDim,
    outputDim: spec.outputDim,
    activation: spec.activation,
    blocks,
    head: headLayer(params, embedding, spec.outputDim),
    imageSize,
    convSize,
  };
}

/**
 * What serving holds per task: an MLP prepared for runMlp; a conv body as `conv` says (default
 * convServing on the active backend): checked parameters for the engine, or prepared for runConv.
 * @throws RangeError naming a missing or mis-shaped parameter.
 */
export function prepareNetwork(spec: ModelSpec, params: ParamArrays, conv: ConvServing = convServing()): PreparedNetwork {
  if (spec.body !== 'conv') return prepareMlp(spec, params);
  if (conv === 'plain-js') return prepareConv(spec, params);
  checkTaskParams(spec, params);
  const net = { body: 'engine', kind: spec.kind, inputDim: spec.inputDim, outputDim: spec.outputDim, spec, params } as const;
  if (chooseEngine('auto', undefined, 'conv') !== 'onnxruntime') return net;
  return { ...net, onnx: { body: prepareBody(spec, params), head: prepareMlp(headSpec(spec, embeddingDim(spec)), withoutBody(params)) } };
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

/** output[0 .. fanOut) = act(input[0 .. fanIn) W + b). */
function denseInto(layer: PreparedLayer, input: Float64Array, output: Float64Array): void {
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
}

/** Collects the head's output for one input into a prediction's lists (softmax in place for classification). */
class Answers {
  readonly values: number[] = [];
  readonly labels: number[] = [];
  readonly probabilities: number[][] = [];

  constructor(
    private readonly kind: ModelSpec['kind'],
    private readonly outputDim: number,
  ) {}

  add(output: Float64Array): void {
    if (this.kind === 'regression') {
      this.values.push(output[0]);
      return;
    }
    softmaxInPlace(output, this.outputDim);
    const p = Array.from(output.subarray(0, this.outputDim));
    let label = 0;
    for (let j = 1; j < p.length; j++) if (p[j] > p[label]) label = j;
    this.labels.push(label);
    this.probabilities.push(p);
  }

  prediction(): Prediction {
    return this.kind === 'regression' ? { kind: 'regression', values: this.values } : { kind: 'classification', labels: this.labels, probabilities: this.probabilities };
  }
}

type Inputs = Float32Array | Float64Array | readonly number[];

function rowsOf(x: Inputs, inputDim: number): number {
  if (x.length % inputDim !== 0) throw new RangeError(`x has ${x.length} values, not a multiple of inputDim ${inputDim}`);
  return x.length / inputDim;
}

/**
 * Runs prepared MLP parameters on `x`: row-major [n, inputDim]. The caller has checked the inputs
 * are finite (the HTTP layer does, naming the bad one).
 * @throws RangeError when `x` is not a whole number of rows.
 */
export function runMlp(mlp: PreparedMlp, x: Inputs): Prediction {
  const n = rowsOf(x, mlp.inputDim);
  const answers = new Answers(mlp.kind, mlp.outputDim);
  for (let row = 0; row < n; row++) {
    let [input, output] = mlp.scratch;
    for (let i = 0; i < mlp.inputDim; i++) input[i] = x[row * mlp.inputDim + i];
    for (const layer of mlp.layers) {
      denseInto(layer, input, output);
      [input, output] = [output, input];
    }
    answers.add(input);
  }
  return answers.prediction();
}

/**
 * One block on one image, as conv.ts computes it: `image` [h, w, in] in, its pooled output
 * [ceil(h/2), ceil(w/2), out] back into `image`; `conv` [h, w, out] is scratch.
 */
function runBlock(block: PreparedBlock, activation: Activation, image: Float64Array, conv: Float64Array): void {
  const { weight, bias, scale, offset, height: h, width: w, in: cin, out: cout } = block;
  const size = h * w * cout;
  // 3x3 cross-correlation, stride 1, zero padding 1: taps outside the image are skipped. For each
  // input value the `cout` weights of its tap are contiguous (HWIO), so the innermost loop streams
  // one weight row into one output pixel's channels. (Measured as fast as gathering each pixel's
  // patch for dot products with a transposed kernel, without a per-task copy of the kernels.)
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * cout;
      for (let co = 0; co < cout; co++) conv[o + co] = bias[co];
      for (let ky = 0; ky < 3; ky++) {
        const yy = y + ky - 1;
        if (yy < 0 || yy >= h) continue;
        for (let kx = 0; kx < 3; kx++) {
          const xx = x + kx - 1;
          if (xx < 0 || xx >= w) continue;
          const inBase = (yy * w + xx) * cin;
          const tapBase = (ky * 3 + kx) * cin * cout;
          for (let ci = 0; ci < cin; ci++) {
            const v = image[inBase + ci];
            // After a relu many of a block's inputs are exactly zero.
            if (v === 0) continue;
            const wb = tapBase + ci * cout;
            for (let co = 0; co < cout; co++) conv[o + co] += v * weight[wb + co];
          }
        }
      }
    }
  }
  // Layer norm over the whole (h, w, c) of this example, biased variance, then per-channel scale
  // and offset and the nonlinearity, in place.
  let sum = 0;
  for (let i = 0; i < size; i++) sum += conv[i];
  const mean = sum / size;
  let squares = 0;
  for (let i = 0; i < size; i++) {
    const d = conv[i] - mean;
    squares += d * d;
  }
  const inv = 1 / Math.sqrt(squares / size + NORM_EPSILON);
  for (let p = 0; p < size; p += cout) {
    for (let co = 0; co < cout; co++) conv[p + co] = activate((conv[p + co] - mean) * inv * scale[co] + offset[co], activation);
  }
  // 2x2 max pool, stride 2, ceil: an odd edge's window holds only its real entries (the engine pads
  // with zeros, which never exceed an activation: relu and softplus are >= 0).
  const [ph, pw] = [pooledSide(h), pooledSide(w)];
  for (let py = 0; py < ph; py++) {
    const y0 = 2 * py;
    const y1 = Math.min(y0 + 1, h - 1);
    for (let px = 0; px < pw; px++) {
      const x0 = 2 * px;
      const x1 = Math.min(x0 + 1, w - 1);
      const [a, b, c, d] = [(y0 * w + x0) * cout, (y0 * w + x1) * cout, (y1 * w + x0) * cout, (y1 * w + x1) * cout];
      const o = (py * pw + px) * cout;
      for (let co = 0; co < cout; co++) image[o + co] = Math.max(conv[a + co], conv[b + co], conv[c + co], conv[d + co]);
    }
  }
}

/**
 * Runs a prepared conv network on `x`: row-major [n, h w c], each row an image flattened (h, w, c).
 * The caller has checked the inputs are finite.
 * @throws RangeError when `x` is not a whole number of rows.
 */
export function runConv(net: PreparedConv, x: Inputs): Prediction {
  const n = rowsOf(x, net.inputDim);
  if (convScratch.image.length < net.imageSize) convScratch.image = new Float64Array(net.imageSize);
  if (convScratch.conv.length < net.convSize) convScratch.conv = new Float64Array(net.convSize);
  if (convScratch.logits.length < net.outputDim) convScratch.logits = new Float64Array(net.outputDim);
  const { image, conv, logits } = convScratch;
  const answers = new Answers(net.kind, net.outputDim);
  for (let row = 0; row < n; row++) {
    for (let i = 0; i < net.inputDim; i++) image[i] = x[row * net.inputDim + i];
    for (const block of net.blocks) runBlock(block, net.activation, image, conv);
    // The last pooled output is the embedding, flattened (h, w, c) as the engine's reshape does.
    denseInto(net.head, image, logits);
    answers.add(logits);
  }
  return answers.prediction();
}

/**
 * Runs a network prepared for serving (prepareNetwork) on row-major inputs [n, inputDim]. The
 * engine's path needs the tfjs backend initialised (every process role does, see main.ts).
 * @throws RangeError when `x` is not a whole number of rows.
 */
export function runNetwork(net: PreparedNetwork, x: Inputs): Prediction {
  if (net.body === 'mlp') return runMlp(net, x);
  if (net.body === 'conv') return runConv(net, x);
  const n = rowsOf(x, net.inputDim);
  if (net.onnx) return runMlp(net.onnx.head, engineEmbed(net, x, n));
  return predict(net.spec, net.params, x instanceof Float32Array ? x : Float32Array.from(x));
}

/**
 * The engine's `predict` without tfjs, for either body: task parameters (see taskParams) on
 * row-major inputs. Serving prepares once with {@link prepareNetwork} and calls {@link runNetwork}.
 */
export function predictArrays(spec: ModelSpec, params: ParamArrays, x: Float32Array | readonly number[]): Prediction {
  return spec.body === 'conv' ? runConv(prepareConv(spec, params), x) : runMlp(prepareMlp(spec, params), x);
}

/**
 * A conv body on the engine: its embeddings of `x` (float32, as the body computes them) on the
 * engine that serves its predictions (ONNX Runtime when the network has a plain-JS head, else tfjs).
 */
function engineEmbed(net: EngineServed, x: Inputs, n: number): Float32Array {
  if (n === 0) return new Float32Array(0);
  const flat = x instanceof Float32Array ? x : Float32Array.from(x);
  if (net.onnx) return ortEmbedPrepared(net.spec, net.onnx.body, flat, n);
  return tidyValues(() => embed(net.spec, toTensors(net.params), tf.tensor2d(flat, [n, net.inputDim])));
}

/**
 * The body's output (the common representation the head reads) for each input of `x`, row-major
 * [n, dim]: what novelty measures distances in (calibration.ts). The same forward pass as
 * runNetwork, stopped before the head, on the same engine: calibration (fitted where meta-training
 * runs) and serving prepare their networks alike (prepareNetwork), so a served novelty score is
 * standardised by statistics of distances computed the same way.
 * @throws RangeError when `x` is not a whole number of rows.
 */
export function embedNetwork(net: PreparedNetwork, x: Inputs): { dim: number; values: Float64Array } {
  const n = rowsOf(x, net.inputDim);
  if (net.body === 'engine') return { dim: embeddingDim(net.spec), values: Float64Array.from(engineEmbed(net, x, n)) };
  if (net.body === 'mlp') {
    const body = net.layers.slice(0, -1);
    const dim = body.length === 0 ? net.inputDim : body[body.length - 1].fanOut;
    const values = new Float64Array(n * dim);
    for (let row = 0; row < n; row++) {
      let [input, output] = net.scratch;
      for (let i = 0; i < net.inputDim; i++) input[i] = x[row * net.inputDim + i];
      for (const layer of body) {
        denseInto(layer, input, output);
        [input, output] = [output, input];
      }
      values.set(input.subarray(0, dim), row * dim);
    }
    return { dim, values };
  }
  if (convScratch.image.length < net.imageSize) convScratch.image = new Float64Array(net.imageSize);
  if (convScratch.conv.length < net.convSize) convScratch.conv = new Float64Array(net.convSize);
  const { image, conv } = convScratch;
  const dim = net.head.fanIn;
  const values = new Float64Array(n * dim);
  for (let row = 0; row < n; row++) {
    for (let i = 0; i < net.inputDim; i++) image[i] = x[row * net.inputDim + i];
    for (const block of net.blocks) runBlock(block, net.activation, image, conv);
    values.set(image.subarray(0, dim), row * dim);
  }
  return { dim, values };
}

/**
 * runNetwork and embedNetwork in one pass: the body runs once and the head reads its output, so a
 * request that wants both (predict with novelty) pays for one forward pass. The same arithmetic in
 * the same order as runNetwork, so the same prediction to the bit (the engine's path runs both).
 * @throws RangeError when `x` is not a whole number of rows.
 */
export function runNetworkWithEmbedding(net: PreparedNetwork, x: Inputs): { prediction: Prediction; embedding: { dim: number; values: Float64Array } } {
  if (net.body === 'engine') {
    // On ONNX Runtime the body runs once: runNetwork's plain-JS head reads the same float32 embeddings.
    if (net.onnx) {
      const embedded = engineEmbed(net, x, rowsOf(x, net.inputDim));
      return { prediction: runMlp(net.onnx.head, embedded), embedding: { dim: embeddingDim(net.spec), values: Float64Array.from(embedded) } };
    }
    return { prediction: runNetwork(net, x), embedding: embedNetwork(net, x) };
  }
  const embedding = embedNetwork(net, x);
  const head = net.body === 'mlp' ? net.layers[net.layers.length - 1] : net.head;
  const answers = new Answers(net.kind, net.outputDim);
  const { dim, values } = embedding;
  // One output buffer for every row: Answers copies what it keeps (softmax works in place first).
  const output = new Float64Array(head.fanOut);
  for (let row = 0; row < values.length / dim; row++) {
    denseInto(head, values.subarray(row * dim, (row + 1) * dim), output);
    answers.add(output);
  }
  return { prediction: answers.prediction(), embedding };
}
