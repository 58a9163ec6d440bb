/**
 * The plain-JavaScript forward pass agrees with the engine's tfjs `predict` (regression and
 * classification, every activation, every algorithm's adapted parameters, MLP and conv bodies) and
 * refuses parameters that do not fit; serving's prepared conv network answers as the engine does.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { adapt, predict, taskParams, type MetaModel } from '../../../src/meta/adapt.js';
import { ALGORITHM_NAMES, ALGORITHMS } from '../../../src/meta/algorithms/index.js';
import { initBackend } from '../../../src/meta/backend.js';
import { gaussianBlobs, sinusoid } from '../../../src/meta/families/index.js';
import { ACTIVATIONS, initModelParams, modelSpec, type ModelSpec, type ParamArrays } from '../../../src/meta/model.js';
import type { Prediction } from '../../../src/meta/adapt.js';
import { TASK_KINDS } from '../../../src/meta/types.js';
import { ortAvailable } from '../../../src/meta/ort/index.js';
import { convServing, predictArrays, prepareConv, prepareMlp, prepareNetwork, runConv, runMlp, runNetwork } from '../../../src/meta/predict-arrays.js';
import { Rng } from '../../../src/meta/rng.js';

beforeAll(async () => {
  await initBackend('cpu');
});

function inputs(spec: ModelSpec, n: number, seed: number, scale = 5): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n * spec.inputDim }, () => rng.uniform(-scale, scale));
}

/** Larger-than-initial weights, so activations are far from zero and both relu branches are used. */
function scaled(params: ParamArrays, factor: number): ParamArrays {
  return Object.fromEntries(Object.entries(params).map(([n, p]) => [n, { shape: p.shape, data: p.data.map((v) => v * factor) }]));
}

describe('predictArrays', () => {
  it.each(ACTIVATIONS)('matches predict on regression (%s, 1-40-40-1)', (activation) => {
    const spec = modelSpec('regression', 1, { hidden: [40, 40], activation });
    const params = scaled(initModelParams(spec, new Rng(7)), 3);
    const x = inputs(spec, 64, 1);
    const expected = predict(spec, params, x);
    const got = predictArrays(spec, params, x);
    if (expected.kind !== 'regression' || got.kind !== 'regression') throw new Error('wrong kind');
    expect(got.values).toHaveLength(64);
    // The outputs vary across inputs (the comparison is not between constants).
    expect(Math.max(...got.values) - Math.min(...got.values)).toBeGreaterThan(0.1);
    got.values.forEach((v, i) => expect(Math.abs(v - expected.values[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(expected.values[i]))));
  });

  it.each(ACTIVATIONS)('matches predict on 5-way classification in 3-D (%s)', (activation) => {
    const spec = modelSpec('classification', 3, { hidden: [16, 8], activation }, 5);
    const params = scaled(initModelParams(spec, new Rng(11)), 4);
    const x = inputs(spec, 50, 2);
    const expected = predict(spec, params, x);
    const got = predictArrays(spec, params, Array.from(x));
    if (expected.kind !== 'classification' || got.kind !== 'classification') throw new Error('wrong kind');
    expect(got.labels).toEqual(expected.labels);
    expect(new Set(got.labels).size).toBeGreaterThan(1);
    got.probabilities.forEach((p, i) => {
      expect(p).toHaveLength(5);
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 10);
      p.forEach((v, j) => expect(Math.abs(v - expected.probabilities[i][j])).toBeLessThan(1e-5));
    });
  });

  // What the API serves: taskParams(meta-model, adapted head) through prepareMlp/runMlp. Every
  // algorithm, every task kind it supports and every activation, so a new one is covered here.
  const cases = ALGORITHM_NAMES.flatMap((algorithm) =>
    ALGORITHMS[algorithm].kinds.flatMap((kind) => ACTIVATIONS.map((activation) => ({ algorithm, kind, activation }))),
  );
  it.each(cases)('matches predict on adapted task parameters: $algorithm, $kind, $activation', ({ algorithm, kind, activation }) => {
    const family = kind === 'regression' ? sinusoid() : gaussianBlobs({}, { inputDim: 3, ways: 5 });
    const spec = modelSpec(kind, family.inputDim, { hidden: [40, 40], activation }, family.ways);
    const task = family.sampleEpisode(new Rng(3), 'test', { shots: kind === 'regression' ? 10 : 2, queryShots: kind === 'regression' ? 30 : 6 });
    const inner = { steps: 5, lr: 0.05 };
    const model: MetaModel = { algorithm, spec, inner, params: ALGORITHMS[algorithm].initMetaParams(spec, new Rng(1), inner) };
    // The raw last step: this test needs adapted parameters that differ from the meta-model's, and at
    // lr 0.05 the guard keeps step 0 for some untrained models (ANIL, softplus), whose loss rises.
    const adapted = adapt(model, task.support, { guard: 'none' }).params;
    const params = taskParams(model, adapted);
    // Adaptation changed what it returned (or, for ProtoNets, built a head the meta-model lacks).
    expect(Object.keys(adapted).some((name) => !model.params[name] || adapted[name].data.some((v, i) => v !== model.params[name].data[i]))).toBe(true);
    const expected = predict(spec, params, task.query.x);
    const got = runMlp(prepareMlp(spec, params), task.query.x);
    if (expected.kind === 'regression' && got.kind === 'regression') {
      expect(got.values).toHaveLength(task.query.n);
      got.values.forEach((v, i) => expect(Math.abs(v - expected.values[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(expected.values[i]))));
    } else if (expected.kind === 'classification' && got.kind === 'classification') {
      expect(got.labels).toEqual(expected.labels);
      got.probabilities.forEach((p, i) => p.forEach((v, j) => expect(Math.abs(v - expected.probabilities[i][j])).toBeLessThan(1e-5)));
      expect(got.probabilities).toHaveLength(task.query.n);
    } else {
      throw new Error(`kinds differ: engine ${expected.kind}, plain JS ${got.kind}`);
    }
  });

  it('is stable for huge logits and softplus inputs', () => {
    const spec = modelSpec('classification', 2, { hidden: [4], activation: 'softplus' }, 3);
    const params = scaled(initModelParams(spec, new Rng(5)), 1e3);
    const got = predictArrays(spec, params, [1e3, -1e3, 50, 50]);
    if (got.kind !== 'classification') throw new Error('wrong kind');
    for (const p of got.probabilities) {
      expect(p.every(Number.isFinite)).toBe(true);
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 10);
    }
  });

  it('answers an empty batch with no predictions', () => {
    const spec = modelSpec('regression', 2, { hidden: [3] });
    expect(predictArrays(spec, initModelParams(spec, new Rng(1)), [])).toEqual({ kind: 'regression', values: [] });
  });

  it('refuses parameters that do not fit the spec, and inputs that are not whole rows', () => {
    const spec = modelSpec('regression', 2, { hidden: [3] });
    const params = initModelParams(spec, new Rng(1));
    const { ['head.bias']: _bias, ...noBias } = params;
    expect(() => prepareMlp(spec, noBias)).toThrow(/missing parameter 'head.bias'/);
    expect(() => prepareMlp(modelSpec('regression', 2, { hidden: [4] }), params)).toThrow(/'body.0.weight' has shape \[2,3\], expected \[2,4\]/);
    expect(() => predictArrays(spec, params, [1, 2, 3])).toThrow(/not a multiple of inputDim 2/);
    // Meta-SGD's learned rates ride along in meta-parameters and are ignored.
    const withRates = { ...params, 'lr.head.bias': { shape: [1], data: new Float32Array([0.1]) } };
    expect(predictArrays(spec, withRates, [1, 2])).toEqual(predictArrays(spec, params, [1, 2]));
  });
});

