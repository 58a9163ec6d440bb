/**
 * The inner loop: a few gradient steps on each task's support set, starting from the meta-parameters.
 * Meta-training and adaptation (`/tasks/:id/adapt`) both call `adaptToSupport`, so a task is adapted
 * exactly as it was during meta-training.
 *
 * Whether the step is first- or second-order is decided by the caller, not here: called inside an
 * outer `tf.grads` (MAML, ANIL, Meta-SGD) the inner gradients are recorded on the outer tape and the
 * meta-gradient flows through them; called outside (FOMAML, Reptile, evaluation, adaptation) the same
 * code is plain gradient descent.
 *
 * The support-loss gradient is written out by hand (backprop.ts) by default for the MLP body and for
 * a head on fixed features; `gradient: 'autodiff'` takes it with `tf.grads` instead (the reference
 * the tests compare against, and the only way for a conv body's own parameters).
 *
 * Evaluation and adaptation pass a `monitor`: the loop then records the support loss of every
 * iterate and applies the guard (guard.ts) task by task. Meta-gradients run without one, so the
 * outer loop differentiates the plain inner steps.
 */

import { tf } from './backend.js';
import { layerGradients, type LayerTensors } from './backprop.js';
import { embed, forward, applyHead, HEAD_BIAS, HEAD_NAMES, HEAD_WEIGHT, splitBodyHead, tileParams, type ModelSpec, type NamedTensors } from './model.js';
import { taskLoss } from './losses.js';
import type { TaskTensors } from './tensors.js';
import type { GuardPolicy } from './guard.js';

/** Step sizes: one for every adapted tensor, or per parameter by name (Meta-SGD's learned rates). */
export type InnerLr = number | NamedTensors;

/** What the inner loop adapts: the whole network, or only the head (ANIL, ProtoNets' fine-tuning). */
export type AdaptScope = 'all' | 'head';

/** How the support-loss gradient is taken: written out by hand, or by tfjs autodiff (reference). */
export type InnerGradient = 'analytic' | 'autodiff';

export interface InnerLoopOptions {
  scope: AdaptScope;
  /** Gradient steps on the support set (0 returns the starting point). */
  steps: number;
  lr: InnerLr;
  /** Default 'analytic'. Both give the same adapted parameters and the same meta-gradients. */
  gradient?: InnerGradient;
  /** Record the support loss per step and guard the result. */
  monitor?: InnerMonitor;
}

/** Asks the inner loop for its support-loss trace and a guarded result (see guard.ts). */
export interface InnerMonitor {
  guard: GuardPolicy;
  /**
   * Written by the loop: the mean support loss of each task at every iterate, [steps + 1, T], step 0
   * first (a tensor of the caller's tf.tidy scope).
   */
  trace?: tf.Tensor;
}

/**
 * Keeps, task by task, `candidate` where `take` [T] is true and `kept` elsewhere (either may be
 * shared, without the leading task axis).
 */
function pickTasks(take: tf.Tensor, candidate: tf.Tensor, kept: tf.Tensor): tf.Tensor {
  const shape = candidate.rank >= kept.rank ? candidate.shape : kept.shape;
  const mask = tf.broadcastTo(tf.reshape(take, [take.shape[0] as number, ...shape.slice(1).map(() => 1)]), shape);
  return tf.where(mask, tf.broadcastTo(candidate, shape), tf.broadcastTo(kept, shape));
}

/**
 * `steps` applications of `step` from `start`. With a monitor, each task's loss is recorded at every
 * iterate and guard 'best' keeps, task by task (`select`), the iterate with the lowest (guard.ts:
 * strictly lower, so NaN never wins and step 0 is the floor). Both gradients, hand-written and
 * autodiff, descend through this one loop.
 */
