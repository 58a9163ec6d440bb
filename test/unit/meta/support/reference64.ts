/**
 * An independent float64 reference of the engine's algorithms in plain JS (no tfjs, no wasm): the
 * MLP's forward pass, a hand-written backprop of the support loss for the inner steps, and each
 * algorithm's post-adaptation query loss. Its central finite differences are the meta-gradient the
 * engine's paths are checked against (in float64 they are accurate to ~1e-9).
 */

import { LR_PREFIX, type AlgorithmName, type InnerSettings } from '../../../../src/meta/algorithms/index.js';
import { modelShapes, type ModelSpec, type ParamArrays } from '../../../../src/meta/model.js';
import type { EpisodeBatch } from '../../../../src/meta/types.js';

export type Params64 = Record<string, Float64Array>;

export function toParams64(params: ParamArrays): Params64 {
  return Object.fromEntries(Object.entries(params).map(([n, p]) => [n, Float64Array.from(p.data)]));
}

interface Layer {
  w: Float64Array;
  b: Float64Array;
  fanIn: number;
  units: number;
}

function layersOf(spec: ModelSpec, p: Params64): Layer[] {
  const names = modelShapes(spec);
  const out: Layer[] = [];
  for (let i = 0; i < names.length; i += 2) {
    const [wName, [fanIn, units]] = names[i];
    out.push({ w: p[wName], b: p[names[i + 1][0]], fanIn, units });
  }
  return out;
}

const softplus = (z: number): number => Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z)));
const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));

interface Pass {
  /** Each layer's input, then the output. */
  h: Float64Array[];
  /** Each hidden layer's act'(z). */
  slope: Float64Array[];
}

function forward(spec: ModelSpec, layers: Layer[], x: Float64Array, n: number): Pass {
  const h = [x];
  const slope: Float64Array[] = [];
  layers.forEach((layer, l) => {
    const input = h[l];
    const z = new Float64Array(n * layer.units);
    for (let r = 0; r < n; r++) {
      for (let j = 0; j < layer.units; j++) {
        let s = layer.b[j];
        for (let i = 0; i < layer.fanIn; i++) s += input[r * layer.fanIn + i] * layer.w[i * layer.units + j];
        z[r * layer.units + j] = s;
      }
    }
    if (l === layers.length - 1) {
      h.push(z);
      return;
    }
    const out = new Float64Array(z.length);
    const d = new Float64Array(z.length);
    z.forEach((v, i) => {
      out[i] = spec.activation === 'relu' ? Math.max(v, 0) : softplus(v);
      d[i] = spec.activation === 'relu' ? (v > 0 ? 1 : 0) : sigmoid(v);
    });
    h.push(out);
    slope.push(d);
  });
  return { h, slope };
}

/** Targets in the loss's layout (one-hot rows for classification). */
function targets(spec: ModelSpec, y: Float32Array): Float64Array {
  if (spec.kind === 'regression') return Float64Array.from(y);
  const out = new Float64Array(y.length * spec.outputDim);
  y.forEach((label, i) => (out[i * spec.outputDim + label] = 1));
  return out;
}

/** The task's mean loss and its gradient w.r.t. the output. */
function lossAndDelta(spec: ModelSpec, out: Float64Array, y: Float64Array, n: number): { loss: number; delta: Float64Array } {
  const c = spec.outputDim;
  const delta = new Float64Array(out.length);
  let loss = 0;
  if (spec.kind === 'regression') {
    for (let i = 0; i < out.length; i++) {
      const e = out[i] - y[i];
      loss += e * e;
      delta[i] = (2 * e) / (n * c);
    }
    return { loss: loss / (n * c), delta };
  }
  for (let r = 0; r < n; r++) {
    const row = out.subarray(r * c, (r + 1) * c);
    const most = Math.max(...row);
    const lse = most + Math.log(row.reduce((s, v) => s + Math.exp(v - most), 0));
    for (let j = 0; j < c; j++) {
      loss += y[r * c + j] * (lse - row[j]);
      delta[r * c + j] = (Math.exp(row[j] - lse) - y[r * c + j]) / n;
    }
  }
  return { loss: loss / n, delta };
}

function loss64(spec: ModelSpec, p: Params64, x: Float64Array, y: Float64Array, n: number): number {
  const pass = forward(spec, layersOf(spec, p), x, n);
  return lossAndDelta(spec, pass.h[pass.h.length - 1], y, n).loss;
}

/** The gradient of the task's mean loss w.r.t. every model parameter, by hand-written backprop. */
export function gradient64(spec: ModelSpec, p: Params64, x: Float64Array, y: Float64Array, n: number): Params64 {
  const layers = layersOf(spec, p);
  const names = modelShapes(spec);
  const pass = forward(spec, layers, x, n);
  let { delta } = lossAndDelta(spec, pass.h[layers.length], y, n);
  const out: Params64 = {};
  for (let l = layers.length - 1; l >= 0; l--) {
    const { fanIn, units, w } = layers[l];
    const gw = new Float64Array(fanIn * units);
    const gb = new Float64Array(units);
    const input = pass.h[l];
    for (let r = 0; r < n; r++) {
      for (let j = 0; j < units; j++) {
        const d = delta[r * units + j];
        gb[j] += d;
        for (let i = 0; i < fanIn; i++) gw[i * units + j] += input[r * fanIn + i] * d;
      }
    }
    out[names[2 * l][0]] = gw;
    out[names[2 * l + 1][0]] = gb;
    if (l === 0) break;
    const back = new Float64Array(n * fanIn);
    for (let r = 0; r < n; r++) {
      for (let i = 0; i < fanIn; i++) {
        let s = 0;
        for (let j = 0; j < units; j++) s += delta[r * units + j] * w[i * units + j];
        back[r * fanIn + i] = s * pass.slope[l - 1][r * fanIn + i];
      }
    }
    delta = back;
  }
  return out;
}

