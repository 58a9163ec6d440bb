/**
 * Exports of a calibrated meta-model (issue 25 item 4): a classifier's file answers the
 * temperature-scaled probabilities (softmax of logits / T, the same labels) in onnxruntime and in
 * tfjs, and carries the calibration in its metadata (ONNX metadata_props, TF.js userDefinedMetadata);
 * regression files answer as before and carry it too.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { CALIBRATION_METADATA_KEY, exportModel, type TfjsArtefact } from '../../../src/export/index.js';
import { initBackend } from '../../../src/meta/backend.js';
import type { Calibration } from '../../../src/meta/calibration.js';
import { temperatureScale } from '../../../src/meta/conformal.js';
import { initModelParams, modelSpec } from '../../../src/meta/model.js';
import { predictArrays } from '../../../src/meta/predict-arrays.js';
import { Rng } from '../../../src/meta/rng.js';
import { expectSamePrediction, runOnnx, runTfjs } from './runtimes.js';

beforeAll(async () => {
  await initBackend('cpu');
});

function calibrationOf(kind: Calibration['kind'], temperature: number): Calibration {
  return {
    kind,
    temperature,
    levels: [0.5, 0.9],
    noveltyThreshold: 1.7,
    tasks: 10,
    queryShots: 5,
    byShots: [{ shots: 5, score: kind === 'regression' ? 'absolute' : 'lac', n: 50, temperature, quantiles: [0.2, 0.6], novelty: { mean: 1, std: 0.5 } }],
  };
}

const rng = new Rng(4);
const x = Array.from({ length: 12 }, () => Array.from({ length: 3 }, () => Math.fround(rng.uniform(-3, 3))));

describe('exportModel with a calibration', () => {
  it('divides a classifier\'s logits by the temperature in ONNX and TF.js, and carries the calibration', async () => {
    const spec = modelSpec('classification', 3, { hidden: [8] }, 4);
    const params = initModelParams(spec, new Rng(2));
    const calibration = calibrationOf('classification', 2.5);
    const served = predictArrays(spec, params, Float32Array.from(x.flat()));
    if (served.kind !== 'classification') throw new Error('wrong kind');
    const expected = { ...served, probabilities: served.probabilities.map((p) => temperatureScale(p, 2.5)) };
    const onnx = exportModel('onnx', spec, params, 'm', { calibration });
    if (onnx.format !== 'onnx') throw new Error('wrong format');
    expectSamePrediction(await runOnnx(onnx.body, x, 'classification'), expected, 'onnx');
    // onnxruntime-node does not expose metadata_props (the file loaded above with them): the key and JSON are in its bytes.
    const text = Buffer.from(onnx.body).toString('latin1');
    expect(text).toContain(CALIBRATION_METADATA_KEY);
    expect(text).toContain(JSON.stringify(calibration));
    const tfjs = exportModel('tfjs', spec, params, 'm', { calibration });
    expectSamePrediction(await runTfjs(JSON.stringify(tfjs.body), x, 'classification'), expected, 'tfjs');
    expect((tfjs.body as TfjsArtefact).userDefinedMetadata).toEqual({ calibration });
    // The uncalibrated export is unchanged.
    expectSamePrediction(await runTfjs(JSON.stringify(exportModel('tfjs', spec, params).body), x, 'classification'), served, 'tfjs plain');
    expect((exportModel('tfjs', spec, params).body as TfjsArtefact).userDefinedMetadata).toBeUndefined();
  });

  it('leaves a regression network as it is, with the calibration in its metadata', async () => {
    const spec = modelSpec('regression', 3, { hidden: [8] });
    const params = initModelParams(spec, new Rng(3));
    const calibration = calibrationOf('regression', 1);
    const expected = predictArrays(spec, params, Float32Array.from(x.flat()));
    const onnx = exportModel('onnx', spec, params, 'm', { calibration });
    if (onnx.format !== 'onnx') throw new Error('wrong format');
    expectSamePrediction(await runOnnx(onnx.body, x, 'regression'), expected, 'onnx');
    expect(Buffer.from(onnx.body).toString('latin1')).toContain(JSON.stringify(calibration));
  });
});
