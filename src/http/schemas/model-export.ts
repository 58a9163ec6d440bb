/** Model export: the `format` query, the two files a client can download (ONNX, TF.js) and a meta-model's refusal. */
import { Type } from 'typebox';
import { CalibrationSchema } from '../../db/calibration-json.js';
import { EXPORT_FORMATS, EXPORT_REFUSAL_REASONS, ONNX_OPSET } from '../../export/index.js';
import { Id, Literals } from './common.js';
import { EXAMPLE_IDS } from './examples.js';
import { Algorithm } from './meta-train.js';
import { PROBLEM_CONTENT_TYPE, Problem } from './problem.js';

export const ModelExportQuery = Type.Object(
  {
    format: Literals(EXPORT_FORMATS, {
      description: `\`onnx\`: an ONNX model (opset ${ONNX_OPSET}), input \`x\` float32 [batch, inputDim] (a conv body's images flattened (h, w, c), as /predict takes them); outputs \`value\` [batch] for regression, \`probabilities\` [batch, ways] and \`label\` int64 [batch] for classification. ` +
        '`tfjs`: a TensorFlow.js LayersModel artefact (JSON; weights base64 in `weightData`) for `tf.loadLayersModel(tf.io.fromMemory(...))`. ' +
        "A calibrated meta-model's file answers temperature-scaled probabilities and carries the calibration (ONNX metadata `fastadapt.calibration`, TF.js `userDefinedMetadata.calibration`).",
    }),
  },
  { additionalProperties: false },
);

const WeightSpec = Type.Object({ name: Type.String(), shape: Type.Array(Type.Integer({ minimum: 1 })), dtype: Type.Literal('float32') }, { additionalProperties: false });

/** The TF.js artefact (src/export/tfjs.ts): a model.json plus its weights, base64, in one document. */
export const TfjsArtefact = Type.Object(
  {
    format: Type.Literal('layers-model'),
    generatedBy: Type.String(),
    convertedBy: Type.Null(),
    modelTopology: Type.Object({}, { additionalProperties: true, description: 'Keras Sequential as tfjs-layers serialises it: Dense layers for an MLP body; Reshape, then Conv2D, LayerNormalization, Activation and MaxPooling2D per block, then Flatten and the Dense head for a conv body' }),
    weightsManifest: Type.Array(Type.Object({ paths: Type.Array(Type.String()), weights: Type.Array(WeightSpec) }, { additionalProperties: false }), {
      description: 'Without `weightData`, this document is a model.json whose weights.bin is the decoded `weightData`',
    }),
    weightSpecs: Type.Array(WeightSpec),
    weightData: Type.String({ description: 'Little-endian float32 weights in `weightSpecs` order, base64' }),
    userDefinedMetadata: Type.Optional(Type.Object({
      labels: Type.Optional(Type.String({ description: "The task's class names as a JSON array, in index order, when it has names" })),
      calibration: Type.Optional(CalibrationSchema),
    }, { description: "What else the file says: the task's class names, and its meta-model's calibration when it has one (a classifier's probabilities are then already divided by its temperature)" })),
  },
  {
    additionalProperties: false,
    examples: [{
      format: 'layers-model',
      generatedBy: 'fastadapt (tfjs-layers 4.22.0 format)',
      convertedBy: null,
      modelTopology: {
        class_name: 'Sequential',
        config: { name: 'task-0197a4f0-6c2e-7b3a-9d51-2f8e4c1a9b70-v1', layers: [
          { class_name: 'Dense', config: { name: 'body_0', units: 2, activation: 'relu', use_bias: true, trainable: true, dtype: 'float32', batch_input_shape: [null, 1] } },
          { class_name: 'Dense', config: { name: 'head', units: 1, activation: 'linear', use_bias: true, trainable: true, dtype: 'float32' } },
        ] },
        keras_version: 'tfjs-layers 4.22.0',
        backend: 'tensor_flow.js',
      },
      weightsManifest: [{ paths: ['weights.bin'], weights: [
        { name: 'body_0/kernel', shape: [1, 2], dtype: 'float32' }, { name: 'body_0/bias', shape: [2], dtype: 'float32' },
        { name: 'head/kernel', shape: [2, 1], dtype: 'float32' }, { name: 'head/bias', shape: [1], dtype: 'float32' },
      ] }],
      weightSpecs: [
        { name: 'body_0/kernel', shape: [1, 2], dtype: 'float32' }, { name: 'body_0/bias', shape: [2], dtype: 'float32' },
        { name: 'head/kernel', shape: [2, 1], dtype: 'float32' }, { name: 'head/bias', shape: [1], dtype: 'float32' },
      ],
      weightData: 'AACAPwAAAMAAAAAAAACAPwAAAEAAAIA/AAAAAA==',
    }],
  },
);

/** The 200 answer of both export routes: the file in the format asked for, as an attachment. */
export function modelFileResponse(description: string) {
  return {
    description,
    headers: {
      'content-disposition': Type.String({ description: 'attachment; the file name says what it is (e.g. task-<id>-v3.onnx)', examples: ['attachment; filename="task-0197a4f0-6c2e-7b3a-9d51-2f8e4c1a9b70-v1.onnx"'] }),
    },
    content: {
      'application/octet-stream': { schema: Type.String({ format: 'binary', contentMediaType: 'application/octet-stream', description: 'format=onnx: the ONNX model (protobuf)', examples: ['(binary ONNX ModelProto)'] }) },
      'application/json': { schema: TfjsArtefact },
    },
  };
}

/** The 409 of GET /meta-models/:id/model: a problem that says why the meta-model has no file (metaModelExportRefusal). */
export const metaModelExportRefused = {
  description: "The meta-model has no head worth a file (`reason`): export a task adapted from it instead",
  content: {
    [PROBLEM_CONTENT_TYPE]: {
      schema: Type.Object(
        {
          ...Problem.properties,
          metaModelId: Id,
          algorithm: Algorithm,
          reason: Literals(EXPORT_REFUSAL_REASONS, {
            description: "`no-head`: ProtoNets and multitask learn no head (each task's is built from its support set). `zero-head`: meta-trained with `hyper.zeroHead`, its stored head is all zeros, so the file would answer uniform probabilities and label 0 (regression: 0) for every input",
          }),
        },
        {
          additionalProperties: true,
          examples: [{
            type: 'about:blank',
            title: 'Meta-model head is zero',
            status: 409,
            detail: "Meta-model blobs@latest (anil, hyper.zeroHead) stores a head of zeros: every task's head starts there and is learned by adaptation, so the file would answer uniform probabilities and label 0 for every input. Adapt a task from it and GET /tasks/{id}/model",
            instance: '/meta-models/blobs@latest/model',
            metaModelId: EXAMPLE_IDS.metaModel,
            algorithm: 'anil',
            reason: 'zero-head',
          }],
        },
      ),
    },
  },
};
