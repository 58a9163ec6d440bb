/**
 * A task's network as a TensorFlow.js LayersModel artefact, in one JSON document:
 * - `modelTopology`: a Keras Sequential (the format tfjs-layers saves and loads). An MLP is Dense
 *   layers, each hidden one with the body's activation. A conv body (layers.ts) starts with a Reshape
 *   of the input row to [h, w, c]; each block is a Conv2D (3x3, 'same', kernel HWIO as the engine
 *   holds it), a LayerNormalization over axes [1, 2, 3] with epsilon 1e-5 (tfjs normalises with the
 *   biased variance, as the engine; its gamma and beta span the whole [h, w, c], so they are the
 *   per-channel scale and offset tiled over the image), an Activation, and a MaxPooling2D 2x2 stride 2
 *   with 'same' padding (on an odd side that pads the end only and ignores the padding: the engine's
 *   ceil pooling); a Flatten (channels last: (h, w, c) order) feeds the head. The head is a Dense
 *   layer, linear for regression and softmax for classification (so the model outputs /predict's
 *   value, or its class probabilities; the label is their argMax);
 * - `weightSpecs` and `weightData` (base64 of the little-endian float32 weights, in spec order):
 *   what `tf.io.fromMemory` takes once `weightData` is decoded to an ArrayBuffer;
 * - `weightsManifest`, so that the document without `weightData` is a valid model.json whose
 *   `weights.bin` is the decoded `weightData`: a file:// or http:// URL loads that pair too.
 */
import type { Calibration } from '../meta/calibration.js';
import type { ModelSpec, ParamArray, ParamArrays } from '../meta/model.js';
import { float32Bytes } from '../util/float32.js';
import { networkLayers, NORM_EPSILON, type ConvBlock, type ConvBody, type DenseLayer } from './layers.js';

/** The tfjs-layers version whose format the topology follows (the engine's own tfjs). */
const TFJS_LAYERS_VERSION = '4.22.0';

export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32';
}

/** Configuration every layer carries (defaults of the rest left to the loader). */
interface LayerBase {
  name: string;
  trainable: true;
  dtype: 'float32';
  /** The first layer's: [null, inputDim]. */
  batch_input_shape?: [null, number];
}

/** One layer of the topology, as tfjs-layers serialises it. */
type LayerJson =
  | { class_name: 'Dense'; config: LayerBase & { units: number; activation: string; use_bias: true } }
  | { class_name: 'Reshape'; config: LayerBase & { target_shape: number[] } }
  | {
      class_name: 'Conv2D';
      config: LayerBase & { filters: number; kernel_size: [3, 3]; strides: [1, 1]; padding: 'same'; data_format: 'channels_last'; dilation_rate: [1, 1]; activation: 'linear'; use_bias: true };
    }
  | { class_name: 'LayerNormalization'; config: LayerBase & { axis: number[]; epsilon: number; center: true; scale: true } }
  | { class_name: 'Activation'; config: LayerBase & { activation: string } }
  | { class_name: 'MaxPooling2D'; config: LayerBase & { pool_size: [2, 2]; strides: [2, 2]; padding: 'same'; data_format: 'channels_last' } }
  | { class_name: 'Flatten'; config: LayerBase & { data_format: 'channels_last' } };

export interface TfjsArtefact {
  format: 'layers-model';
  generatedBy: string;
  convertedBy: null;
  modelTopology: {
    class_name: 'Sequential';
    config: { name: string; layers: LayerJson[] };
    keras_version: string;
    backend: 'tensor_flow.js';
  };
  weightsManifest: [{ paths: ['weights.bin']; weights: TfjsWeightSpec[] }];
  weightSpecs: TfjsWeightSpec[];
  /** Base64 of the float32 weights (little-endian), in `weightSpecs` order. */
  weightData: string;
  /** What else the file says about the model (ModelArtifacts.userDefinedMetadata, which tf.io.fromMemory keeps); absent when nothing. */
  userDefinedMetadata?: TfjsMetadata;
}

/** A task's class names (a JSON array, in index order) and its meta-model's calibration. */
export interface TfjsMetadata {
  labels?: string;
  calibration?: Calibration;
}

/** Named weights in the order they are written. */
type Weights = Array<[string, ParamArray]>;

const base = (name: string): LayerBase => ({ name, trainable: true, dtype: 'float32' });

