/**
 * Calibration fitted on validation tasks (issue 25 items 1 and 3, engine): the body's embedding as
 * serving computes it agrees with the engine's; intervals of a briefly meta-trained sinusoid MAML and
 * sets of a ProtoNet on Gaussian blobs cover held-out (test split) query points at the nominal level;
 * the temperature lowers the ECE of an over-confident model; outside inputs score higher novelty.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import type { MetaModel } from '../../../src/meta/adapt.js';
import { initBackend, tf } from '../../../src/meta/backend.js';
import { calibrationForShots, COVERAGE_LEVELS, fitCalibration, quantileFor, type Calibration } from '../../../src/meta/calibration.js';
import { evaluateMetaModel } from '../../../src/meta/evaluation.js';
import { gaussianBlobs, sinusoid } from '../../../src/meta/families/index.js';
import { initMetaParams } from '../../../src/meta/learner.js';
import { embed, initModelParams, modelSpec, toTensors, type ModelSpec } from '../../../src/meta/model.js';
import { embedNetwork, prepareNetwork, runNetwork, runNetworkWithEmbedding } from '../../../src/meta/predict-arrays.js';
import { Rng } from '../../../src/meta/rng.js';
import { trainSine } from '../../integration/support/adapt-fixtures.js';

beforeAll(async () => {
  await initBackend('cpu');
});

describe('embedNetwork', () => {
  const specs: ModelSpec[] = [
    modelSpec('regression', 3, { hidden: [8, 5], activation: 'softplus' }),
    modelSpec('classification', 3, { hidden: [6], activation: 'relu' }, 4),
    modelSpec('classification', 36, { body: 'conv', inputShape: [6, 6, 1], channels: [4, 3], activation: 'relu' }, 3),
  ];
  it.each(specs.map((spec) => ({ spec, name: `${spec.body} ${spec.kind}` })))('matches the engine\'s embed: $name', ({ spec }) => {
    const params = initModelParams(spec, new Rng(5));
    const rng = new Rng(6);
    const x = Float32Array.from({ length: 4 * spec.inputDim }, () => rng.uniform(-1, 1));
    const expected = tf.tidy(() => embed(spec, toTensors(params), tf.tensor2d(x, [4, spec.inputDim])).dataSync());
    for (const serving of ['plain-js', 'engine'] as const) {
      const { dim, values } = embedNetwork(prepareNetwork(spec, params, serving), x);
      expect(dim * 4).toBe(expected.length);
      values.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 4));
      // One pass for both (predict with novelty): the same prediction to the bit, the same embedding.
      const network = prepareNetwork(spec, params, serving);
      const both = runNetworkWithEmbedding(network, x);
      expect(both.prediction).toEqual(runNetwork(network, x));
      expect(both.embedding).toEqual(embedNetwork(network, x));
    }
  });
});

/** MAML 1-40-40-1 on sinusoids (one inner step of 0.01), meta-trained briefly by the shared fixture. */
function trainSineMaml(iterations: number): MetaModel {
  return { algorithm: 'maml', spec: modelSpec('regression', 1, { hidden: [40, 40] }), params: trainSine('maml', iterations, { metaLr: 0.003, metaBatchSize: 8 }), inner: { steps: 1, lr: 0.01 } };
}