function guardedDescent<P>(
  start: P,
  step: (params: P) => P,
  loss: (params: P) => tf.Tensor,
  steps: number,
  monitor: InnerMonitor | undefined,
  select: (take: tf.Tensor, candidate: P, kept: P) => P,
): P {
  let params = start;
  if (!monitor) {
    for (let i = 0; i < steps; i++) params = step(params);
    return params;
  }
  // With a monitor (evaluation and adaptation, never under an outer tf.grads) each step runs in a
  // tidy of its own and the iterates it replaces are freed: only the current iterate, the best so far
  // and the trace outlive a step. In the caller's one tidy, every step's intermediates (a conv body's
  // activations, for each task) would live until the end: the `scratch` baseline's 100 steps over
  // an evaluation's 100 tasks exhausted tfjs-wasm's memory and left its runtime broken.
  const trace: tf.Tensor[] = [loss(start)];
  let best = start;
  let bestLoss = trace[0];
  for (let i = 0; i < steps; i++) {
    const replaced = [params, best, bestLoss];
    // tidy keeps the tensors it returns, found through nested arrays and objects (an iterate's layout).
    const next = tf.tidy(() => {
      const iterate = step(params);
      const current = loss(iterate);
      if (monitor.guard !== 'best') return { iterate, current, best: iterate, bestLoss: current } as unknown as tf.TensorContainer;
      const better = tf.less(current, bestLoss);
      return { iterate, current, best: select(better, iterate, best), bestLoss: tf.where(better, current, bestLoss) } as unknown as tf.TensorContainer;
    }) as unknown as { iterate: P; current: tf.Tensor; best: P; bestLoss: tf.Tensor };
    params = next.iterate;
    best = next.best;
    bestLoss = next.bestLoss;
    trace.push(next.current);
    const live = new Set(tensorsIn([start, params, best, bestLoss, trace]));
    for (const t of tensorsIn(replaced)) if (!live.has(t)) t.dispose();
  }
  monitor.trace = tf.stack(trace);
  return monitor.guard === 'best' ? best : params;
}

/** The tensors in a structure of arrays and objects of tensors (an iterate, whatever its layout). */
function tensorsIn(value: unknown): tf.Tensor[] {
  if (value instanceof tf.Tensor) return [value];
  if (Array.isArray(value)) return value.flatMap(tensorsIn);
  if (value !== null && typeof value === 'object') return Object.values(value).flatMap(tensorsIn);
  return [];
}

/**
 * Runs `steps` gradient steps from `start` on `loss`, the per-task losses [T] of task-batched
 * tensors (their sum is differentiated, so each task's slice receives exactly its own gradient).
 * With a monitor, the loop is guarded (guardedDescent).
 */
export function innerLoop(
  names: readonly string[],
  start: tf.Tensor[],
  loss: (params: tf.Tensor[]) => tf.Tensor,
  steps: number,
  lr: InnerLr,
  monitor?: InnerMonitor,
): tf.Tensor[] {
  let step: (params: tf.Tensor[]) => tf.Tensor[];
  if (typeof lr === 'number') {
    // One step size for all: differentiate lr * loss, which saves a multiply per parameter (and
    // its share of the outer backward pass) on every step.
    const rate = tf.scalar(lr);
    step = (params) => {
      const scaled = tf.grads((...p: tf.Tensor[]) => tf.mul(tf.sum(loss(p)), rate) as tf.Scalar)(params);
      return params.map((p, i) => tf.sub(p, scaled[i]));
    };
  } else {
    const rates = names.map((name) => {
      const rate = lr[name];
      if (!rate) throw new Error(`no inner learning rate for parameter '${name}'`);
      return rate;
    });
    step = (params) => {
      const grads = tf.grads((...p: tf.Tensor[]) => tf.sum(loss(p)) as tf.Scalar)(params);
      return params.map((p, i) => tf.sub(p, tf.mul(rates[i], grads[i])));
    };
  }
  return guardedDescent(start, step, loss, steps, monitor, (take, candidate, kept) => candidate.map((p, j) => pickTasks(take, p, kept[j])));
}

/** Per-task loss [T] of task-batched parameters on a set of examples. */
export function lossOn(spec: ModelSpec, params: NamedTensors, examples: TaskTensors): tf.Tensor {
  return taskLoss(spec.kind, forward(spec, params, examples.x), examples.y);
}

/** The model's layers in order, as named in `params`. */
function layerNames(spec: ModelSpec, scope: AdaptScope): Array<[string, string]> {
  const head: [string, string] = [HEAD_WEIGHT, HEAD_BIAS];
  if (scope === 'head') return [head];
  return [...spec.hidden.map((_, i): [string, string] => [`body.${i}.weight`, `body.${i}.bias`]), head];
}

/** Per-task support loss [T] of layers (in `names` order) on inputs `x` (the support set's features with scope 'head'). */
function layersLoss(spec: ModelSpec, names: Array<[string, string]>, layers: LayerTensors[], x: tf.Tensor, y: tf.Tensor, scope: AdaptScope): tf.Tensor {
  const params: NamedTensors = {};
  names.forEach(([w, b], i) => {
    params[w] = layers[i].weight;
    params[b] = layers[i].bias;
  });
  return taskLoss(spec.kind, scope === 'head' ? applyHead(params, x) : forward(spec, params, x), y);
}

