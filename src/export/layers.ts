/**
 * A task's network as the exporters see it: the engine's MLP (model.ts) as a list of dense layers,
 * input first, head last. Each layer computes act(h W + b) with W stored [fanIn, fanOut] row-major,
 * exactly as the engine holds it; the head has no activation (its output is the regression value or
 * the class logits). Both ONNX and TF.js layers read weights in this orientation, so nothing is
 * transposed on the way out.
 */
import { HEAD_BIAS, HEAD_WEIGHT, type Activation, type ModelSpec, type ParamArray, type ParamArrays } from '../meta/model.js';
import { checkTaskParams } from '../meta/predict-arrays.js';

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

/**
 * The layers of the network `spec` describes, with the task parameters `params` (body and head, as
 * taskParams assembles them; extra entries such as Meta-SGD's `lr.*` are not part of the network).
 * @throws RangeError naming a missing or mis-shaped parameter.
 */
export function denseLayers(spec: ModelSpec, params: ParamArrays): DenseLayer[] {
  checkTaskParams(spec, params);
  const body = spec.hidden.map((_, i): DenseLayer => ({
    name: `body_${i}`,
    weight: params[`body.${i}.weight`],
    bias: params[`body.${i}.bias`],
    activation: spec.activation,
  }));
  return [...body, { name: 'head', weight: params[HEAD_WEIGHT], bias: params[HEAD_BIAS] }];
}
