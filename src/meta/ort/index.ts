/**
 * The ONNX Runtime engine for conv bodies: the body's forward and backward passes run in
 * onnxruntime-node (body.ts, graph.ts). ProtoNets' and ANIL's heads are a few small products on the
 * embeddings, so each of their meta-steps is one graph with the head's loss and gradients written
 * out (step-graphs.ts). Multitask, FOMAML and Reptile run what they do on top of the embeddings (the
 * pool's heads, the head's part of each inner step, the query loss) in tfjs on a model that is only
 * the head, fed the embeddings as its inputs.
 *
 * This covers every algorithm whose meta-gradient needs only first-order derivatives of the body.
 * ProtoNets, ANIL (with or without a zero head) and multitask's pool training leave the body fixed
 * while adapting: their meta-gradient reaches the body only through the embeddings, so it is the
 * body's vector-Jacobian product of dL/d embeddings whatever the order through the head (ANIL's
 * second-order terms are all in the head's inner loop, on [n, D] embeddings). FOMAML's and
 * Reptile's inner loop moves the body: it runs task by task, each step the
 * body's forward and backward at the task's parameters; FOMAML's meta-gradient is then the query
 * loss's gradient at the adapted parameters, Reptile's theta minus their mean. MAML and Meta-SGD
 * (second order through the body) stay on tfjs.
 */

import { tf, tidyValues } from '../backend.js';
import type { Gradients } from '../adam.js';
import { getAlgorithm, type AlgorithmName, type InnerSettings } from '../algorithms/index.js';
import { poolLoss } from '../algorithms/multitask.js';
import { lossOn } from '../inner-loop.js';
import { HEAD_NAMES, splitBodyHead, toTensors, type ModelSpec, type NamedTensors, type ParamArrays } from '../model.js';
import { encodeTargets, sliceEpisodeBatch } from '../tensors.js';
import { isPoolBatch, type EpisodeBatch, type PoolBatch, type TrainingBatch } from '../types.js';
import { ortBodyPass, ortEmbed, ortStep } from './body.js';
import { floatInput, ortAvailable } from './runtime.js';
import { anilStepGraph, protonetStepGraph } from './step-graphs.js';

export { ortAvailable, ortThreads, ortUnavailableReason, ortVersion } from './runtime.js';
export { ortEmbed, ortEmbedPrepared, prepareBody, type PreparedBody } from './body.js';

/** The algorithms this engine trains (chooseEngine asks). */
export const ORT_ALGORITHMS: readonly AlgorithmName[] = ['protonet', 'anil', 'multitask', 'fomaml', 'reptile'];

/** Whether this engine runs `algorithm` (undefined: serving and adaptation, which every conv body can use). */
export function ortSupports(algorithm?: AlgorithmName): boolean {
  return algorithm === undefined || ORT_ALGORITHMS.includes(algorithm);
}

/** Whether ONNX Runtime can run this body here. */
export function ortRuns(body: ModelSpec['body']): boolean {
  return body === 'conv' && ortAvailable();
}

/**
 * The model the algorithm sees once the body has run: no hidden layer, inputs the embeddings (an MLP
 * with hidden [] is its head on its inputs).
 */
export function headSpec(spec: ModelSpec, embeddingWidth: number): ModelSpec {
  return { kind: spec.kind, inputDim: embeddingWidth, outputDim: spec.outputDim, body: 'mlp', hidden: [], activation: spec.activation };
}

/** `params` without the body's entries: the head and any extras (the algorithm's view on embeddings). */
export function withoutBody(params: ParamArrays): ParamArrays {
  return Object.fromEntries(Object.entries(params).filter(([name]) => !name.startsWith('body.')));
}

/** A meta-batch whose inputs are the embeddings: support rows first, then query rows, as `embeddings` holds them. */
function embeddedBatch(batch: EpisodeBatch, embeddings: Float32Array, width: number): EpisodeBatch {
  const supportRows = batch.tasks * batch.supportSize;
  return {
    ...batch,
    inputDim: width,
    support: { x: embeddings.subarray(0, supportRows * width), y: batch.support.y },
    query: { x: embeddings.subarray(supportRows * width), y: batch.query.y },
  };
}

