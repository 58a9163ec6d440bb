/**
 * Adaptation and prediction: the inner loop lowers the support loss, what each algorithm adapts,
 * ProtoNets' prototype head, prediction shapes, input errors, and no tensor leaks on any path.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { adapt, adaptMany, predict, taskParams, type MetaModel } from '../../../src/meta/adapt.js';
import { ALGORITHM_NAMES, ALGORITHMS, type AlgorithmName } from '../../../src/meta/algorithms/index.js';
import { initBackend, tf } from '../../../src/meta/backend.js';
import { gaussianBlobs, sinusoid } from '../../../src/meta/families/index.js';
import { NonFiniteError } from '../../../src/meta/learner.js';
import { modelSpec, type ModelSpec } from '../../../src/meta/model.js';
import { Rng } from '../../../src/meta/rng.js';
import type { Examples } from '../../../src/meta/types.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const regression = modelSpec('regression', 1, { hidden: [32, 32] });
const classification = modelSpec('classification', 2, { hidden: [16, 8] }, 3);

function metaModel(algorithm: AlgorithmName, spec: ModelSpec, lr: number): MetaModel {
  const inner = { steps: 5, lr };
  return { algorithm, spec, inner, params: ALGORITHMS[algorithm].initMetaParams(spec, new Rng(1), inner) };
}

const sineTask = sinusoid().sampleEpisode(new Rng(2), 'test', { shots: 10, queryShots: 20 });
const blobTask = gaussianBlobs({}, { inputDim: 2, ways: 3 }).sampleEpisode(new Rng(3), 'test', { shots: 3, queryShots: 5, ways: 3 });

describe('adapt', () => {
  it.each(ALGORITHM_NAMES.filter((name) => ALGORITHMS[name].kinds.includes('regression')))('%s lowers the support loss on a regression task', (algorithm) => {
    const model = metaModel(algorithm, regression, 0.01);
    const memory = tf.memory().numTensors;
    const r = adapt(model, sineTask.support);
    expect(tf.memory().numTensors).toBe(memory);
    if (ALGORITHMS[algorithm].metaTrainsHead) {
      expect(r.supportLossAfter).toBeLessThan(r.supportLossBefore);
    } else {
      // No head of its own to score before (multitask fits one in closed form): beat the best constant.
      const y = Array.from(sineTask.support.y);
      const mean = y.reduce((a, b) => a + b, 0) / y.length;
      expect(r.supportLossAfter).toBeLessThan(y.reduce((a, v) => a + (v - mean) ** 2, 0) / y.length);
      expect(r.supportLossAfter).toBe(r.supportLossBefore);
    }
    expect(r.steps).toBe(ALGORITHMS[algorithm].runsInnerSteps ? 5 : 0);
    const adaptedNames = Object.keys(r.params);
    if (ALGORITHMS[algorithm].adaptsBody) expect(adaptedNames).toEqual(['body.0.weight', 'body.0.bias', 'body.1.weight', 'body.1.bias', 'head.weight', 'head.bias']);
    else expect(adaptedNames).toEqual(['head.weight', 'head.bias']);
    expect(r.params['head.weight'].shape).toEqual([32, 1]);
    expect(r.params['head.bias'].shape).toEqual([1]);
  });

  it('more steps fit the support set better; zero steps change nothing', () => {
    const model = metaModel('maml', regression, 0.01);
    const one = adapt(model, sineTask.support, { steps: 1 });
    const ten = adapt(model, sineTask.support, { steps: 10 });
    expect(ten.supportLossAfter).toBeLessThan(one.supportLossAfter);
    const none = adapt(model, sineTask.support, { steps: 0 });
    expect(none.supportLossAfter).toBeCloseTo(none.supportLossBefore, 6);
    expect(Array.from(none.params['head.weight'].data)).toEqual(Array.from(model.params['head.weight'].data));
  });

  it('equals plain gradient descent on the support loss computed by hand (one step, head only)', () => {
    const model = metaModel('anil', regression, 0.05);
    const r = adapt(model, sineTask.support, { steps: 1 });
    // Manual: features h from the body, prediction h.w + b, MSE gradient wrt w and b.
    const expected = tf.tidy(() => {
      const x = tf.tensor2d(sineTask.support.x, [10, 1]);
      const y = tf.tensor2d(sineTask.support.y, [10, 1]);
      const p = (n: string) => tf.tensor(model.params[n].data, model.params[n].shape);
      const h = tf.relu(tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, p('body.0.weight')), p('body.0.bias'))), p('body.1.weight')), p('body.1.bias')));
      const err = tf.sub(tf.add(tf.matMul(h, p('head.weight')), p('head.bias')), y); // [10, 1]
      const gw = tf.mul(tf.matMul(h, err, true, false), 2 / 10);
      const gb = tf.mul(tf.sum(err, 0), 2 / 10);
      return [tf.sub(p('head.weight'), tf.mul(gw, 0.05)).dataSync(), tf.sub(p('head.bias'), tf.mul(gb, 0.05)).dataSync()];
    });
    Array.from(expected[0]).forEach((w, i) => expect(r.params['head.weight'].data[i]).toBeCloseTo(w, 5));
    expect(r.params['head.bias'].data[0]).toBeCloseTo(expected[1][0], 5);
  });

  it('metasgd uses its learned per-parameter rates, not the lr option', () => {
    const model = metaModel('metasgd', regression, 0.01);
    const a = adapt(model, sineTask.support, { steps: 1, lr: 0.01 });
    const b = adapt(model, sineTask.support, { steps: 1, lr: 0.5 });
    expect(Array.from(a.params['head.weight'].data)).toEqual(Array.from(b.params['head.weight'].data));
    const scaled = structuredClone(model);
    for (const [n, p] of Object.entries(scaled.params)) if (n.startsWith('lr.')) p.data.fill(0.02);
    expect(Array.from(adapt(scaled, sineTask.support, { steps: 1 }).params['head.weight'].data)).not.toEqual(Array.from(a.params['head.weight'].data));
  });

  it('protonet builds the prototype head: w_c = 2 mu_c, b_c = -|mu_c|^2, classifying support points to their own class', () => {
    const model = metaModel('protonet', classification, 0.1);
    const r = adapt(model, blobTask.support);
    expect(r.steps).toBe(0);
    expect(Object.keys(r.params)).toEqual(['head.weight', 'head.bias']);
    const embeddings = tf.tidy(() => {
      const p = (n: string) => tf.tensor(model.params[n].data, model.params[n].shape);
      const x = tf.tensor2d(blobTask.support.x, [9, 2]);
      return tf.relu(tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, p('body.0.weight')), p('body.0.bias'))), p('body.1.weight')), p('body.1.bias'))).arraySync() as number[][];
    });
    for (let c = 0; c < 3; c++) {
      const members = embeddings.filter((_, i) => blobTask.support.y[i] === c);
      const mu = members[0].map((_, d) => members.reduce((s, e) => s + e[d], 0) / members.length);
      mu.forEach((m, d) => expect(r.params['head.weight'].data[d * 3 + c]).toBeCloseTo(2 * m, 5));
      expect(r.params['head.bias'].data[c]).toBeCloseTo(-mu.reduce((s, m) => s + m * m, 0), 5);
    }
    expect(r.supportLossAfter).toBe(r.supportLossBefore);
  });

  it('rejects support sets that do not fit, and a diverging adaptation', () => {
    const model = metaModel('maml', regression, 0.01);
    const bad = (s: Partial<Examples>) => adapt(model, { ...sineTask.support, ...s });
    expect(() => bad({ n: 0 })).toThrow(/at least one example/);
    expect(() => bad({ x: sineTask.support.x.slice(0, 5) })).toThrow(/expected 10/);
    expect(() => bad({ y: Float32Array.from(sineTask.support.y, (v, i) => (i === 0 ? NaN : v)) })).toThrow(/finite/);
    expect(() => adapt(model, sineTask.support, { steps: -1 })).toThrow(/steps/);
    const cls = metaModel('anil', classification, 0.1);
    expect(() => adapt(cls, { ...blobTask.support, y: Float32Array.from(blobTask.support.y, () => 7) })).toThrow(/class label 7/);
    const memory = tf.memory().numTensors;
    // Guard 'none' returns the raw last iterate: diverged to NaN, it is an error, never NaN parameters.
    expect(() => adapt(model, sineTask.support, { steps: 20, lr: 1e20, guard: 'none' })).toThrow(NonFiniteError);
    // The default guard returns the best iterate (here the start) and says the raw loss diverged.
    const guarded = adapt(model, sineTask.support, { steps: 20, lr: 1e20 });
    expect(guarded.supportLoss).toMatchObject({ bestStep: 0, diverged: true });
    expect(guarded.supportLossAfter).toBe(guarded.supportLossBefore);
    expect(() => adapt(model, sineTask.support, { guard: 'worst' as 'none' })).toThrow(/guard must be one of/);
    expect(tf.memory().numTensors).toBe(memory);
  });
});

describe('adaptMany', () => {
  const sines = [2, 3, 4].map((seed) => sinusoid().sampleEpisode(new Rng(seed), 'test', { shots: 10, queryShots: 5 }).support);
  const blobs = [3, 4].map((seed) => gaussianBlobs({}, { inputDim: 2, ways: 3 }).sampleEpisode(new Rng(seed), 'test', { shots: 3, queryShots: 5, ways: 3 }).support);

  it.each(Object.keys(ALGORITHMS) as AlgorithmName[])('%s: adapting tasks together gives each task what adapting it alone gives', (algorithm) => {
    const [model, supports] = algorithm === 'protonet' ? [metaModel(algorithm, classification, 0.1), blobs] : [metaModel(algorithm, regression, 0.01), sines];
    const memory = tf.memory().numTensors;
    const together = adaptMany(model, supports, { steps: 3 });
    expect(tf.memory().numTensors).toBe(memory);
    expect(together).toHaveLength(supports.length);
    supports.forEach((support, t) => {
      const alone = adapt(model, support, { steps: 3 });
      const batched = together[t];
      if (batched instanceof Error) throw batched;
      expect(batched.steps).toBe(alone.steps);
      expect(batched.supportLossBefore).toBeCloseTo(alone.supportLossBefore, 4);
      expect(batched.supportLossAfter).toBeCloseTo(alone.supportLossAfter, 4);
      expect(Object.keys(batched.params).sort()).toEqual(Object.keys(alone.params).sort());
      for (const [name, p] of Object.entries(alone.params)) {
        expect(batched.params[name].shape).toEqual(p.shape);
        const got = batched.params[name].data;
        p.data.forEach((v, i) => expect(got[i]).toBeCloseTo(v, 4));
      }
    });
  });

  it('a diverging task fails alone (guard none); mismatched sizes are refused', () => {
    const model = metaModel('maml', regression, 0.01);
    const huge = { ...sines[1], y: Float32Array.from(sines[1].y, (v) => v * 1e18) };
    const results = adaptMany(model, [sines[0], huge, sines[2]], { steps: 20, lr: 0.05, guard: 'none' });
    expect(results[1]).toBeInstanceOf(NonFiniteError);
    expect(results[0]).not.toBeInstanceOf(Error);
    expect(results[2]).not.toBeInstanceOf(Error);
    expect(() => adaptMany(model, [sines[0], blobs[0]])).toThrow(RangeError);
    expect(adaptMany(model, [])).toEqual([]);
  });
});

describe('predict', () => {
  it('regression: one value per input row, equal to the adapted network; flat and nested inputs agree', () => {
    const model = metaModel('maml', regression, 0.01);
    const params = taskParams(model, adapt(model, sineTask.support).params);
    const memory = tf.memory().numTensors;
    const out = predict(regression, params, sineTask.query.x);
    const nested = predict(regression, params, Array.from(sineTask.query.x, (v) => [v]));
    expect(tf.memory().numTensors).toBe(memory);
    expect(out.kind === 'regression' && out.values.length).toBe(20);
    expect(nested).toEqual(out);
  });

  it('classification: probabilities sum to one and the label is the arg-max; anil keeps the meta body', () => {
    const model = metaModel('anil', classification, 0.5);
    const adapted = adapt(model, blobTask.support).params;
    const params = taskParams(model, adapted);
    expect(params['body.0.weight']).toBe(model.params['body.0.weight']);
    const out = predict(classification, params, blobTask.query.x);
    if (out.kind !== 'classification') throw new Error('expected classification');
    expect(out.labels).toHaveLength(15);
    out.probabilities.forEach((p, i) => {
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      expect(out.labels[i]).toBe(p.indexOf(Math.max(...p)));
    });
  });

  it('rejects rows of the wrong width or with non-finite values', () => {
    const model = metaModel('maml', classification, 0.1);
    const params = taskParams(model, {});
    expect(() => predict(classification, params, [[1, 2, 3]])).toThrow(/x\[0\] has 3 values/);
    expect(() => predict(classification, params, [[1, NaN]])).toThrow(/finite/);
    expect(predict(classification, params, [])).toEqual({ kind: 'classification', labels: [], probabilities: [] });
  });
});
