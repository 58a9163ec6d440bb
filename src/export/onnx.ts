/**
 * A task's network as an ONNX model (opset 13, https://onnx.ai/onnx/operators/): what Python's
 * onnxruntime, onnxruntime-web in the browser, C# and most serving systems load.
 *
 * Input `x`: float32 [batch, inputDim]. Each hidden layer is Gemm(h, W, b) then Relu or Softplus;
 * the head is a Gemm. Outputs, as /predict answers:
 * - regression: `value`, float32 [batch] (the head's single output per input);
 * - classification: `probabilities`, float32 [batch, ways] (Softmax of the logits), and `label`,
 *   int64 [batch] (ArgMax of the logits, the first on a tie: the class /predict names, since softmax
 *   keeps the order of the logits).
 * Weights are initializers with raw little-endian float32 data. The protobuf field numbers are those
 * of onnx/onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto).
 */
import type { ModelSpec, ParamArray, ParamArrays } from '../meta/model.js';
import { float32Bytes } from '../util/float32.js';
import { denseLayers } from './layers.js';
import { bytesField, intField, message, messageField, stringField, type Field } from './protobuf.js';

/** The operator set the graph is written against: Gemm, Relu, Softplus, Softmax (axis -1), ArgMax, Reshape. */
export const ONNX_OPSET = 13;
/** IR version 7 is the one released with opset 13 (ONNX 1.8); every runtime since reads it. */
const IR_VERSION = 7;
/** The media type the export is served as: ONNX has no registered one. */
export const ONNX_CONTENT_TYPE = 'application/octet-stream';

/** TensorProto.DataType values. */
const FLOAT = 1;
const INT64 = 7;
/** AttributeProto.AttributeType.INT. */
const ATTRIBUTE_INT = 2;

/** An initializer: a named float32 tensor. */
function floatTensor(name: string, p: ParamArray): Field {
  return messageField(5, [...p.shape.map((d) => intField(1, d)), intField(2, FLOAT), stringField(8, name), bytesField(9, float32Bytes(p.data))]);
}

/** An initializer: a named int64 vector (little-endian raw data, so negative values need no varint). */
function int64Vector(name: string, values: readonly number[]): Field {
  const bytes = new Uint8Array(values.length * 8);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
  return messageField(5, [intField(1, values.length), intField(2, INT64), stringField(8, name), bytesField(9, bytes)]);
}

/** A graph input or output: a tensor of `elemType` whose dimensions are numbers or named (e.g. 'batch'). */
function valueInfo(field: 11 | 12, name: string, elemType: number, dims: readonly (number | string)[]): Field {
  const shape = dims.map((d) => messageField(1, [typeof d === 'number' ? intField(1, d) : stringField(2, d)]));
  const tensorType = messageField(1, [intField(1, elemType), messageField(2, shape)]);
  return messageField(field, [stringField(1, name), messageField(2, [tensorType])]);
}

/** A node: `op` on `inputs` producing `outputs`, with integer attributes. */
function node(op: string, inputs: readonly string[], outputs: readonly string[], attributes: Record<string, number> = {}): Field {
  const attrs = Object.entries(attributes).map(([name, value]) => messageField(5, [stringField(1, name), intField(20, ATTRIBUTE_INT), intField(3, value)]));
  return messageField(1, [...inputs.map((i) => stringField(1, i)), ...outputs.map((o) => stringField(2, o)), stringField(3, outputs[0]), stringField(4, op), ...attrs]);
}

const ACTIVATION_OPS = { relu: 'Relu', softplus: 'Softplus' } as const;

/**
 * The ONNX model of the network `spec` with task parameters `params` (see taskParams).
 * @throws RangeError naming a missing or mis-shaped parameter.
 */
export function toOnnx(spec: ModelSpec, params: ParamArrays, name = 'fastadapt'): Uint8Array {
  const nodes: Field[] = [];
  const initializers: Field[] = [];
  let h = 'x';
  for (const layer of denseLayers(spec, params)) {
    const [weight, bias, linear] = [`${layer.name}.weight`, `${layer.name}.bias`, `${layer.name}.linear`];
    initializers.push(floatTensor(weight, layer.weight), floatTensor(bias, layer.bias));
    nodes.push(node('Gemm', [h, weight, bias], [linear]));
    h = linear;
    if (layer.activation !== undefined) {
      h = `${layer.name}.${layer.activation}`;
      nodes.push(node(ACTIVATION_OPS[layer.activation], [linear], [h]));
    }
  }
  const outputs: Field[] = [];
  if (spec.kind === 'regression') {
    // The head's [batch, 1] as [batch]: one value per input, as /predict lists them.
    initializers.push(int64Vector('value.shape', [-1]));
    nodes.push(node('Reshape', [h, 'value.shape'], ['value']));
    outputs.push(valueInfo(12, 'value', FLOAT, ['batch']));
  } else {
    nodes.push(node('Softmax', [h], ['probabilities'], { axis: 1 }), node('ArgMax', [h], ['label'], { axis: 1, keepdims: 0 }));
    outputs.push(valueInfo(12, 'probabilities', FLOAT, ['batch', spec.outputDim]), valueInfo(12, 'label', INT64, ['batch']));
  }
  const graph = [...nodes, stringField(2, name), ...initializers, valueInfo(11, 'x', FLOAT, ['batch', spec.inputDim]), ...outputs];
  return message([
    intField(1, IR_VERSION),
    stringField(2, 'fastadapt'),
    messageField(7, graph),
    messageField(8, [stringField(1, ''), intField(2, ONNX_OPSET)]),
  ]);
}
