/**
 * The conv body on ONNX Runtime: embeddings of a batch of images, and for training the
 * vector-Jacobian product of the body (dL/d embedding to dL/d body parameters), on sessions cached
 * per (architecture, batch size). Parameters are plain data (the learner's master copy), fed as graph
 * inputs, so one session serves every iteration.
 */

import type { Gradients } from '../adam.js';
import type { ModelSpec, ParamArrays } from '../model.js';
import { backwardGraph, blockDims, denseLayout, flippedKernelName, forwardGraph, gradName, isDenseBlock, kernelLayout, kernelName, paramNames, savedNames, type ConvGraphShape } from './graph.js';
import { cachedGraph, floatInput, type OrtTensor } from './runtime.js';

function graphShape(spec: ModelSpec, batch: number): ConvGraphShape {
  if (spec.body !== 'conv') throw new RangeError(`the ONNX Runtime engine runs conv bodies only, not '${spec.body}'`);
  return { inputShape: spec.inputShape!, channels: spec.channels!, activation: spec.activation, batch };
}

const keyOf = (kind: string, shape: ConvGraphShape) => `${kind}:${shape.inputShape.join('x')}:${shape.channels.join(',')}:${shape.activation}:${shape.batch}`;

/**
 * The parameters as graph inputs, each weight also as the forward's kernel (a dense block's map);
 * with `flipped`, the backward's rotated kernels (blocks after the first, but dense ones) into that record.
 */
function paramFeeds(spec: ModelSpec, params: ParamArrays, flipped?: Record<string, OrtTensor>): Record<string, OrtTensor> {
  const dims = blockDims(graphShape(spec, 1)); // throws for a body other than conv
  const out: Record<string, OrtTensor> = {};
  for (const name of paramNames(spec.channels!)) {
    const p = params[name];
    if (!p) throw new RangeError(`the conv body has no parameter '${name}'`);
    out[name] = floatInput(p.data, p.shape);
  }
  dims.forEach((block, i) => {
    const { cin, cout, h, w } = block;
    const weight = params[`body.${i}.weight`].data;
    if (isDenseBlock(block)) {
      out[kernelName(i)] = floatInput(denseLayout(weight, cin, cout, h, w), [cin * h * w, cout * h * w]);
      return;
    }
    out[kernelName(i)] = floatInput(kernelLayout(weight, cin, cout), [cout, cin, 3, 3]);
    if (flipped && i > 0) flipped[flippedKernelName(i)] = floatInput(kernelLayout(weight, cin, cout, true), [cin, cout, 3, 3]);
  });
  return out;
}

/** The feeds of every graph: the images `x` [batch, inputDim] and the parameters (paramFeeds). */
function feeds(spec: ModelSpec, params: ParamArrays, x: Float32Array, batch: number, flipped?: Record<string, OrtTensor>): Record<string, OrtTensor> {
  return { x: imagesInput(spec, x, batch), ...paramFeeds(spec, params, flipped) };
}

function imagesInput(spec: ModelSpec, x: Float32Array, batch: number): OrtTensor {
  if (x.length !== batch * spec.inputDim) throw new RangeError(`x has ${x.length} values, expected ${batch} x ${spec.inputDim}`);
  return floatInput(x, [batch, spec.inputDim]);
}

/**
 * A body's parameters as the forward graph's inputs, prepared once where they do not change
 * (serving: a prediction of one image would otherwise spend about as long rearranging the kernels
 * as running the graph). The parameters must not change while it is in use.
 */
export interface PreparedBody {
  readonly feeds: Readonly<Record<string, OrtTensor>>;
}

export function prepareBody(spec: ModelSpec, params: ParamArrays): PreparedBody {
  return { feeds: paramFeeds(spec, params) };
}

/**
 * Images per forward run beyond which a batch runs in chunks of this size (the last one padded with
 * zero images up to it): a session is built per batch size, and a first run at thousands of images
 * (an evaluation's whole meta-batch) costs seconds of session set-up and memory planning, where runs
 * of one cached size cost a few ms each.
 */
const EMBED_CHUNK = 128;

function embedRun(spec: ModelSpec, body: PreparedBody, x: Float32Array, batch: number): Float32Array {
  const shape = graphShape(spec, batch);
  const graph = cachedGraph(keyOf('forward', shape), () => forwardGraph(shape));
  return graph.run({ x: imagesInput(spec, x, batch), ...body.feeds }, ['embedding']).embedding.data as Float32Array;
}