/** The support and query images of a meta-batch as one array, support first (one batch for the body). */
export function imagesOf(batch: EpisodeBatch): Float32Array {
  const x = new Float32Array(batch.support.x.length + batch.query.x.length);
  x.set(batch.support.x);
  x.set(batch.query.x, batch.support.x.length);
  return x;
}

/** A tfjs input of the head part: plain data and its shape (embeddings, differentiated). */
interface Input {
  data: Float32Array;
  shape: number[];
}

/**
 * The value of `objective` on tfjs and its gradients w.r.t. `params` (the meta-parameters other than
 * the body) and w.r.t. each of `inputs` (embeddings: what the body's backward pass takes), read in one
 * download.
 */
function headGradient(params: ParamArrays, inputs: readonly Input[], objective: (theta: NamedTensors, inputs: tf.Tensor[]) => tf.Scalar): { loss: number; grads: Gradients; inputGrads: Float32Array[] } {
  const names = Object.keys(params);
  const flat = tidyValues(() => {
    const f = (...p: tf.Tensor[]): tf.Scalar => objective(Object.fromEntries(names.map((name, i) => [name, p[i]])), p.slice(names.length));
    const start = [...names.map((name) => tf.tensor(params[name].data, params[name].shape)), ...inputs.map((x) => tf.tensor(x.data, x.shape))];
    const { value, grads } = tf.valueAndGrads(f)(start);
    return tf.concat([tf.reshape(value, [1]), ...grads.map((g) => tf.reshape(g, [-1]))]);
  });
  let offset = 1;
  const take = (size: number) => flat.subarray(offset, (offset += size));
  const grads: Gradients = Object.fromEntries(names.map((name) => [name, take(params[name].data.length)]));
  return { loss: flat[0], grads, inputGrads: inputs.map((x) => take(x.data.length)) };
}

/**
 * The mean post-adaptation query loss of a meta-batch (a pool minibatch's mean loss) and its
 * meta-gradient (body and the rest), with the body on ONNX Runtime. The same quantity as the tfjs
 * engine's (the algorithm's metaGradient or poolGradient).
 * @throws RangeError for an algorithm this engine does not run.
 */
export function ortMetaGradient(algorithmName: AlgorithmName, spec: ModelSpec, inner: InnerSettings, values: ParamArrays, batch: TrainingBatch): { loss: number; grads: Gradients } {
  const algorithm = getAlgorithm(algorithmName);
  if (!ortSupports(algorithmName)) throw new RangeError(`the ONNX Runtime engine does not run algorithm '${algorithmName}'`);
  if (isPoolBatch(batch) !== (algorithm.trainsOn === 'pool')) throw new TypeError(`${algorithmName} trains on ${algorithm.trainsOn === 'pool' ? 'task-pool minibatches' : 'meta-batches of episodes'}`);
  if (isPoolBatch(batch)) return poolGradient(spec, values, batch);
  switch (algorithmName) {
    case 'fomaml':
    case 'reptile':
      return afterAdaptingBody(algorithmName, spec, inner, values, batch);
    case 'protonet':
    case 'anil':
      return episodeStep(algorithmName, spec, inner, values, batch);
    default:
      throw new RangeError(`the ONNX Runtime engine has no meta-step for '${algorithmName}'`);
  }
}

/**
 * ProtoNets and ANIL: the whole step (forward, the head's loss and its gradients, backward) is one
 * graph (step-graphs.ts), fed the images, the targets in the loss's layout and, for ANIL, the head
 * and the inner step size. ProtoNets has no meta-parameter but the body.
 */
