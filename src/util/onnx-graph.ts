/**
 * The pieces of an ONNX model (onnx/onnx.proto: ModelProto, GraphProto, NodeProto, AttributeProto,
 * TensorProto, ValueInfoProto) that both writers need: the export (src/export/onnx.ts, a task's
 * network with its weights baked in as initializers) and the engine's ONNX Runtime route
 * (src/meta/ort/, the conv body with its parameters as graph inputs, forward and backward). One
 * writer, two uses: the field numbers live here only.
 */
import { float32Bytes } from './float32.js';
import { bytesField, floatField, intField, message, messageField, stringField, type Field } from './protobuf.js';

export type { Field };

/** IR version 7 is the one released with opset 13 (ONNX 1.8); every runtime since reads it. */
const IR_VERSION = 7;

/** TensorProto.DataType values. */
export const FLOAT = 1;
export const INT64 = 7;
/** AttributeProto.AttributeType FLOAT, INT, STRING and INTS. */
const ATTRIBUTE_FLOAT = 1;
const ATTRIBUTE_INT = 2;
const ATTRIBUTE_STRING = 3;
const ATTRIBUTE_INTS = 7;

/** A float32 tensor as plain data (the shape of the engine's ParamArray). */
export interface FloatTensor {
  shape: readonly number[];
  data: Float32Array;
}

/** An initializer: a named float32 tensor. */
export function floatTensor(name: string, p: FloatTensor): Field {
  return messageField(5, [...p.shape.map((d) => intField(1, d)), intField(2, FLOAT), stringField(8, name), bytesField(9, float32Bytes(p.data))]);
}

/** An initializer: a named float32 scalar. */
export function floatScalar(name: string, value: number): Field {
  return floatTensor(name, { shape: [], data: Float32Array.of(value) });
}

/** An initializer: a named int64 tensor of `shape` ([] for a scalar; little-endian raw data, so negative values need no varint). */
export function int64Tensor(name: string, shape: readonly number[], values: readonly number[]): Field {
  const bytes = new Uint8Array(values.length * 8);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
  return messageField(5, [...shape.map((d) => intField(1, d)), intField(2, INT64), stringField(8, name), bytesField(9, bytes)]);
}

/** An initializer: a named int64 vector. */
export function int64Vector(name: string, values: readonly number[]): Field {
  return int64Tensor(name, [values.length], values);
}

/** A graph input (11) or output (12): a tensor of `elemType` whose dimensions are numbers or named (e.g. 'batch'). */
export function valueInfo(field: 11 | 12, name: string, elemType: number, dims: readonly (number | string)[]): Field {
  const shape = dims.map((d) => messageField(1, [typeof d === 'number' ? intField(1, d) : stringField(2, d)]));
  const tensorType = messageField(1, [intField(1, elemType), messageField(2, shape)]);
  return messageField(field, [stringField(1, name), messageField(2, [tensorType])]);
}

/** A float attribute's value (a plain number is an integer attribute). */
export interface FloatAttribute {
  float: number;
}

/**
 * A node: `op` on `inputs` producing `outputs` (an input named '' is an omitted optional one), with
 * integer, integer-list (non-negative), float or string attributes.
 */
export function node(op: string, inputs: readonly string[], outputs: readonly string[], attributes: Record<string, number | string | FloatAttribute | readonly number[]> = {}): Field {
  const attrs = Object.entries(attributes).map(([name, value]) => {
    if (typeof value === 'object' && 'float' in value) return messageField(5, [stringField(1, name), intField(20, ATTRIBUTE_FLOAT), floatField(2, value.float)]);
    if (typeof value === 'number') return messageField(5, [stringField(1, name), intField(20, ATTRIBUTE_INT), intField(3, value)]);
    if (typeof value === 'string') return messageField(5, [stringField(1, name), intField(20, ATTRIBUTE_STRING), stringField(4, value)]);
    return messageField(5, [stringField(1, name), intField(20, ATTRIBUTE_INTS), ...value.map((v) => intField(8, v))]);
  });
  return messageField(1, [...inputs.map((i) => stringField(1, i)), ...outputs.map((o) => stringField(2, o)), stringField(3, outputs[0]), stringField(4, op), ...attrs]);
}

/** A graph's parts: nodes in order, initializers, inputs and outputs (valueInfo fields 11 and 12). */
export interface GraphParts {
  name: string;
  nodes: readonly Field[];
  initializers: readonly Field[];
  inputs: readonly Field[];
  outputs: readonly Field[];
}

/** The ModelProto of one graph against the default operator set `opset`, with `metadata` as its metadata_props. */
export function onnxModel(graph: GraphParts, opset: number, metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  const body = [...graph.nodes, stringField(2, graph.name), ...graph.initializers, ...graph.inputs, ...graph.outputs];
  return message([
    intField(1, IR_VERSION),
    stringField(2, 'fastadapt'),
    messageField(7, body),
    messageField(8, [stringField(1, ''), intField(2, opset)]),
    // ModelProto.metadata_props: StringStringEntryProto { key = 1, value = 2 }.
    ...Object.entries(metadata).map(([key, value]) => messageField(14, [stringField(1, key), stringField(2, value)])),
  ]);
}