/** Expects `got` to be `expected` to float32 rounding (relative 1e-5 for values), labels exactly. */
function expectClose(got: Prediction, expected: Prediction, n: number): void {
  if (expected.kind === 'regression' && got.kind === 'regression') {
    expect(got.values).toHaveLength(n);
    got.values.forEach((v, i) => expect(Math.abs(v - expected.values[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(expected.values[i]))));
  } else if (expected.kind === 'classification' && got.kind === 'classification') {
    expect(got.probabilities).toHaveLength(n);
    expect(got.labels).toEqual(expected.labels);
    got.probabilities.forEach((p, i) => p.forEach((v, j) => expect(Math.abs(v - expected.probabilities[i][j])).toBeLessThan(1e-5)));
  } else {
    throw new Error(`kinds differ: expected ${expected.kind}, got ${got.kind}`);
  }
}

describe('predictArrays on conv bodies', () => {
  /** Conv parameters with the normalisation away from the identity, so scale and offset are exercised. */
  function convParams(spec: ModelSpec, seed: number): ParamArrays {
    const params = initModelParams(spec, new Rng(seed));
    const rng = new Rng(seed + 100);
    for (const [name, p] of Object.entries(params)) {
      if (name.endsWith('.scale')) p.data = p.data.map(() => rng.uniform(0.5, 2));
      if (name.endsWith('.offset')) p.data = p.data.map(() => rng.uniform(-0.5, 0.5));
      if (name.startsWith('head.')) p.data = p.data.map((v) => v * 3);
    }
    return params;
  }

  // Odd and even sides (an odd side pools with ceil), one and several input channels, one to four blocks.
  const shapes: Array<{ inputShape: [number, number, number]; channels: number[] }> = [
    { inputShape: [5, 5, 1], channels: [3] },
    { inputShape: [6, 4, 2], channels: [4, 3] },
    { inputShape: [7, 6, 3], channels: [8, 4, 2] },
    { inputShape: [14, 14, 1], channels: [16, 16, 16, 16] },
  ];
  const cases = shapes.flatMap((shape) => TASK_KINDS.flatMap((kind) => ACTIVATIONS.map((activation) => ({ ...shape, kind, activation }))));
  it.each(cases)('matches predict: $inputShape, channels $channels, $kind, $activation', ({ inputShape, channels, kind, activation }) => {
    const inputDim = inputShape[0] * inputShape[1] * inputShape[2];
    const spec = modelSpec(kind, inputDim, { body: 'conv', inputShape, channels, activation }, kind === 'classification' ? 4 : undefined);
    const params = convParams(spec, 3);
    const x = inputs(spec, 12, 5, 1);
    const expected = predict(spec, params, x);
    const got = predictArrays(spec, params, x);
    expectClose(got, expected, 12);
    // The comparison is not between constants: the answers vary across inputs.
    const spread = got.kind === 'regression' ? got.values : got.probabilities.map((p) => p[0]);
    expect(Math.max(...spread) - Math.min(...spread)).toBeGreaterThan(1e-3);
    // Serving's paths answer the same: through the engine, and prepared for runConv.
    for (const serving of ['engine', 'plain-js'] as const) {
      const network = prepareNetwork(spec, params, serving);
      expect(network.body).toBe(serving === 'engine' ? 'engine' : 'conv');
      expectClose(runNetwork(network, Array.from(x)), expected, 12);
    }
  });

  it('serves conv bodies through the engine on compiled backends or ONNX Runtime, else in plain JS on the cpu backend; runConv reuses shared buffers', () => {
    expect(convServing('wasm')).toBe('engine');
    expect(convServing('tensorflow')).toBe('engine');
    // The engine runs conv bodies on ONNX Runtime wherever onnxruntime-node loads (it does here).
    expect(ortAvailable()).toBe(true);
    expect(convServing('cpu')).toBe('engine');
    expect(convServing(null)).toBe('plain-js');
    const spec = modelSpec('classification', 36, { body: 'conv', inputShape: [6, 6, 1], channels: [4, 4] }, 3);
    const params = convParams(spec, 9);
    // This file runs on the cpu backend.
    expect(prepareNetwork(spec, params).body).toBe('engine');
    const net = prepareConv(spec, params);
    const [a, b] = [inputs(spec, 3, 1, 1), inputs(spec, 5, 2, 1)];
    const first = runConv(net, a);
    runConv(net, b);
    // A larger network in between grows the buffers every conv network shares.
    const larger = modelSpec('regression', 300, { body: 'conv', inputShape: [10, 10, 3], channels: [8, 8] });
    runConv(prepareConv(larger, convParams(larger, 4)), inputs(larger, 2, 3, 1));
    expect(runConv(net, a)).toEqual(first);
    expect(runConv(net, [])).toEqual({ kind: 'classification', labels: [], probabilities: [] });
  });

  it('refuses conv parameters that do not fit, and the wrong body for prepareMlp / prepareConv', () => {
    const spec = modelSpec('regression', 16, { body: 'conv', inputShape: [4, 4, 1], channels: [2] });
    const params = initModelParams(spec, new Rng(1));
    const { ['body.0.scale']: _scale, ...noScale } = params;
    expect(() => prepareConv(spec, noScale)).toThrow(/missing parameter 'body.0.scale'/);
    expect(() => prepareNetwork(spec, noScale)).toThrow(/missing parameter 'body.0.scale'/);
    expect(() => prepareConv(spec, { ...params, 'body.0.weight': { shape: [3, 3, 2, 2], data: new Float32Array(36) } })).toThrow(/'body.0.weight' has shape \[3,3,2,2\]/);
    expect(() => prepareMlp(spec, params)).toThrow(/needs an MLP body/);
    expect(() => prepareConv(modelSpec('regression', 2, { hidden: [3] }), params)).toThrow(/needs a conv body/);
    expect(() => runNetwork(prepareNetwork(spec, params), new Float32Array(17))).toThrow(/not a multiple of inputDim 16/);
  });
});

// Last in this file: it switches the process to the wasm backend, where serving's conv path is the
// engine (what bench/predict-conv.ts timed).
describe('conv serving on the wasm backend', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it.each(ACTIVATIONS)('serves through the engine and answers as plain JS does (%s, 9x7x2 images)', (activation) => {
    const spec = modelSpec('classification', 126, { body: 'conv', inputShape: [9, 7, 2], channels: [6, 5, 4], activation }, 5);
    const params = initModelParams(spec, new Rng(21));
    const x = inputs(spec, 16, 8, 1);
    const network = prepareNetwork(spec, params);
    expect(network.body).toBe('engine');
    expectClose(runNetwork(network, x), predictArrays(spec, params, x), 16);
  });
});