function episodeStep(algorithm: 'protonet' | 'anil', spec: ModelSpec, inner: InnerSettings, values: ParamArrays, batch: EpisodeBatch): { loss: number; grads: Gradients } {
  const outputs = spec.kind === 'regression' ? 1 : spec.outputDim;
  const episodes = { tasks: batch.tasks, supportSize: batch.supportSize, querySize: batch.querySize, outputs };
  const rows = batch.tasks * (batch.supportSize + batch.querySize);
  const targets = {
    'support.targets': floatInput(encodeTargets(spec, batch.support.y), [batch.tasks, batch.supportSize, outputs]),
    'query.targets': floatInput(encodeTargets(spec, batch.query.y), [batch.tasks, batch.querySize, outputs]),
  };
  const { body, head } = splitBodyHead(values);
  if (algorithm === 'protonet') {
    return ortStep(spec, body, imagesOf(batch), rows, `protonet:${JSON.stringify(episodes)}`, (shape) => protonetStepGraph(shape, episodes), targets, []);
  }
  const extra = {
    ...targets,
    ...Object.fromEntries(HEAD_NAMES.map((name) => [name, floatInput(head[name].data, head[name].shape)])),
    'inner.lr': floatInput(Float32Array.of(inner.lr), []),
  };
  return ortStep(spec, body, imagesOf(batch), rows, `anil:${spec.kind}:${inner.steps}:${JSON.stringify(episodes)}`, (shape) => anilStepGraph(shape, episodes, spec.kind, inner.steps), extra, HEAD_NAMES);
}

/** Multitask: the body runs on the minibatch's images; the pool's heads and their loss on the embeddings (poolLoss). */
function poolGradient(spec: ModelSpec, values: ParamArrays, batch: PoolBatch): { loss: number; grads: Gradients } {
  const rows = batch.tasks * batch.n;
  const pass = ortBodyPass(spec, splitBodyHead(values).body, batch.x, rows);
  const width = pass.embeddings.length / rows;
  const features = { data: pass.embeddings, shape: [batch.tasks, batch.n, width] };
  const { loss, grads, inputGrads } = headGradient(withoutBody(values), [features], (theta, [x]) => poolLoss(spec, theta, x as tf.Tensor3D, batch));
  return { loss, grads: { ...grads, ...pass.backward(inputGrads[0]) } };
}

/** A task's examples: `n` images [n, inputDim] and their labels or values [n]. */
export interface TaskExamples {
  n: number;
  x: Float32Array;
  y: Float32Array;
}

/** The per-task loss [1] of the head `theta` on one task's embeddings, targets in the loss's layout. */
function taskLossOn(onEmbeddings: ModelSpec, theta: NamedTensors, embeddings: tf.Tensor, set: TaskExamples): tf.Tensor {
  const y = tf.tensor3d(encodeTargets(onEmbeddings, set.y), [1, set.n, onEmbeddings.kind === 'regression' ? 1 : onEmbeddings.outputDim]);
  return lossOn(onEmbeddings, theta, { x: embeddings as tf.Tensor3D, y });
}

/**
 * The body and head after the inner loop on one task's support set: adaptToSupport's plain gradient
 * steps on the whole model (scope 'all', no monitor: meta-training is unguarded), each with the
 * body's forward and backward passes at the task's current parameters (the graphs take them as
 * inputs) and the head's loss on tfjs. The step differentiates lr x the loss, as the tfjs inner loop does.
 */
export function ortAdaptTask(spec: ModelSpec, inner: InnerSettings, theta: ParamArrays, support: TaskExamples): ParamArrays {
  let params = theta;
  for (let step = 0; step < inner.steps; step++) {
    const { body, head } = splitBodyHead(params);
    const pass = ortBodyPass(spec, body, support.x, support.n);
    const width = pass.embeddings.length / support.n;
    const onEmbeddings = headSpec(spec, width);
    const { grads, inputGrads } = headGradient(head, [{ data: pass.embeddings, shape: [1, support.n, width] }], (th, [e]) =>
      tf.mul(tf.sum(taskLossOn(onEmbeddings, th, e, support)), inner.lr) as tf.Scalar,
    );
    const scaled = { ...grads, ...pass.backward(inputGrads[0]) };
    const current = params;
    params = Object.fromEntries(Object.entries(current).map(([name, p]) => [name, { shape: p.shape, data: p.data.map((v, i) => v - scaled[name][i]) }]));
  }
  return params;
}

