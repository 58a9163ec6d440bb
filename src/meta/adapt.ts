/**
 * Adaptation and prediction for one new task: a few labelled examples (the support set) turn the
 * meta-model into task parameters through the same inner loop that meta-training used, and the
 * adapted parameters serve predictions.
 */

import { tf, tidyValues } from './backend.js';
import { getAlgorithm, type AlgorithmName, type InnerSettings } from './algorithms/index.js';
import { chooseEngine, type EnginePreference } from './engine.js';
import { fusedAdaptMany } from './fused/index.js';
import { headSpec, ortEmbed, withoutBody } from './ort/index.js';
import { NonFiniteError } from './learner.js';
import { DEFAULT_GUARD, GUARD_POLICIES, readTrace, type GuardPolicy, type SupportLossTrace } from './guard.js';
import type { InnerMonitor } from './inner-loop.js';
import { softmax, taskLoss } from './losses.js';
import { forward, modelShapes, splitBodyHead, toTensors, type ModelSpec, type ParamArrays } from './model.js';
import { examplesToTensors, packExamples } from './tensors.js';
import type { Calibration } from './calibration.js';
import type { Examples } from './types.js';

/** A meta-trained model: what meta-training produces and adaptation starts from. */
export interface MetaModel {
  algorithm: AlgorithmName;
  spec: ModelSpec;
  /** Meta-parameters (model parameters and, for Meta-SGD, the learned rates `lr.*`). */
  params: ParamArrays;
  /** The inner-loop settings it was meta-trained with (adaptation's defaults). */
  inner: InnerSettings;
  /** Fitted on validation tasks at the end of meta-training (calibration.ts); absent for models stored before it. */
  calibration?: Calibration;
}

export interface AdaptOptions {
  /**
   * Inner-loop steps. Default: the meta-model's (what it was meta-trained for). An algorithm that
   * runs no inner steps (ProtoNets, multitask: closed-form heads) ignores it and reports 0 steps.
   */
  steps?: number;
  /** Inner-loop step size. Default: the meta-model's. Meta-SGD uses its learned rates instead; ProtoNets and multitask ignore it. */
  lr?: number;
  /** 'best' (default): the iterate with the lowest support loss; 'none': the last one (see guard.ts). */
  guard?: GuardPolicy;
}

export interface AdaptResult {
  /**
   * What adaptation changed, per task: head and body for MAML, FOMAML, Reptile and Meta-SGD; only
   * the head for ANIL and ProtoNets (combine with the meta-model's body via taskParams).
   */
  params: ParamArrays;
  /** Mean support loss before adaptation (ProtoNets: with the prototype head, as after). */
  supportLossBefore: number;
  /** Mean support loss of the returned parameters (the trace at bestStep). */
  supportLossAfter: number;
  /** The support loss at every step, the step returned, and whether the raw loss diverged. */
  supportLoss: SupportLossTrace;
  steps: number;
}

/** The most inner steps one adaptation may run (a service limit may be lower). */
export const MAX_ADAPT_STEPS = 1000;

function checkExamples(support: Examples): void {
  if (!Number.isInteger(support.n) || support.n < 1) throw new RangeError(`the support set needs at least one example, got n=${support.n}`);
  if (!support.x.every(Number.isFinite) || !support.y.every(Number.isFinite)) throw new RangeError('support set values must be finite numbers');
}

/**
 * Adapts a meta-model to a new task's support set.
 * @throws RangeError for a support set that does not fit the model (sizes, labels, non-finite values).
 * @throws NonFiniteError when adaptation returns non-finite parameters (guard 'none' on a diverging
 *   task, or a meta-model that is not finite on the support set): no NaN parameters are ever returned.
 */
export function adapt(model: MetaModel, support: Examples, options: AdaptOptions = {}, engine: EnginePreference = 'auto'): AdaptResult {
  const [result] = adaptMany(model, [support], options, engine);
  if (result instanceof Error) throw result;
  return result;
}

/**
 * Adapts a meta-model to several tasks' support sets at once, with the same settings: one batched
 * run of the inner loop over all of them (each task its own parameters), which costs little more
 * than adapting one, since small models spend their time dispatching kernels, not computing.
 * Every support set must have the same number of examples. `engine` picks the fused kernels or tfjs
 * (default 'auto', see chooseEngine); both give the same adapted parameters to float32 rounding.
 * @returns one result per support set, in order: its AdaptResult, or a NonFiniteError when that
 *   task's parameters would not be finite (the others are unaffected). Under guard 'best' a task
 *   whose raw loss diverged still answers, with its best iterate and `supportLoss.diverged`.
 * @throws RangeError for settings or support sets that do not fit the model (sizes, labels,
 *   non-finite values, different sizes).
 */
