/**
 * The ONNX Runtime engine for conv bodies: the body's forward and backward passes run in
 * onnxruntime-node (body.ts, graph.ts); what the algorithm does on top of the embeddings (prototypes,
 * the head's inner loop, the query loss) runs in tfjs on a model that is only the head, fed the
 * embeddings as its inputs.
 *
 * This covers every algorithm whose adaptation leaves the body fixed (ProtoNets, ANIL, ANIL with a
 * zero head) and multitask's pool training: their meta-gradient reaches the body only through the
 * embeddings, so it is the body's vector-Jacobian product of dL/d embeddings, first-order
 * derivatives of the body whatever the order through the head (ANIL's second-order terms are all in
 * the head's inner loop, which tfjs differentiates on [n, D] embeddings). MAML and Meta-SGD
 * (second order through the body), FOMAML and Reptile stay on tfjs.
 */

import { tf, tidyValues } from '../backend.js';
import type { Gradients } from '../adam.js';
import { getAlgorithm, type AlgorithmName, type InnerSettings, type MetaAlgorithm } from '../algorithms/index.js';
import { poolLoss } from '../algorithms/multitask.js';
import { lossOn } from '../inner-loop.js';
import { splitBodyHead, type ModelSpec, type NamedTensors, type ParamArrays } from '../model.js';
import { batchToTensors } from '../tensors.js';
import { isPoolBatch, type EpisodeBatch, type PoolBatch, type TrainingBatch } from '../types.js';
import { ortBodyPass, ortEmbed } from './body.js';
import { ortAvailable } from './runtime.js';

export { ortAvailable, ortThreads, ortUnavailableReason, ortVersion } from './runtime.js';
export { ortEmbed } from './body.js';

/** The algorithms this engine trains (chooseEngine asks). */
export const ORT_ALGORITHMS: readonly AlgorithmName[] = ['protonet', 'anil', 'multitask'];

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
  return throughEmbeddings(algorithm, spec, inner, values, batch);
}

/** ProtoNets and ANIL: the body runs once on all the images; the algorithm adapts and scores on their embeddings. */
function throughEmbeddings(algorithm: MetaAlgorithm, spec: ModelSpec, inner: InnerSettings, values: ParamArrays, batch: EpisodeBatch): { loss: number; grads: Gradients } {
  const rows = batch.tasks * (batch.supportSize + batch.querySize);
  const pass = ortBodyPass(spec, splitBodyHead(values).body, imagesOf(batch), rows);
  const width = pass.embeddings.length / rows;
  const onEmbeddings = headSpec(spec, width);
  const supportRows = batch.tasks * batch.supportSize;
  const inputs = [
    { data: pass.embeddings.subarray(0, supportRows * width), shape: [batch.tasks, batch.supportSize, width] },
    { data: pass.embeddings.subarray(supportRows * width), shape: [batch.tasks, batch.querySize, width] },
  ];
  const { loss, grads, inputGrads } = headGradient(withoutBody(values), inputs, (theta, [supportX, queryX]) => {
    const tensors = batchToTensors(onEmbeddings, embeddedBatch(batch, pass.embeddings, width));
    const support = { x: supportX as tf.Tensor3D, y: tensors.support.y };
    const query = { x: queryX as tf.Tensor3D, y: tensors.query.y };
    return tf.mean(lossOn(onEmbeddings, algorithm.adapt(onEmbeddings, theta, support, inner), query));
  });
  const embeddingGrad = new Float32Array(pass.embeddings.length);
  embeddingGrad.set(inputGrads[0]);
  embeddingGrad.set(inputGrads[1], inputGrads[0].length);
  return { loss, grads: { ...grads, ...pass.backward(embeddingGrad) } };
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