/** One task's support set and query set of a meta-batch. */
function taskOf(batch: EpisodeBatch, t: number): { support: TaskExamples; query: TaskExamples } {
  const one = sliceEpisodeBatch(batch, t);
  return { support: { n: one.supportSize, ...one.support }, query: { n: one.querySize, ...one.query } };
}

/**
 * FOMAML and Reptile, whose inner loop moves the body: task by task, the adapted parameters
 * (ortAdaptTask), then FOMAML's meta-gradient, the query loss's gradient at them (common.ts
 * atAdaptedParams), or Reptile's, theta minus their mean over the tasks (reptile.ts); the loss is the
 * mean query loss at them. First-order derivatives of the body only: nothing is differentiated
 * through the inner steps.
 */
function afterAdaptingBody(algorithm: 'fomaml' | 'reptile', spec: ModelSpec, inner: InnerSettings, values: ParamArrays, batch: EpisodeBatch): { loss: number; grads: Gradients } {
  const sums: Record<string, Float64Array> = Object.fromEntries(Object.entries(values).map(([name, p]) => [name, new Float64Array(p.data.length)]));
  let loss = 0;
  for (let t = 0; t < batch.tasks; t++) {
    const { support, query } = taskOf(batch, t);
    const adapted = ortAdaptTask(spec, inner, values, support);
    const { body, head } = splitBodyHead(adapted);
    if (algorithm === 'fomaml') {
      const pass = ortBodyPass(spec, body, query.x, query.n);
      const width = pass.embeddings.length / query.n;
      const onEmbeddings = headSpec(spec, width);
      const task = headGradient(head, [{ data: pass.embeddings, shape: [1, query.n, width] }], (th, [e]) => tf.sum(taskLossOn(onEmbeddings, th, e, query)) as tf.Scalar);
      const grads = { ...task.grads, ...pass.backward(task.inputGrads[0]) };
      for (const [name, sum] of Object.entries(sums)) grads[name].forEach((g, i) => (sum[i] += g));
      loss += task.loss;
    } else {
      const embeddings = ortEmbed(spec, body, query.x, query.n);
      const width = embeddings.length / query.n;
      const onEmbeddings = headSpec(spec, width);
      loss += tidyValues(() => taskLossOn(onEmbeddings, toTensors(head), tf.tensor3d(embeddings, [1, query.n, width]), query))[0];
      for (const [name, sum] of Object.entries(sums)) adapted[name].data.forEach((v, i) => (sum[i] += v));
    }
  }
  // FOMAML: the mean of the tasks' gradients; Reptile: theta minus the mean of their adapted parameters.
  const grads: Gradients = Object.fromEntries(
    Object.entries(sums).map(([name, sum]) => {
      const mean = Float32Array.from(sum, (v) => v / batch.tasks);
      return [name, algorithm === 'fomaml' ? mean : values[name].data.map((v, i) => v - mean[i])];
    }),
  );
  return { loss: loss / batch.tasks, grads };
}

/**
 * The meta-batch with its images replaced by their embeddings (support then query rows), and the
 * model the algorithm then sees: evaluation and adaptation run the algorithm's tfjs code on these.
 */
export function embedBatch(spec: ModelSpec, params: ParamArrays, batch: EpisodeBatch): { spec: ModelSpec; batch: EpisodeBatch } {
  const rows = batch.tasks * (batch.supportSize + batch.querySize);
  const embeddings = ortEmbed(spec, splitBodyHead(params).body, imagesOf(batch), rows);
  const width = embeddings.length / rows;
  return { spec: headSpec(spec, width), batch: embeddedBatch(batch, embeddings, width) };
}
