/**
 * A task's network as an ONNX model (opset 13, https://onnx.ai/onnx/operators/): what Python's
 * onnxruntime, onnxruntime-web in the browser, C# and most serving systems load.
 *
 * Input `x`: float32 [batch, inputDim]. An MLP's hidden layers are each Gemm(h, W, b) then Relu or
 * Softplus. A conv body (layers.ts) reshapes `x` to images [batch, h, w, c] and transposes them to
 * ONNX's NCHW; each block is Conv (kernel transposed to [out, in, 3, 3], pads 1), the layer norm
 * written out as ReduceMean / Sub / Mul / ReduceMean / Add / Sqrt / Div over axes (1, 2, 3) (opset 13
 * has no LayerNormalization), Mul and Add of the per-channel scale and offset as [1, C, 1, 1], Relu
 * or Softplus, and MaxPool 2x2 stride 2 with ceil_mode 1 (an odd edge's window holds its real
 * entries, as in the engine, whose zero padding never exceeds a non-negative activation); the last
 * block's output is transposed back to NHWC and flattened, so the head reads the engine's (h, w, c)
 * order. The head is a Gemm. Outputs, as /predict answers:
 * - regression: `value`, float32 [batch] (the head's single output per input);
 * - classification: `probabilities`, float32 [batch, ways] (Softmax of the logits), and `label`,
 *   int64 [batch] (ArgMax of the logits, the first on a tie: the class /predict names, since softmax
 *   keeps the order of the logits).
 * Weights are initializers with raw little-endian float32 data. The protobuf field numbers are those
 * of onnx/onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto).
 */
import type { ModelSpec, ParamArray, ParamArrays } from '../meta/model.js';
import { networkLayers, NORM_EPSILON, type ConvBlock, type ConvBody } from './layers.js';
import { FLOAT, floatScalar, floatTensor, INT64, int64Vector, node, onnxModel, valueInfo, type Field } from '../util/onnx-graph.js';

/**
 * The operator set the graph is written against: Gemm, Relu, Softplus, Softmax, ArgMax, Reshape, and
 * for conv bodies Transpose, Conv, ReduceMean (axes an attribute, as until opset 18), Sub, Mul, Add,
 * Sqrt, Div, MaxPool (ceil_mode) and Flatten.
 */
export const ONNX_OPSET = 13;
/** The media type the export is served as: ONNX has no registered one. */
export const ONNX_CONTENT_TYPE = 'application/octet-stream';

const ACTIVATION_OPS = { relu: 'Relu', softplus: 'Softplus' } as const;

/** A conv kernel [3, 3, in, out] (HWIO, the engine's) as ONNX's Conv reads it: [out, in, 3, 3]. */
function kernelOIHW(weight: ParamArray): ParamArray {
  const [kh, kw, cin, cout] = weight.shape;
  const data = new Float32Array(weight.data.length);
  for (let y = 0; y < kh; y++) {
    for (let x = 0; x < kw; x++) {
      for (let i = 0; i < cin; i++) {
        for (let o = 0; o < cout; o++) data[((o * cin + i) * kh + y) * kw + x] = weight.data[((y * kw + x) * cin + i) * cout + o];
      }
    }
  }
  return { shape: [cout, cin, kh, kw], data };
}

/** A per-channel vector [C] as [1, C, 1, 1], so it broadcasts over NCHW. */
function perChannel(p: ParamArray): ParamArray {
  return { shape: [1, p.shape[0], 1, 1], data: p.data };
}

/** One conv block on NCHW `h`: its nodes and initializers; returns the pooled output's name. */
function convBlock(block: ConvBlock, h: string, nodes: Field[], initializers: Field[]): string {
  const n = (part: string) => `${block.name}.${part}`;
  initializers.push(
    floatTensor(n('weight'), kernelOIHW(block.weight)),
    floatTensor(n('bias'), block.bias),
    floatTensor(n('scale'), perChannel(block.scale)),
    floatTensor(n('offset'), perChannel(block.offset)),
  );
  const axes = { axes: [1, 2, 3], keepdims: 1 };
  nodes.push(
    node('Conv', [h, n('weight'), n('bias')], [n('conv')], { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] }),
    // Layer norm over (c, h, w) of each example, biased variance: (z - mean) / sqrt(var + eps).
    node('ReduceMean', [n('conv')], [n('mean')], axes),
    node('Sub', [n('conv'), n('mean')], [n('centered')]),
    node('Mul', [n('centered'), n('centered')], [n('squared')]),
    node('ReduceMean', [n('squared')], [n('variance')], axes),
    node('Add', [n('variance'), 'norm.epsilon'], [n('variance_eps')]),
    node('Sqrt', [n('variance_eps')], [n('std')]),
    node('Div', [n('centered'), n('std')], [n('normalized')]),
    node('Mul', [n('normalized'), n('scale')], [n('scaled')]),
    node('Add', [n('scaled'), n('offset')], [n('shifted')]),
    node(ACTIVATION_OPS[block.activation], [n('shifted')], [n(block.activation)]),
    node('MaxPool', [n(block.activation)], [n('pool')], { kernel_shape: [2, 2], strides: [2, 2], ceil_mode: 1 }),
  );
  return n('pool');
}

/** The conv body on `x` [batch, h w c]: nodes and initializers; returns the embedding's name, [batch, D] in (h, w, c) order. */
function convBody(body: ConvBody, nodes: Field[], initializers: Field[]): string {
  const [height, width, channels] = body.inputShape;
  initializers.push(int64Vector('image.shape', [-1, height, width, channels]), floatScalar('norm.epsilon', NORM_EPSILON));
  nodes.push(node('Reshape', ['x', 'image.shape'], ['image']), node('Transpose', ['image'], ['image.nchw'], { perm: [0, 3, 1, 2] }));
  let h = 'image.nchw';
  for (const block of body.blocks) h = convBlock(block, h, nodes, initializers);
  nodes.push(node('Transpose', [h], ['body.nhwc'], { perm: [0, 2, 3, 1] }), node('Flatten', ['body.nhwc'], ['embedding'], { axis: 1 }));
  return 'embedding';
}

/**
 * The ONNX model of the network `spec` with task parameters `params` (see taskParams); `metadata`
 * goes in the model's metadata_props.
 * @throws RangeError naming a missing or mis-shaped parameter.
 */
export function toOnnx(spec: ModelSpec, params: ParamArrays, name = 'fastadapt', metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  const nodes: Field[] = [];
  const initializers: Field[] = [];
  const network = networkLayers(spec, params);
  let h = network.conv ? convBody(network.conv, nodes, initializers) : 'x';
  for (const layer of network.dense) {
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
  return onnxModel({ name, nodes, initializers, inputs: [valueInfo(11, 'x', FLOAT, ['batch', spec.inputDim])], outputs }, ONNX_OPSET, metadata);
}
