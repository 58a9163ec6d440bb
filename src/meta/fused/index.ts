/**
 * The fused CPU path: the six algorithms' meta-gradients, adaptation and evaluation for MLP models,
 * on plain Float32Arrays, through the WebAssembly kernels (kernels.ts). It computes exactly what the
 * tfjs path computes (the tests compare them, and both with a float64 reference):
 * - MAML: reverse mode through the inner steps. With theta_0..theta_k kept and
 *   v_k = dLq/dtheta_k, each step back is v_j = v_{j+1} - lr H_s(theta_j) v_{j+1}, where the
 *   Hessian-vector product of the support loss comes from the kernels' R-operator pass.
 * - ANIL: the inner loop moves the head only; the same recursion with a direction that is zero on
 *   the body, keeping both parts of H v: the head part carries the adjoint back a step, the body
 *   part is the body's share through that step (the body is meta-learned, fixed within the loop).
 * - Meta-SGD: theta_{j+1} = theta_j - alpha .* g_j, so v_j = v_{j+1} - H_s(theta_j)(alpha .* v_{j+1})
 *   and d alpha = -sum_j g_j .* v_{j+1}.
 * - FOMAML: the query gradient at the adapted parameters. Reptile: theta - theta_k.
 * - ProtoNets: the prototype head (w_c = 2 mu_c, b_c = -|mu_c|^2), backprop through the query and
 *   (via the prototypes) the support embeddings into the body.
 * Loss means are the engine's: MSE over n * outDim per task, cross-entropy over n, tasks averaged.
 * Every task runs in a handful of kernel calls; the tasks of a meta-batch share the buffers.
 */

import { LR_PREFIX, type AlgorithmName, type InnerSettings } from '../algorithms/index.js';
import type { Gradients } from '../adam.js';
import { modelShapes, type ModelSpec, type ParamArrays } from '../model.js';
import { encodeTargets } from '../tensors.js';
import type { EpisodeBatch } from '../types.js';
import { fusedModel, type FusedModel } from './kernels.js';
import { improves, readTrace, type GuardPolicy, type SupportLossTrace } from '../guard.js';

export { fusedKernelsAvailable } from './kernels.js';

/** The algorithms this path implements; any other runs on tfjs (chooseEngine asks). */
export const FUSED_ALGORITHMS: readonly AlgorithmName[] = ['maml', 'fomaml', 'reptile', 'anil', 'metasgd', 'protonet'];

export function fusedSupports(algorithm: AlgorithmName): boolean {
  return FUSED_ALGORITHMS.includes(algorithm);
}

/** The mean post-adaptation query loss of a meta-batch and the meta-gradient by parameter name. */
export interface FusedMetaGradient {
  loss: number;
  grads: Gradients;
}

/** Labelled examples of several tasks in kernel memory: inputs [T, n, in], targets [T, n, out]. */
interface Sets {
  n: number;
  x: number;
  y: number;
  /** Bytes between tasks. */
  xStride: number;
  yStride: number;
}

/** A meta-model's parameters in kernel memory: the model vector and, for Meta-SGD, its rates. */
interface Start {
  theta: number;
  rates: number | null;
}

function upload(m: FusedModel, spec: ModelSpec, name: string, tasks: number, n: number, x: Float32Array, y: Float32Array): Sets {
  if (x.length !== tasks * n * spec.inputDim) throw new RangeError(`${name}.x has ${x.length} values, expected ${tasks * n * spec.inputDim}`);
  if (y.length !== tasks * n) throw new RangeError(`${name}.y has ${y.length} values, expected ${tasks * n}`);
  return {
    n,
    x: m.upload(`${name}.x`, x),
    y: m.upload(`${name}.y`, encodeTargets(spec, y)),
    xStride: n * spec.inputDim * 4,
    yStride: n * spec.outputDim * 4,
  };
}