/** Embeddings (the body's output) of n inputs. */
function embed64(spec: ModelSpec, p: Params64, x: Float64Array, n: number): Float64Array {
  const pass = forward(spec, layersOf(spec, p).slice(0, -1).concat([]), x, n);
  // With the head dropped, the last hidden layer was treated as linear: re-apply its activation.
  const z = pass.h[pass.h.length - 1];
  return z.map((v) => (spec.activation === 'relu' ? Math.max(v, 0) : softplus(v)));
}

/** Model parameters adapted to one support set, as the algorithm adapts them. */
export function adapt64(algorithm: AlgorithmName, spec: ModelSpec, inner: InnerSettings, theta: Params64, xs: Float64Array, ys: Float64Array, n: number): Params64 {
  const model: Params64 = {};
  for (const [name] of modelShapes(spec)) if (theta[name]) model[name] = Float64Array.from(theta[name]);
  if (algorithm === 'protonet') {
    const e = spec.hidden[spec.hidden.length - 1];
    const c = spec.outputDim;
    const emb = embed64(spec, model, xs, n);
    const w = new Float64Array(e * c);
    const b = new Float64Array(c);
    for (let j = 0; j < c; j++) {
      const mu = new Float64Array(e);
      let count = 0;
      for (let r = 0; r < n; r++) {
        if (ys[r * c + j] === 0) continue;
        count += 1;
        for (let i = 0; i < e; i++) mu[i] += emb[r * e + i];
      }
      for (let i = 0; i < e; i++) {
        mu[i] /= Math.max(count, 1);
        w[i * c + j] = 2 * mu[i];
        b[j] -= mu[i] * mu[i];
      }
    }
    return { ...model, 'head.weight': w, 'head.bias': b };
  }
  let current = model;
  for (let step = 0; step < inner.steps; step++) {
    const g = gradient64(spec, current, xs, ys, n);
    const next: Params64 = {};
    for (const [name, value] of Object.entries(current)) {
      const moves = algorithm !== 'anil' || name.startsWith('head.');
      const rate = algorithm === 'metasgd' ? theta[LR_PREFIX + name] : null;
      next[name] = moves ? value.map((v, i) => v - (rate ? rate[i] : inner.lr) * g[name][i]) : value;
    }
    current = next;
  }
  return current;
}

/** Task t's support and query sets as float64 inputs and targets. */
export function taskSets(spec: ModelSpec, batch: EpisodeBatch, t: number) {
  const { inputDim: d, supportSize: s, querySize: q } = batch;
  return {
    xs: Float64Array.from(batch.support.x.subarray(t * s * d, (t + 1) * s * d)),
    ys: targets(spec, batch.support.y.subarray(t * s, (t + 1) * s)),
    xq: Float64Array.from(batch.query.x.subarray(t * q * d, (t + 1) * q * d)),
    yq: targets(spec, batch.query.y.subarray(t * q, (t + 1) * q)),
  };
}

/** The mean post-adaptation query loss over the meta-batch (the objective MAML, ANIL, Meta-SGD and ProtoNets differentiate). */
export function metaLoss64(algorithm: AlgorithmName, spec: ModelSpec, inner: InnerSettings, theta: Params64, batch: EpisodeBatch): number {
  let sum = 0;
  for (let t = 0; t < batch.tasks; t++) {
    const { xs, ys, xq, yq } = taskSets(spec, batch, t);
    const adapted = adapt64(algorithm, spec, inner, theta, xs, ys, batch.supportSize);
    sum += loss64(spec, adapted, xq, yq, batch.querySize);
  }
  return sum / batch.tasks;
}

/**
 * The reference meta-gradient: central differences of metaLoss64 (MAML, ANIL, Meta-SGD, ProtoNets);
 * for FOMAML the mean over tasks of the query gradient at the adapted parameters; for Reptile
 * theta minus the mean adapted parameters. With `names`, only those parameters are differenced.
 */
export function metaGradient64(algorithm: AlgorithmName, spec: ModelSpec, inner: InnerSettings, theta: Params64, batch: EpisodeBatch, names?: readonly string[]): Params64 {
  const eps = 1e-5;
  const out: Params64 = Object.fromEntries(Object.entries(theta).map(([n, v]) => [n, new Float64Array(v.length)]));
  if (algorithm === 'fomaml' || algorithm === 'reptile') {
    for (let t = 0; t < batch.tasks; t++) {
      const { xs, ys, xq, yq } = taskSets(spec, batch, t);
      const adapted = adapt64(algorithm, spec, inner, theta, xs, ys, batch.supportSize);
      const g = algorithm === 'fomaml' ? gradient64(spec, adapted, xq, yq, batch.querySize) : null;
      for (const name of Object.keys(out)) {
        out[name].forEach((_, i) => (out[name][i] += (g ? g[name][i] : theta[name][i] - adapted[name][i]) / batch.tasks));
      }
    }
    return out;
  }
  for (const [name, value] of Object.entries(theta)) {
    if (names && !names.includes(name)) continue;
    for (let i = 0; i < value.length; i++) {
      const keep = value[i];
      value[i] = keep + eps;
      const plus = metaLoss64(algorithm, spec, inner, theta, batch);
      value[i] = keep - eps;
      const minus = metaLoss64(algorithm, spec, inner, theta, batch);
      value[i] = keep;
      out[name][i] = (plus - minus) / (2 * eps);
    }
  }
  return out;
}