/** The body's embeddings [batch, D] of images `x` [batch, inputDim] (row-major, (h, w, c) per row). */
export function ortEmbed(spec: ModelSpec, params: ParamArrays, x: Float32Array, batch: number): Float32Array {
  return ortEmbedPrepared(spec, prepareBody(spec, params), x, batch);
}

/** ortEmbed with the parameters prepared (prepareBody). */
export function ortEmbedPrepared(spec: ModelSpec, body: PreparedBody, x: Float32Array, batch: number): Float32Array {
  if (batch <= EMBED_CHUNK) return embedRun(spec, body, x, batch);
  const d = spec.inputDim;
  let out: Float32Array | null = null;
  let width = 0;
  for (let start = 0; start < batch; start += EMBED_CHUNK) {
    const rows = Math.min(EMBED_CHUNK, batch - start);
    let chunk = x.subarray(start * d, (start + rows) * d);
    if (rows < EMBED_CHUNK) {
      const padded = new Float32Array(EMBED_CHUNK * d);
      padded.set(chunk);
      chunk = padded;
    }
    const e = embedRun(spec, body, chunk, EMBED_CHUNK);
    width ||= e.length / EMBED_CHUNK;
    out ??= new Float32Array(batch * width);
    out.set(e.subarray(0, rows * width), start * width);
  }
  return out!;
}

/** A training forward pass: the embeddings, and the body's backward pass from their gradient. */
export interface BodyPass {
  embeddings: Float32Array;
  /** dL/d body parameters from dL/d embeddings [batch, D] (callable once or more). */
  backward(embeddingGrad: Float32Array): Gradients;
}

/** The training forward pass of images `x` [batch, inputDim]; keeps what its backward pass reads. */
export function ortBodyPass(spec: ModelSpec, params: ParamArrays, x: Float32Array, batch: number): BodyPass {
  const shape = graphShape(spec, batch);
  const saved = savedNames(spec.channels!.length, spec.activation);
  const flipped: Record<string, OrtTensor> = {};
  const input = feeds(spec, params, x, batch, flipped);
  const forward = cachedGraph(keyOf('train', shape), () => forwardGraph(shape, true)).run(input, ['embedding', ...saved]);
  const embeddings = forward.embedding.data as Float32Array;
  return {
    embeddings,
    backward(embeddingGrad) {
      if (embeddingGrad.length !== embeddings.length) throw new RangeError(`embedding gradient has ${embeddingGrad.length} values, expected ${embeddings.length}`);
      const names = paramNames(spec.channels!);
      const backward = cachedGraph(keyOf('backward', shape), () => backwardGraph(shape));
      const all: Record<string, OrtTensor> = { ...input, ...flipped, embedding_grad: floatInput(embeddingGrad, forward.embedding.dims) };
      for (const name of saved) all[name] = forward[name];
      const out = backward.run(all, names.map(gradName));
      return Object.fromEntries(names.map((name) => [name, out[gradName(name)].data as Float32Array]));
    },
  };
}

/**
 * A whole meta-step in one session run (step-graphs.ts): images `x` [batch, inputDim], the body's
 * parameters and `extra` feeds (targets, the head's parameters) in; the loss and the gradients of the
 * body's parameters and of `extraParams` out. `key` names the graph beyond the body and batch size.
 */
export function ortStep(spec: ModelSpec, params: ParamArrays, x: Float32Array, batch: number, key: string, build: (shape: ConvGraphShape) => Uint8Array, extra: Record<string, OrtTensor>, extraParams: readonly string[]): { loss: number; grads: Gradients } {
  const shape = graphShape(spec, batch);
  const graph = cachedGraph(`${key}:${keyOf('step', shape)}`, () => build(shape));
  const flipped: Record<string, OrtTensor> = {};
  const input = { ...feeds(spec, params, x, batch, flipped), ...flipped, ...extra };
  const names = [...paramNames(spec.channels!), ...extraParams];
  const out = graph.run(input, ['loss', ...names.map(gradName)]);
  return { loss: (out.loss.data as Float32Array)[0], grads: Object.fromEntries(names.map((name) => [name, out[gradName(name)].data as Float32Array])) };
}