/** Writes the meta-parameters into kernel memory (names absent, ProtoNets' head, stay zero). */
function uploadParams(m: FusedModel, algorithm: AlgorithmName, params: ParamArrays): Start {
  const write = (buffer: string, prefix: string): number => {
    const ptr = m.buffer(buffer, m.size);
    const view = m.view(ptr, m.size);
    view.fill(0);
    let offset = 0;
    for (const [name, shape] of modelShapes(m.spec)) {
      const size = shape.reduce((a, b) => a * b, 1);
      const p = params[prefix + name];
      if (p) {
        if (p.data.length !== size) throw new RangeError(`parameter '${prefix + name}' has ${p.data.length} values, expected ${size}`);
        view.set(p.data, offset);
      }
      offset += size;
    }
    return ptr;
  };
  return { theta: write('theta', ''), rates: algorithm === 'metasgd' ? write('rates', LR_PREFIX) : null };
}

/** The first parameter of the head in a model vector (everything before it is the body). */
function headOffset(m: FusedModel): number {
  const { spec } = m;
  let offset = 0;
  let fanIn = spec.inputDim;
  for (const units of spec.hidden) {
    offset += fanIn * units + units;
    fanIn = units;
  }
  return offset;
}

/** Inner loop settings as the algorithms use them: which layers move and by which rates. */
function adaptsHeadOnly(algorithm: AlgorithmName): boolean {
  return algorithm === 'anil';
}

/** Evaluation and adaptation: the guard's policy (guard.ts), and the support loss per iterate, written by adaptTask. */
interface Guard {
  policy: GuardPolicy;
  trace: number[];
}

/**
 * Adapts task `t` from `start`: `steps` gradient steps on its support set (or ProtoNets' prototype
 * head). Returns the pointer of the adapted model vector. With `keep`, theta_j stays in buffer
 * `theta.j` for every j (the second-order backward pass needs them); otherwise two alternate.
 * With a `guard`, the support loss of every iterate goes into its trace (each step's gradient pass
 * yields it, the last iterate takes one more forward pass) and policy 'best' returns the iterate
 * with the lowest, kept in buffer `best`, by the same rule as the tfjs loop (guard.ts `improves`).
 */
function adaptTask(m: FusedModel, algorithm: AlgorithmName, start: Start, support: Sets, t: number, inner: InnerSettings, keep: boolean, guard?: Guard): number {
  const k = m.kernels;
  const xs = support.x + t * support.xStride;
  const ys = support.y + t * support.yStride;
  const slot = (j: number): number => m.buffer(`theta.${keep ? j : j % 2}`, m.size);
  const first = slot(0);
  k.copy(first, start.theta, m.size);
  if (algorithm === 'protonet') {
    k.prototypeHead(first, xs, ys, support.n);
    guard?.trace.push(k.lossOnly(first, xs, ys, support.n, 0));
    return first;
  }
  let input = xs;
  let firstLayer = 0;
  if (adaptsHeadOnly(algorithm)) {
    // The body is fixed within the inner loop: embed the support set once, step the head on it.
    input = m.buffer('embedding', m.rows * (m.spec.hidden.at(-1) as number));
    k.embed(first, xs, support.n, input);
    firstLayer = m.layers - 1;
  }
  const g = m.buffer('g', m.size);
  const best = guard?.policy === 'best' ? m.buffer('best', m.size) : null;
  let bestLoss = Number.NaN;
  const record = (loss: number, iterate: number): void => {
    if (!guard) return;
    guard.trace.push(loss);
    if (best === null || !(guard.trace.length === 1 || improves(loss, bestLoss))) return;
    bestLoss = loss;
    k.copy(best, iterate, m.size);
  };
  let current = first;
  for (let j = 0; j < inner.steps; j++) {
    const next = slot(j + 1);
    k.zero(g, m.size);
    record(k.lossGradient(current, input, ys, support.n, firstLayer, g), current);
    if (start.rates !== null) k.stepPerParameter(next, current, start.rates, g, m.size);
    else k.step(next, current, -inner.lr, g, m.size);
    current = next;
  }
  if (guard) record(k.lossOnly(current, input, ys, support.n, firstLayer), current);
  return best ?? current;
}