export function adaptMany(model: MetaModel, supports: readonly Examples[], options: AdaptOptions = {}, engine: EnginePreference = 'auto'): (AdaptResult | NonFiniteError)[] {
  const algorithm = getAlgorithm(model.algorithm);
  const steps = options.steps ?? model.inner.steps;
  const lr = options.lr ?? model.inner.lr;
  const guard = options.guard ?? DEFAULT_GUARD;
  if (!GUARD_POLICIES.includes(guard)) throw new RangeError(`guard must be one of ${GUARD_POLICIES.join(', ')}, got ${String(guard)}`);
  if (!Number.isInteger(steps) || steps < 0 || steps > MAX_ADAPT_STEPS) throw new RangeError(`steps must be an integer in [0, ${MAX_ADAPT_STEPS}], got ${steps}`);
  if (!Number.isFinite(lr) || lr <= 0) throw new RangeError(`lr must be a positive number, got ${lr}`);
  if (supports.length === 0) return [];
  supports.forEach(checkExamples);
  const n = supports[0].n;
  if (supports.some((s) => s.n !== n)) throw new RangeError('support sets adapted together must have the same number of examples');
  const tasks = supports.length;
  const shapes = modelShapes(model.spec).filter(([name]) => algorithm.adaptsBody || name.startsWith('head.'));
  const ran = algorithm.runsInnerSteps ? steps : 0;
  const result = (trace: number[], params: ParamArrays): AdaptResult | NonFiniteError => {
    const supportLoss = readTrace(trace, guard);
    const [lossBefore, lossAfter] = [trace[0], trace[supportLoss.bestStep]];
    const finite = Number.isFinite(lossBefore) && Number.isFinite(lossAfter) && Object.values(params).every((p) => p.data.every(Number.isFinite));
    if (!finite) return new NonFiniteError(`adaptation diverged (support loss ${lossAfter}); use a smaller lr or fewer steps, or guard 'best'`);
    return { params, supportLossBefore: lossBefore, supportLossAfter: lossAfter, supportLoss, steps: ran };
  };
  // An adaptation that leaves the body fixed can run it on ONNX Runtime whichever algorithm trained it.
  // One that adapts a conv body (FOMAML, Reptile: ONNX Runtime trains them task by task) adapts on
  // tfjs: ONNX Runtime adapts on the body's embeddings, which keeps the body fixed.
  const bodyMoves = algorithm.adaptsBody && model.spec.body === 'conv';
  if (bodyMoves && engine === 'ort') throw new Error(`the ONNX Runtime engine adapts algorithms that keep the body fixed, not '${model.algorithm}'`);
  const chosen = chooseEngine(bodyMoves && engine === 'auto' ? 'tfjs' : engine, algorithm.adaptsBody || model.spec.body !== 'conv' ? model.algorithm : undefined, model.spec.body);
  if (chosen === 'onnxruntime') return adaptMany(...onEmbeddings(model, supports), options, 'tfjs');
  if (chosen === 'fused-wasm') {
    const { x, y } = packExamples(model.spec, supports, 'support');
    return fusedAdaptMany(model.algorithm, model.spec, { steps, lr }, model.params, tasks, n, x, y, guard).map((adapted) =>
      result(adapted.supportLoss.trace, Object.fromEntries(shapes.map(([name]) => [name, adapted.params[name]]))),
    );
  }
  let traces: Float32Array = new Float32Array(0);
  const adaptedData: Float32Array[] = [];
  tf.tidy(() => {
    const examples = examplesToTensors(model.spec, supports, 'support');
    const theta = toTensors(model.params);
    const monitor: InnerMonitor = { guard };
    const adapted = algorithm.adapt(model.spec, theta, examples, { steps, lr, monitor });
    // Without inner steps (ProtoNets) the trace is the adapted head's loss alone.
    const trace = monitor.trace ?? tf.expandDims(taskLoss(model.spec.kind, forward(model.spec, adapted, examples.x), examples.y), 0);
    traces = trace.dataSync() as Float32Array;
    for (const [name] of shapes) adaptedData.push(adapted[name].dataSync() as Float32Array);
  });
  const iterates = traces.length / tasks;
  return supports.map((_, t) => {
    const trace = Array.from({ length: iterates }, (_, step) => traces[step * tasks + t]);
    const params: ParamArrays = {};
    shapes.forEach(([name, shape], i) => {
      const size = shape.reduce((a, b) => a * b, 1);
      const all = adaptedData[i];
      // Adapted parameters carry the task dimension first: [T, ...shape].
      if (all.length !== tasks * size) throw new Error(`adapted '${name}' has ${all.length} values, expected ${tasks} x ${size}`);
      params[name] = { shape: [...shape], data: all.slice(t * size, (t + 1) * size) };
    });
    return result(trace, params);
  });
}

