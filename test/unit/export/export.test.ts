/**
 * Exported models agree with serving's forward pass: every activation, regression and
 * classification, MLP and conv bodies, run in onnxruntime-node (ONNX) and @tensorflow/tfjs (TF.js
 * LayersModel), on inputs wide enough to use both branches of each activation; conv exports also
 * agree with the engine's tfjs `predict`; and parameters that do not fit are refused.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { exportModel, EXPORT_FORMATS, type TfjsArtefact } from '../../../src/export/index.js';
import { initBackend, tf } from '../../../src/meta/backend.js';
import { ACTIVATIONS, initModelParams, modelSpec, type ParamArrays } from '../../../src/meta/model.js';
import { predict } from '../../../src/meta/adapt.js';
import { predictArrays } from '../../../src/meta/predict-arrays.js';
import { Rng } from '../../../src/meta/rng.js';
import { TASK_KINDS } from '../../../src/meta/types.js';
import { expectSamePrediction, runOnnx, runTfjs } from './runtimes.js';

beforeAll(async () => {
  await initBackend('cpu');
});

/** Larger-than-initial weights, so activations are far from zero and both relu branches are used. */
function scaled(params: ParamArrays, factor: number): ParamArrays {
  return Object.fromEntries(Object.entries(params).map(([n, p]) => [n, { shape: p.shape, data: p.data.map((v) => v * factor) }]));
}

function rows(n: number, inputDim: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => Array.from({ length: inputDim }, () => Math.fround(rng.uniform(-4, 4))));
}

describe('exportModel', () => {
  for (const kind of TASK_KINDS) {
    for (const activation of ACTIVATIONS) {
      it(`${kind}, ${activation}: ONNX and TF.js answer as serving does`, async () => {
        const spec = modelSpec(kind, 3, { hidden: [16, 8], activation }, kind === 'classification' ? 4 : undefined);
        const params = scaled(initModelParams(spec, new Rng(7)), 3);
        const x = rows(25, 3, 11);
        const expected = predictArrays(spec, params, Float32Array.from(x.flat()));
        const onnx = exportModel('onnx', spec, params);
        if (onnx.format !== 'onnx') throw new Error('wrong format');
        expectSamePrediction(await runOnnx(onnx.body, x, kind), expected, 'onnx');
        const tfjs = exportModel('tfjs', spec, params);
        expectSamePrediction(await runTfjs(JSON.stringify(tfjs.body), x, kind), expected, 'tfjs');
      });
    }
  }

  // Conv bodies: odd and even sides (an odd side pools with ceil), one and several input channels.
  const convShapes: Array<{ inputShape: [number, number, number]; channels: number[] }> = [
    { inputShape: [7, 5, 1], channels: [4, 3, 2] },
    { inputShape: [6, 6, 2], channels: [5, 4] },
  ];
  for (const { inputShape, channels } of convShapes) {
    for (const kind of TASK_KINDS) {
      for (const activation of ACTIVATIONS) {
        it(`conv [${inputShape}] channels [${channels}], ${kind}, ${activation}: ONNX and TF.js answer as the engine does`, async () => {
          const inputDim = inputShape[0] * inputShape[1] * inputShape[2];
          const spec = modelSpec(kind, inputDim, { body: 'conv', inputShape, channels, activation }, kind === 'classification' ? 4 : undefined);
          // Scale and offset away from the identity, so their layout in each format is checked.
          const rng = new Rng(13);
          const params = Object.fromEntries(
            Object.entries(initModelParams(spec, new Rng(7))).map(([name, p]) => {
              if (name.endsWith('.scale')) return [name, { shape: p.shape, data: p.data.map(() => rng.uniform(0.5, 2)) }];
              if (name.endsWith('.offset')) return [name, { shape: p.shape, data: p.data.map(() => rng.uniform(-0.5, 0.5)) }];
              return [name, name.startsWith('head.') ? { shape: p.shape, data: p.data.map((v) => v * 3) } : p];
            }),
          );
          const x = rows(9, inputDim, 11);
          const engine = predict(spec, params, Float32Array.from(x.flat()));
          // The plain-JS reference agrees with the engine, so either is what /predict answers.
          expectSamePrediction(predictArrays(spec, params, Float32Array.from(x.flat())), engine, 'plain js', 1e-5);
          const onnx = exportModel('onnx', spec, params);
          if (onnx.format !== 'onnx') throw new Error('wrong format');
          expectSamePrediction(await runOnnx(onnx.body, x, kind), engine, 'onnx', 1e-4);
          const tfjs = exportModel('tfjs', spec, params);
          expectSamePrediction(await runTfjs(JSON.stringify(tfjs.body), x, kind), engine, 'tfjs', 1e-4);
        });
      }
    }
  }

  it('TF.js: the document without weightData is a model.json whose weights.bin is the decoded weightData', async () => {
    const spec = modelSpec('classification', 2, { hidden: [5], activation: 'softplus' }, 3);
    const params = scaled(initModelParams(spec, new Rng(3)), 2);
    const { weightData, ...modelJson } = JSON.parse(JSON.stringify(exportModel('tfjs', spec, params).body)) as TfjsArtefact;
    const weightsBin = new Uint8Array(Buffer.from(weightData, 'base64')).buffer;
    // How tf.loadLayersModel's file:// and http:// handlers read a model.json: its manifest names the files.
    const artifacts = await tf.io.getModelArtifactsForJSON(modelJson as unknown as tf.io.ModelJSON, async (manifest) => {
      expect(manifest[0].paths).toEqual(['weights.bin']);
      return [manifest[0].weights, weightsBin];
    });
    const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
    const x = rows(6, 2, 5);
    const out = tf.tidy(() => (model.predict(tf.tensor2d(x)) as tf.Tensor).arraySync() as number[][]);
    model.dispose();
    const expected = predictArrays(spec, params, Float32Array.from(x.flat()));
    if (expected.kind !== 'classification') throw new Error('wrong kind');
    out.forEach((p, i) => p.forEach((v, j) => expect(v).toBeCloseTo(expected.probabilities[i][j], 5)));
  });

  it('ignores extra meta-parameters (Meta-SGD rates) and refuses a missing or misshapen one', () => {
    const spec = modelSpec('regression', 2, { hidden: [4] });
    const params = initModelParams(spec, new Rng(1));
    for (const format of EXPORT_FORMATS) {
      expect(() => exportModel(format, spec, { ...params, 'lr.head.bias': { shape: [1], data: new Float32Array(1) } })).not.toThrow();
      const { ['head.bias']: _, ...withoutHeadBias } = params;
      expect(() => exportModel(format, spec, withoutHeadBias)).toThrow(/missing parameter 'head.bias'/);
      expect(() => exportModel(format, spec, { ...params, 'body.0.weight': { shape: [4, 2], data: new Float32Array(8) } })).toThrow(/'body.0.weight' has shape \[4,2\]/);
    }
    const conv = modelSpec('regression', 16, { body: 'conv', inputShape: [4, 4, 1], channels: [2] });
    const convParams = initModelParams(conv, new Rng(1));
    const { ['body.0.offset']: _offset, ...withoutOffset } = convParams;
    for (const format of EXPORT_FORMATS) {
      expect(() => exportModel(format, conv, withoutOffset)).toThrow(/missing parameter 'body.0.offset'/);
      expect(() => exportModel(format, conv, { ...convParams, 'body.0.scale': { shape: [3], data: new Float32Array(3) } })).toThrow(/'body.0.scale' has shape \[3\]/);
    }
  });
});