describe('fitCalibration', () => {
  it('gives sinusoid intervals that cover ~90% of held-out query points, narrower for more shots, and flags inputs outside the range', () => {
    const model = trainSineMaml(150);
    const family = sinusoid();
    const calibration = fitCalibration(model, family, { shots: [5, 10], tasks: 150, queryShots: 10, seed: 3 });
    expect(calibration.byShots.map((c) => c.shots)).toEqual([5, 10]);
    expect(calibration.levels).toEqual(COVERAGE_LEVELS);
    for (const c of calibration.byShots) {
      expect(c.n).toBe(1500);
      expect(c.quantiles.every((q) => q !== null && q >= 0)).toBe(true);
      // Quantiles grow with the level.
      expect(c.quantiles.every((q, i) => i === 0 || q! >= c.quantiles[i - 1]!)).toBe(true);
    }
    const calibrated: MetaModel = { ...model, calibration };
    const rows = evaluateMetaModel(calibrated, family, { shots: [5, 10], steps: [0, 1], tasks: 200, queryShots: 10, seed: 11, baselines: [] });
    const own = rows.filter((r) => r.steps === 1);
    expect(own).toHaveLength(2);
    for (const row of own) {
      // 2000 test points, nominal 0.9: binomial standard error ~0.007 (task correlation widens it).
      expect(row.coverage).toBeGreaterThan(0.86);
      expect(row.coverage).toBeLessThan(0.94);
      expect(row.width).toBeGreaterThan(0);
      expect(row.noveltyAuroc).toBeGreaterThan(0.6);
    }
    expect(own[1].width).toBeLessThan(own[0].width!);
    // Rows at other step counts carry no calibration measures (it holds for the model's own inner loop).
    expect(rows.find((r) => r.steps === 0)?.coverage).toBeUndefined();
  });

  it('tempers an over-confident ProtoNet on Gaussian blobs: ECE falls, and its sets cover ~90%', () => {
    const blobs = gaussianBlobs({}, { inputDim: 2, ways: 3 });
    const spec = modelSpec('classification', 2, { hidden: [16] }, 3);
    const inner = { steps: 0, lr: 0.01 };
    const params = initMetaParams({ algorithm: 'protonet', spec, inner, metaLr: 0.001 }, new Rng(1));
    // A sharper embedding makes prototype distances, so probabilities, over-confident.
    for (const p of Object.values(params)) p.data = p.data.map((v) => v * 2);
    const model: MetaModel = { algorithm: 'protonet', spec, inner, params };
    const calibration = fitCalibration(model, blobs, { shots: [1, 5], tasks: 200, queryShots: 5, seed: 4 });
    expect(calibration.kind).toBe('classification');
    expect(calibration.byShots.every((c) => c.score === 'lac' && c.temperature > 1 && c.temperature < 20)).toBe(true);
    const rows = evaluateMetaModel({ ...model, calibration }, blobs, { shots: [1, 5], steps: [0], tasks: 200, queryShots: 5, seed: 12, baselines: [] });
    for (const row of rows) {
      expect(row.coverage).toBeGreaterThan(0.86);
      expect(row.coverage).toBeLessThan(0.95);
      expect(row.setSize).toBeGreaterThanOrEqual(1);
      expect(row.setSize).toBeLessThanOrEqual(3);
      expect(row.ece!.after).toBeLessThan(row.ece!.before);
      expect(row.ece!.after).toBeLessThan(0.03);
      expect(row.noveltyAuroc).toBeUndefined();
    }
  });
});

describe('applying a calibration', () => {
  const calibration: Calibration = {
    kind: 'regression',
    temperature: 1,
    levels: [0.5, 0.9, 0.95],
    noveltyThreshold: 2,
    tasks: 10,
    queryShots: 10,
    byShots: [
      { shots: 2, score: 'absolute', n: 100, temperature: 1, quantiles: [1, 2, null], novelty: { mean: 0, std: 1 } },
      { shots: 5, score: 'absolute', n: 100, temperature: 1, quantiles: [0.5, 1, 1.5], novelty: { mean: 0, std: 1 } },
    ],
  };
  it('takes the most shots calibrated that do not exceed the head\'s, else the fewest', () => {
    expect(calibrationForShots(calibration, 1).shots).toBe(2);
    expect(calibrationForShots(calibration, 4).shots).toBe(2);
    expect(calibrationForShots(calibration, 5).shots).toBe(5);
    expect(calibrationForShots(calibration, 50).shots).toBe(5);
  });
  it('rounds a coverage up to a stored level; an unbounded level is Infinity; above every level is refused', () => {
    const five = calibration.byShots[1];
    expect(quantileFor(calibration, five, 0.9)).toBe(1);
    expect(quantileFor(calibration, five, 0.6)).toBe(1);
    expect(quantileFor(calibration, calibration.byShots[0], 0.93)).toBe(Infinity);
    expect(() => quantileFor(calibration, five, 0.97)).toThrow(RangeError);
  });
});