/** A per-channel vector [C] repeated over every pixel of an [h, w, C] image. */
function tiled(p: ParamArray, [height, width, channels]: readonly number[]): ParamArray {
  const data = new Float32Array(height * width * channels);
  for (let pixel = 0; pixel < height * width; pixel++) data.set(p.data, pixel * channels);
  return { shape: [height, width, channels], data };
}

function convBlock(block: ConvBlock, layers: LayerJson[], weights: Weights): void {
  const [norm, act, pool] = [`${block.name}_norm`, `${block.name}_${block.activation}`, `${block.name}_pool`];
  const [height, width] = block.input;
  const out = block.output[2];
  layers.push(
    {
      class_name: 'Conv2D',
      config: { ...base(block.name), filters: out, kernel_size: [3, 3], strides: [1, 1], padding: 'same', data_format: 'channels_last', dilation_rate: [1, 1], activation: 'linear', use_bias: true },
    },
    { class_name: 'LayerNormalization', config: { ...base(norm), axis: [1, 2, 3], epsilon: NORM_EPSILON, center: true, scale: true } },
    { class_name: 'Activation', config: { ...base(act), activation: block.activation } },
    { class_name: 'MaxPooling2D', config: { ...base(pool), pool_size: [2, 2], strides: [2, 2], padding: 'same', data_format: 'channels_last' } },
  );
  weights.push(
    [`${block.name}/kernel`, block.weight],
    [`${block.name}/bias`, block.bias],
    [`${norm}/gamma`, tiled(block.scale, [height, width, out])],
    [`${norm}/beta`, tiled(block.offset, [height, width, out])],
  );
}

function convBody(body: ConvBody, inputDim: number, layers: LayerJson[], weights: Weights): void {
  layers.push({ class_name: 'Reshape', config: { ...base('image'), target_shape: [...body.inputShape], batch_input_shape: [null, inputDim] } });
  for (const block of body.blocks) convBlock(block, layers, weights);
  layers.push({ class_name: 'Flatten', config: { ...base('embedding'), data_format: 'channels_last' } });
}

function denseLayer(layer: DenseLayer, activation: string, first: boolean, inputDim: number, layers: LayerJson[], weights: Weights): void {
  layers.push({
    class_name: 'Dense',
    config: { ...base(layer.name), units: layer.bias.shape[0], activation, use_bias: true, ...(first ? { batch_input_shape: [null, inputDim] as [null, number] } : {}) },
  });
  weights.push([`${layer.name}/kernel`, layer.weight], [`${layer.name}/bias`, layer.bias]);
}

/**
 * The TF.js artefact of the network `spec` with task parameters `params` (see taskParams).
 * @throws RangeError naming a missing or mis-shaped parameter.
 */
export function toTfjs(spec: ModelSpec, params: ParamArrays, name = 'fastadapt', metadata: TfjsMetadata = {}): TfjsArtefact {
  const network = networkLayers(spec, params);
  const topology: LayerJson[] = [];
  const weights: Weights = [];
  if (network.conv) convBody(network.conv, network.inputDim, topology, weights);
  network.dense.forEach((layer, i) => {
    const activation = layer.activation ?? (spec.kind === 'classification' ? 'softmax' : 'linear');
    denseLayer(layer, activation, i === 0 && !network.conv, network.inputDim, topology, weights);
  });
  const weightSpecs: TfjsWeightSpec[] = weights.map(([weightName, p]) => ({ name: weightName, shape: [...p.shape], dtype: 'float32' as const }));
  const values = new Float32Array(weights.reduce((sum, [, p]) => sum + p.data.length, 0));
  let offset = 0;
  for (const [, p] of weights) {
    values.set(p.data, offset);
    offset += p.data.length;
  }
  const bytes = float32Bytes(values);
  return {
    format: 'layers-model',
    generatedBy: `fastadapt (tfjs-layers ${TFJS_LAYERS_VERSION} format)`,
    convertedBy: null,
    modelTopology: { class_name: 'Sequential', config: { name, layers: topology }, keras_version: `tfjs-layers ${TFJS_LAYERS_VERSION}`, backend: 'tensor_flow.js' },
    weightsManifest: [{ paths: ['weights.bin'], weights: weightSpecs }],
    weightSpecs,
    weightData: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'),
    ...(Object.keys(metadata).length === 0 ? {} : { userDefinedMetadata: { ...metadata } }),
  };
}
