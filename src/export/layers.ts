/**
 * A task's network as the exporters see it: the engine's model (model.ts, conv.ts) as an optional
 * convolutional body followed by dense layers, input first, head last. The one place that reads the
 * engine's parameter names and layouts; onnx.ts and tfjs.ts only write what this describes.
 *
 * - Dense layers compute act(h W + b) with W stored [fanIn, fanOut] row-major, exactly as the engine
 *   holds it; the head has no activation (its output is the regression value or the class logits).
 *   Both ONNX and TF.js layers read dense weights in this orientation.
 * - A conv body (absent for an MLP) takes each input row as an image [h, w, c] (row-major, NHWC);
 *   each block is a 3x3 'same' convolution with bias (kernel [3, 3, in, out], HWIO), a layer
 *   normalisation over all of (h, w, c) of one example (biased variance, epsilon NORM_EPSILON), a
 *   per-channel scale and offset, the activation, and a 2x2 max pool of stride 2 with ceil (an odd
 *   edge's window holds its real entries only). The embedding the first dense layer (the head) reads
 *   is the last block's output flattened in (h, w, c) order.
 */
import { blockSides, NORM_EPSILON, type ImageShape } from '../meta/conv.js';
import { HEAD_BIAS, HEAD_WEIGHT, type Activation, type ModelSpec, type ParamArray, type ParamArrays } from '../meta/model.js';
import { checkTaskParams } from '../meta/predict-arrays.js';

export { NORM_EPSILON };

export interface DenseLayer {
  /** A name safe in both formats: `body_<i>` for hidden layer i, `head` for the output layer. */
  name: string;
  /** [fanIn, fanOut]. */
  weight: ParamArray;
  /** [fanOut]. */
  bias: ParamArray;
  /** Absent for the head (linear). */
  activation?: Activation;
}

/** One block of a conv body. */
export interface ConvBlock {
  /** `body_<i>`; formats derive the names of the block's other nodes or layers from it. */
  name: string;
  /** The block's input image: [height, width, channels]. */
  input: ImageShape;
  /** Its output after pooling: [ceil(height / 2), ceil(width / 2), out]. */
  output: ImageShape;
  /** [3, 3, in, out] (HWIO), as the engine holds it. */
  weight: ParamArray;
  /** [out] each. */
  bias: ParamArray;
  scale: ParamArray;
  offset: ParamArray;
  activation: Activation;
}

export interface ConvBody {
  /** [height, width, channels] of an input row. */
  inputShape: ImageShape;
  blocks: ConvBlock[];
  /** Length of the flattened last block output: the head's fan-in. */
  embeddingDim: number;
}

export interface NetworkLayers {
  inputDim: number;
  /** Absent for an MLP. */
  conv?: ConvBody;
  /** Hidden layers of an MLP (none for a conv body), then the head. */
  dense: DenseLayer[];
}

function convBody(spec: ModelSpec, params: ParamArrays): ConvBody {
  const inputShape = spec.inputShape!;
  const channels = spec.channels!;
  const sides = blockSides(inputShape, channels.length);
  let input: ImageShape = [...inputShape];
  const blocks = channels.map((out, i): ConvBlock => {
    const output: ImageShape = [sides[i][0], sides[i][1], out];
    const block: ConvBlock = {
      name: `body_${i}`,
      input,
      output,
      weight: params[`body.${i}.weight`],
      bias: params[`body.${i}.bias`],
      scale: params[`body.${i}.scale`],
      offset: params[`body.${i}.offset`],
      activation: spec.activation,
    };
    input = output;
    return block;
  });
  return { inputShape: [...inputShape], blocks, embeddingDim: input[0] * input[1] * input[2] };
}

/**
 * The layers of the network `spec` describes, with the task parameters `params` (body and head, as
 * taskParams assembles them; extra entries such as Meta-SGD's `lr.*` are not part of the network).
 * @throws RangeError naming a missing or mis-shaped parameter.
 */
export function networkLayers(spec: ModelSpec, params: ParamArrays): NetworkLayers {
  checkTaskParams(spec, params);
  const head: DenseLayer = { name: 'head', weight: params[HEAD_WEIGHT], bias: params[HEAD_BIAS] };
  if (spec.body === 'conv') return { inputDim: spec.inputDim, conv: convBody(spec, params), dense: [head] };
  const hidden = spec.hidden.map((_, i): DenseLayer => ({
    name: `body_${i}`,
    weight: params[`body.${i}.weight`],
    bias: params[`body.${i}.bias`],
    activation: spec.activation,
  }));
  return { inputDim: spec.inputDim, dense: [...hidden, head] };
}
