/**
 * A task's network as a TensorFlow.js LayersModel artefact, in one JSON document:
 * - `modelTopology`: a Keras Sequential of Dense layers (the format tfjs-layers saves and loads),
 *   each hidden layer with the body's activation, the head linear for regression and softmax for
 *   classification (so the model outputs /predict's value, or its class probabilities; the label is
 *   their argMax);
 * - `weightSpecs` and `weightData` (base64 of the little-endian float32 weights, in spec order):
 *   what `tf.io.fromMemory` takes once `weightData` is decoded to an ArrayBuffer;
 * - `weightsManifest`, so that the document without `weightData` is a valid model.json whose
 *   `weights.bin` is the decoded `weightData`: a file:// or http:// URL loads that pair too.
 */
import type { ModelSpec, ParamArrays } from '../meta/model.js';
import { float32Bytes } from '../util/float32.js';
import { denseLayers } from './layers.js';

/** The tfjs-layers version whose format the topology follows (the engine's own tfjs). */
const TFJS_LAYERS_VERSION = '4.22.0';

export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: 'float32';
}

/** One dense layer of the topology, as tfjs-layers serialises it (defaults left to the loader). */
interface DenseLayerJson {
  class_name: 'Dense';
  config: { name: string; units: number; activation: string; use_bias: true; trainable: true; dtype: 'float32'; batch_input_shape?: [null, number] };
}

export interface TfjsArtefact {
  format: 'layers-model';
  generatedBy: string;
  convertedBy: null;
  modelTopology: {
    class_name: 'Sequential';
    config: { name: string; layers: DenseLayerJson[] };
    keras_version: string;
    backend: 'tensor_flow.js';
  };
  weightsManifest: [{ paths: ['weights.bin']; weights: TfjsWeightSpec[] }];
  weightSpecs: TfjsWeightSpec[];
  /** Base64 of the float32 weights (little-endian), in `weightSpecs` order. */
  weightData: string;
}

/**
 * The TF.js artefact of the network `spec` with task parameters `params` (see taskParams).
 * @throws RangeError naming a missing or mis-shaped parameter.
 */
export function toTfjs(spec: ModelSpec, params: ParamArrays, name = 'fastadapt'): TfjsArtefact {
  const layers = denseLayers(spec, params);
  const topology: DenseLayerJson[] = layers.map((layer, i) => ({
    class_name: 'Dense',
    config: {
      name: layer.name,
      units: layer.bias.shape[0],
      activation: layer.activation ?? (spec.kind === 'classification' ? 'softmax' : 'linear'),
      use_bias: true,
      trainable: true,
      dtype: 'float32',
      ...(i === 0 ? { batch_input_shape: [null, spec.inputDim] as [null, number] } : {}),
    },
  }));
  const weightSpecs: TfjsWeightSpec[] = layers.flatMap((layer) => [
    { name: `${layer.name}/kernel`, shape: [...layer.weight.shape], dtype: 'float32' as const },
    { name: `${layer.name}/bias`, shape: [...layer.bias.shape], dtype: 'float32' as const },
  ]);
  const weights = float32Bytes(layers.flatMap((layer) => [...layer.weight.data, ...layer.bias.data]));
  return {
    format: 'layers-model',
    generatedBy: `fastadapt (tfjs-layers ${TFJS_LAYERS_VERSION} format)`,
    convertedBy: null,
    modelTopology: { class_name: 'Sequential', config: { name, layers: topology }, keras_version: `tfjs-layers ${TFJS_LAYERS_VERSION}`, backend: 'tensor_flow.js' },
    weightsManifest: [{ paths: ['weights.bin'], weights: weightSpecs }],
    weightSpecs,
    weightData: Buffer.from(weights.buffer, weights.byteOffset, weights.byteLength).toString('base64'),
  };
}