/** Keeps, task by task, `candidate` where `take` [T] is true and `kept` elsewhere. */
function select(take: tf.Tensor, candidate: LayerTensors[], kept: LayerTensors[]): LayerTensors[] {
  return candidate.map((layer, i) => ({ weight: pickTasks(take, layer.weight, kept[i].weight), bias: pickTasks(take, layer.bias, kept[i].bias) }));
}

/**
 * Gradient descent with the hand-written gradient. The first step starts from shared parameters
 * and yields per-task ones by broadcasting (theta - per-task step), so theta is never tiled.
 * With a monitor, the loop is guarded (guardedDescent).
 */
function analyticLoop(spec: ModelSpec, start: LayerTensors[], x: tf.Tensor, y: tf.Tensor, options: InnerLoopOptions, names: Array<[string, string]>): LayerTensors[] {
  const { steps, lr, monitor } = options;
  let rates: LayerTensors[] | undefined;
  if (typeof lr !== 'number') {
    rates = names.map(([w, b]) => {
      if (!lr[w] || !lr[b]) throw new Error(`no inner learning rate for parameter '${lr[w] ? b : w}'`);
      return { weight: lr[w], bias: lr[b] };
    });
  }
  const loss = (layers: LayerTensors[]): tf.Tensor => layersLoss(spec, names, layers, x, y, options.scope);
  const step = (layers: LayerTensors[]): LayerTensors[] => {
    const grads = layerGradients(spec.kind, spec.activation, layers, x, y, typeof lr === 'number' ? lr : 1);
    return layers.map(({ weight, bias }, i) => ({
      weight: tf.sub(weight, rates ? tf.mul(rates[i].weight, grads[i].weight) : grads[i].weight),
      bias: tf.sub(bias, rates ? tf.mul(rates[i].bias, grads[i].bias) : grads[i].bias),
    }));
  };
  return guardedDescent(start, step, loss, steps, monitor, select);
}

function analyticAdapt(spec: ModelSpec, theta: NamedTensors, support: TaskTensors, options: InnerLoopOptions): NamedTensors {
  const names = layerNames(spec, options.scope);
  const { body } = splitBodyHead(theta);
  const x = options.scope === 'head' ? embed(spec, body, support.x) : support.x;
  const start = names.map(([w, b]) => ({ weight: theta[w], bias: theta[b] }));
  const adapted = analyticLoop(spec, start, x, support.y, options, names);
  const out: NamedTensors = options.scope === 'head' ? { ...body } : {};
  names.forEach(([w, b], i) => {
    out[w] = adapted[i].weight;
    out[b] = adapted[i].bias;
  });
  return out;
}

/**
 * Adapts shared meta-parameters `theta` (model parameters, [in, out] / [out]) to each task of the
 * support set ([T, n, ...]). Returns the adapted model parameters: task-batched ([T, in, out] /
 * [T, 1, out]) for what was adapted; with scope 'head' the body stays shared and untiled.
 */
export function adaptToSupport(spec: ModelSpec, theta: NamedTensors, support: TaskTensors, options: InnerLoopOptions): NamedTensors {
  const tasks = support.x.shape[0];
  // The hand-written gradient covers the MLP and, for any body, the head on fixed features.
  const analytic = (options.gradient ?? 'analytic') === 'analytic' && (spec.body === 'mlp' || options.scope === 'head');
  if (analytic && options.steps > 0) return analyticAdapt(spec, theta, support, options);
  const { body, head } = splitBodyHead(theta);
  if (options.scope === 'head') {
    // The body is fixed during the inner loop: embed the support set once.
    const features = embed(spec, body, support.x);
    const start = tileParams(head, tasks);
    const adapted = innerLoop(
      HEAD_NAMES,
      HEAD_NAMES.map((n) => start[n]),
      ([weight, bias]) => taskLoss(spec.kind, applyHead({ 'head.weight': weight, 'head.bias': bias }, features), support.y),
      options.steps,
      options.lr,
      options.monitor,
    );
    return { ...body, [HEAD_NAMES[0]]: adapted[0], [HEAD_NAMES[1]]: adapted[1] };
  }
  const names = Object.keys(theta);
  const start = tileParams(theta, tasks);
  const adapted = innerLoop(
    names,
    names.map((n) => start[n]),
    (p) => lossOn(spec, Object.fromEntries(names.map((n, i) => [n, p[i]])), support),
    options.steps,
    options.lr,
    options.monitor,
  );
  return Object.fromEntries(names.map((n, i) => [n, adapted[i]]));
}