/** Adds task `t`'s meta-gradient into `meta` (and Meta-SGD's rate gradient into `metaRates`); returns its query loss. */
function taskMetaGradient(m: FusedModel, algorithm: AlgorithmName, start: Start, support: Sets, query: Sets, t: number, inner: InnerSettings, meta: number, metaRates: number): number {
  const k = m.kernels;
  const xs = support.x + t * support.xStride;
  const ys = support.y + t * support.yStride;
  const xq = query.x + t * query.xStride;
  const yq = query.y + t * query.yStride;
  if (algorithm === 'protonet') {
    return k.prototypeTask(start.theta, xs, ys, support.n, xq, yq, query.n, meta, m.buffer('g', m.size));
  }
  const adapted = adaptTask(m, algorithm, start, support, t, inner, algorithm !== 'reptile' && algorithm !== 'fomaml');
  if (algorithm === 'reptile') {
    k.step(meta, meta, 1, start.theta, m.size);
    k.step(meta, meta, -1, adapted, m.size);
    return k.lossOnly(adapted, xq, yq, query.n, 0);
  }
  const v = m.buffer('v', m.size);
  k.zero(v, m.size);
  const loss = k.lossGradient(adapted, xq, yq, query.n, 0, v);
  if (algorithm !== 'fomaml') {
    const g = m.buffer('g', m.size);
    const hv = m.buffer('hv', m.size);
    const direction = m.buffer('direction', m.size);
    const body = headOffset(m);
    for (let j = inner.steps - 1; j >= 0; j--) {
      const theta = m.buffer(`theta.${j}`, m.size);
      if (start.rates !== null) k.multiply(direction, start.rates, v, m.size);
      else k.copy(direction, v, m.size);
      if (adaptsHeadOnly(algorithm)) k.zero(direction, body);
      k.zero(g, m.size);
      k.zero(hv, m.size);
      k.hessianVector(theta, direction, xs, ys, support.n, g, hv, adaptsHeadOnly(algorithm) ? m.layers - 1 : 0);
      if (start.rates !== null) k.subtractProduct(metaRates, g, v, m.size);
      k.step(v, v, start.rates !== null ? -1 : -inner.lr, hv, m.size);
    }
  }
  k.step(meta, meta, 1, v, m.size);
  return loss;
}

/** Reads a summed gradient vector back as named gradients (those `only` has), divided by `tasks`. */
function download(m: FusedModel, vector: number, tasks: number, prefix: string, out: Gradients, only: ParamArrays): void {
  const all = m.view(vector, m.size);
  let offset = 0;
  for (const [name, shape] of modelShapes(m.spec)) {
    const size = shape.reduce((a, b) => a * b, 1);
    if (only[prefix + name]) {
      const data = new Float32Array(size);
      for (let i = 0; i < size; i++) data[i] = all[offset + i] / tasks;
      out[prefix + name] = data;
    }
    offset += size;
  }
}

/**
 * The meta-gradient of one meta-batch on the fused path: the mean post-adaptation query loss and
 * d(outer objective)/d(meta-parameter) for every meta-parameter in `params`.
 */
export function fusedMetaGradient(algorithm: AlgorithmName, spec: ModelSpec, inner: InnerSettings, params: ParamArrays, batch: EpisodeBatch): FusedMetaGradient {
  if (batch.inputDim !== spec.inputDim) throw new RangeError(`episodes have inputDim ${batch.inputDim}, the model expects ${spec.inputDim}`);
  const m = fusedModel(spec, Math.max(batch.supportSize, batch.querySize));
  const k = m.kernels;
  const support = upload(m, spec, 'support', batch.tasks, batch.supportSize, batch.support.x, batch.support.y);
  const query = upload(m, spec, 'query', batch.tasks, batch.querySize, batch.query.x, batch.query.y);
  const start = uploadParams(m, algorithm, params);
  const meta = m.buffer('meta', m.size);
  const metaRates = m.buffer('meta.rates', m.size);
  k.zero(meta, m.size);
  k.zero(metaRates, m.size);
  let loss = 0;
  for (let t = 0; t < batch.tasks; t++) loss += taskMetaGradient(m, algorithm, start, support, query, t, inner, meta, metaRates);
  const grads: Gradients = {};
  download(m, meta, batch.tasks, '', grads, params);
  if (start.rates !== null) download(m, metaRates, batch.tasks, LR_PREFIX, grads, params);
  return { loss: loss / batch.tasks, grads };
}