/**
 * The meta-model as the head on its body's embeddings, and the support sets' embeddings (one ONNX
 * Runtime run over all their images): adaptation of an algorithm that keeps the body fixed is the
 * same on these (see ort/index.ts).
 */
function onEmbeddings(model: MetaModel, supports: readonly Examples[]): [MetaModel, Examples[]] {
  const { x } = packExamples(model.spec, supports, 'support');
  const rows = supports.length * supports[0].n;
  const embeddings = ortEmbed(model.spec, splitBodyHead(model.params).body, x, rows);
  const width = embeddings.length / rows;
  const spec = headSpec(model.spec, width);
  let row = 0;
  const embedded = supports.map((s) => {
    const part = { n: s.n, y: s.y, x: embeddings.subarray(row * width, (row + s.n) * width) };
    row += s.n;
    return part;
  });
  return [{ ...model, spec, params: withoutBody(model.params) }, embedded];
}

/** A task's full parameters: the meta-model's body and head, overridden by what adaptation changed. */
export function taskParams(model: MetaModel, adapted: ParamArrays): ParamArrays {
  const { body, head } = splitBodyHead(model.params);
  return { ...body, ...head, ...adapted };
}

/** A regression value per input, or a class label and class probabilities per input. */
export type Prediction = { kind: 'regression'; values: number[] } | { kind: 'classification'; labels: number[]; probabilities: number[][] };

/**
 * Runs task parameters (see taskParams) on inputs: `x` is row-major [n, inputDim] or a list of rows.
 * A conv body runs on ONNX Runtime when chooseEngine takes it for `engine` (default 'auto'), the head on tfjs.
 * @throws RangeError when an input row has the wrong width or a non-finite value.
 */
export function predict(spec: ModelSpec, params: ParamArrays, x: Float32Array | number[][], engine: EnginePreference = 'auto'): Prediction {
  const flat = x instanceof Float32Array ? x : Float32Array.from(x.flatMap((row, i) => {
    if (row.length !== spec.inputDim) throw new RangeError(`x[${i}] has ${row.length} values, expected inputDim ${spec.inputDim}`);
    return row;
  }));
  if (flat.length % spec.inputDim !== 0) throw new RangeError(`x has ${flat.length} values, not a multiple of inputDim ${spec.inputDim}`);
  if (!flat.every(Number.isFinite)) throw new RangeError('x values must be finite numbers');
  const n = flat.length / spec.inputDim;
  if (n === 0) return spec.kind === 'regression' ? { kind: 'regression', values: [] } : { kind: 'classification', labels: [], probabilities: [] };
  const ort = spec.body === 'conv' && chooseEngine(engine, undefined, spec.body) === 'onnxruntime';
  const embeddings = ort ? ortEmbed(spec, splitBodyHead(params).body, flat, n) : null;
  const out = tidyValues(() => {
    const output = embeddings
      ? forward(headSpec(spec, embeddings.length / n), toTensors(withoutBody(params)), tf.tensor2d(embeddings, [n, embeddings.length / n]))
      : forward(spec, toTensors(params), tf.tensor2d(flat, [n, spec.inputDim]));
    return spec.kind === 'regression' ? output : softmax(output);
  });
  if (spec.kind === 'regression') return { kind: 'regression', values: Array.from(out) };
  const ways = spec.outputDim;
  const probabilities = Array.from({ length: n }, (_, i) => Array.from(out.subarray(i * ways, (i + 1) * ways)));
  const labels = probabilities.map((p) => p.indexOf(Math.max(...p)));
  return { kind: 'classification', labels, probabilities };
}
