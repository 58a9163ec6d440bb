/**
 * The ONNX Runtime engine for conv bodies: the body's forward and backward passes run in
 * onnxruntime-node (body.ts, graph.ts); what the algorithm does on top of the embeddings (prototypes,
 * the head's inner loop, the query loss) runs in tfjs on a model that is only the head, fed the
 * embeddings as its inputs.
 *
 * This covers every algorithm whose adaptation leaves the body fixed (ProtoNets, ANIL, ANIL with a
 * zero head): their meta-gradient reaches the body only through the embeddings, so it is the body's
 * vector-Jacobian product of dL/d embeddings, first-order derivatives of the body whatever the
 * order through the head (ANIL's second-order terms are all in the head's inner loop, which tfjs
 * differentiates on [n, D] embeddings). Algorithms that adapt the body (MAML, Meta-SGD, FOMAML,
 * Reptile) and multitask's pool training stay on tfjs.
 */

import { tf, tidyValues } from '../backend.js';
import type { Gradients } from '../adam.js';
import { getAlgorithm, type AlgorithmName, type InnerSettings } from '../algorithms/index.js';
import { lossOn } from '../inner-loop.js';
import { splitBodyHead, type ModelSpec, type NamedTensors, type ParamArrays } from '../model.js';
import { batchToTensors } from '../tensors.js';
import type { EpisodeBatch } from '../types.js';
import { ortBodyPass, ortEmbed } from './body.js';
import { ortAvailable } from './runtime.js';

export { ortAvailable, ortThreads, ortUnavailableReason, ortVersion } from './runtime.js';
export { ortEmbed } from './body.js';

/** The algorithms this engine trains (chooseEngine asks). */
export const ORT_ALGORITHMS: readonly AlgorithmName[] = ['protonet', 'anil'];

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

/**
 * The mean post-adaptation query loss of a meta-batch and its meta-gradient (body and head), with the
 * body on ONNX Runtime. The same quantity as the tfjs engine's (algorithms/common.ts' throughAdaptation).
 * @throws RangeError for an algorithm this engine does not run.
 */
export function ortMetaGradient(algorithmName: AlgorithmName, spec: ModelSpec, inner: InnerSettings, values: ParamArrays, batch: EpisodeBatch): { loss: number; grads: Gradients } {
  const algorithm = getAlgorithm(algorithmName);
  if (!ortSupports(algorithmName) || algorithm.trainsOn !== 'episodes') throw new RangeError(`the ONNX Runtime engine does not run algorithm '${algorithmName}'`);
  const rows = batch.tasks * (batch.supportSize + batch.querySize);
  const { body } = splitBodyHead(values);
  const pass = ortBodyPass(spec, body, imagesOf(batch), rows);
  const width = pass.embeddings.length / rows;
  const onEmbeddings = headSpec(spec, width);
  const headNames = Object.keys(withoutBody(values));
  const theta = withoutBody(values);
  const flat = tidyValues(() => {
    const tensors = batchToTensors(onEmbeddings, embeddedBatch(batch, pass.embeddings, width));
    // The embeddings are differentiated as inputs: their gradient is what the body's backward pass takes.
    const objective = (...p: tf.Tensor[]): tf.Scalar => {
      const th: NamedTensors = Object.fromEntries(headNames.map((name, i) => [name, p[i]]));
      const support = { x: p[headNames.length] as tf.Tensor3D, y: tensors.support.y };
      const query = { x: p[headNames.length + 1] as tf.Tensor3D, y: tensors.query.y };
      return tf.mean(lossOn(onEmbeddings, algorithm.adapt(onEmbeddings, th, support, inner), query));
    };
    const start = headNames.map((name) => tf.tensor(theta[name].data, theta[name].shape));
    const { value, grads } = tf.valueAndGrads(objective)([...start, tensors.support.x, tensors.query.x]);
    return tf.concat([tf.reshape(value, [1]), ...grads.map((g) => tf.reshape(g, [-1]))]);
  });
  const grads: Gradients = {};
  let offset = 1;
  for (const name of headNames) {
    const size = values[name].data.length;
    grads[name] = flat.slice(offset, offset + size);
    offset += size;
  }
  Object.assign(grads, pass.backward(flat.subarray(offset)));
  return { loss: flat[0], grads };
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