/**
 * Post-adaptation loss (and accuracy, classification) of held-out tasks on the fused path, guarded as
 * adaptation is: the means, and each task's value in the batch's order (their spread gives a mean's interval).
 */
export function fusedEvaluate(
  algorithm: AlgorithmName,
  spec: ModelSpec,
  inner: InnerSettings,
  params: ParamArrays,
  batch: EpisodeBatch,
  guard: GuardPolicy = 'best',
): { loss: number; accuracy?: number; taskLosses: number[]; taskAccuracies?: number[] } {
  const m = fusedModel(spec, Math.max(batch.supportSize, batch.querySize));
  const support = upload(m, spec, 'support', batch.tasks, batch.supportSize, batch.support.x, batch.support.y);
  const query = upload(m, spec, 'query', batch.tasks, batch.querySize, batch.query.x, batch.query.y);
  const start = uploadParams(m, algorithm, params);
  const taskLosses: number[] = [];
  const taskAccuracies: number[] = [];
  for (let t = 0; t < batch.tasks; t++) {
    const adapted = adaptTask(m, algorithm, start, support, t, inner, false, { policy: guard, trace: [] });
    taskLosses.push(m.kernels.lossOnly(adapted, query.x + t * query.xStride, query.y + t * query.yStride, query.n, 0));
    taskAccuracies.push(m.kernels.lastCorrect() / batch.querySize);
  }
  const loss = taskLosses.reduce((a, b) => a + b, 0) / batch.tasks;
  if (spec.kind === 'regression') return { loss, taskLosses };
  return { loss, accuracy: taskAccuracies.reduce((a, b) => a + b, 0) / batch.tasks, taskLosses, taskAccuracies };
}

/** One task's adaptation on the fused path: its adapted model vector and its support loss per step. */
export interface FusedAdaptation {
  /** The adapted parameters by name (all model parameters). */
  params: ParamArrays;
  supportLoss: SupportLossTrace;
}

/**
 * Adapts the meta-model to each of several support sets of `n` examples (inputs [T, n, in], labels
 * or values [T, n]) under a guard policy; ProtoNets' trace is the one loss with the prototype head.
 */
export function fusedAdaptMany(algorithm: AlgorithmName, spec: ModelSpec, inner: InnerSettings, params: ParamArrays, tasks: number, n: number, x: Float32Array, y: Float32Array, guard: GuardPolicy): FusedAdaptation[] {
  const m = fusedModel(spec, n);
  const support = upload(m, spec, 'support', tasks, n, x, y);
  const start = uploadParams(m, algorithm, params);
  const shapes = modelShapes(spec);
  const out: FusedAdaptation[] = [];
  for (let t = 0; t < tasks; t++) {
    const trace: number[] = [];
    const adapted = adaptTask(m, algorithm, start, support, t, inner, false, { policy: guard, trace });
    const vector = m.view(adapted, m.size);
    const adaptedParams: ParamArrays = {};
    let offset = 0;
    for (const [name, shape] of shapes) {
      const size = shape.reduce((a, b) => a * b, 1);
      adaptedParams[name] = { shape: [...shape], data: vector.slice(offset, offset + size) };
      offset += size;
    }
    out.push({ params: adaptedParams, supportLoss: readTrace(trace, guard) });
  }
  return out;
}
