/**
 * The fused wasm path against the tfjs path (the reference) for every algorithm, task kind,
 * activation and 1 or 3 inner steps: meta-loss, every meta-gradient tensor and the adapted
 * parameters; and the fused meta-batch against the same tasks one at a time.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { ALGORITHMS } from '../../../src/meta/algorithms/index.js';
import { initBackend } from '../../../src/meta/backend.js';
import { adaptMany, type AdaptResult } from '../../../src/meta/adapt.js';
import { chooseEngine } from '../../../src/meta/engine.js';
import { fusedAdaptMany, fusedMetaGradient } from '../../../src/meta/fused/index.js';
import { MetaLearner } from '../../../src/meta/learner.js';
import { toTensors, type ParamArrays } from '../../../src/meta/model.js';
import { batchToTensors, sliceEpisodeBatch } from '../../../src/meta/tensors.js';
import type { Examples } from '../../../src/meta/types.js';
import { download } from './helpers.js';
import { CASES, label, problem, type FusedCase, type Problem } from './support/fused-cases.js';

beforeAll(async () => {
  await initBackend('cpu');
});

function tfjsMetaGradient(c: FusedCase, p: Problem): { loss: number; grads: ParamArrays } {
  const algorithm = ALGORITHMS[c.algorithm];
  if (algorithm.trainsOn !== 'episodes') throw new Error(`${c.algorithm} has no episodic meta-gradient`);
  let loss = NaN;
  const grads = download(() => {
    const g = algorithm.metaGradient(p.spec, toTensors(p.params), batchToTensors(p.spec, p.batch), p.inner);
    loss = g.loss.dataSync()[0];
    return g.grads;
  });
  return { loss, grads };
}

/** max |a - b| over the entries, relative to the largest |b| (at least 1e-3, for near-zero gradients). */
function relativeMaxDiff(a: Float32Array, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 1e-3;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

describe('fused path vs tfjs', () => {
  it.each(CASES.map((c) => [label(c), c] as const))('%s: meta-loss, meta-gradient, adapted parameters', (_name, c) => {
    const p = problem(c);
    const expected = tfjsMetaGradient(c, p);
    const fused = fusedMetaGradient(c.algorithm, p.spec, p.inner, p.params, p.batch);
    expect(Math.abs(fused.loss - expected.loss)).toBeLessThan(1e-5 * Math.max(1, Math.abs(expected.loss)));
    expect(Object.keys(fused.grads).sort()).toEqual(Object.keys(expected.grads).sort());
    for (const [name, g] of Object.entries(expected.grads)) {
      expect(relativeMaxDiff(fused.grads[name], g.data), name).toBeLessThan(2e-4);
    }

    const algorithm = ALGORITHMS[c.algorithm];
    const adaptedTfjs = download(() => {
      const support = batchToTensors(p.spec, p.batch).support;
      return algorithm.adapt(p.spec, toTensors(p.params), support, p.inner);
    });
    const { tasks, supportSize: n } = p.batch;
    const adaptedFused = fusedAdaptMany(c.algorithm, p.spec, p.inner, p.params, tasks, n, p.batch.support.x, p.batch.support.y, 'none');
    for (const [name, t] of Object.entries(adaptedTfjs)) {
      const perTask = t.data.length === tasks * adaptedFused[0].params[name].data.length;
      for (let task = 0; task < tasks; task++) {
        const size = adaptedFused[task].params[name].data.length;
        const want = perTask ? t.data.subarray(task * size, (task + 1) * size) : t.data;
        expect(relativeMaxDiff(adaptedFused[task].params[name].data, want), `${name} task ${task}`).toBeLessThan(1e-5);
      }
    }
  });
});

describe('fused path vs tfjs at other depths', () => {
  const depths = [[5], [7, 6, 5]];
  const cases = CASES.filter((c) => c.steps === 3 && c.activation === 'softplus' && ['maml', 'anil', 'metasgd', 'protonet'].includes(c.algorithm));
  it.each(depths.flatMap((hidden) => cases.map((c) => [`${label(c)}, hidden [${hidden.join(', ')}]`, c, hidden] as const)))('%s', (_name, c, hidden) => {
    const p = problem(c, 4, hidden);
    const expected = tfjsMetaGradient(c, p);
    const fused = fusedMetaGradient(c.algorithm, p.spec, p.inner, p.params, p.batch);
    expect(Math.abs(fused.loss - expected.loss)).toBeLessThan(1e-5 * Math.max(1, Math.abs(expected.loss)));
    for (const [name, g] of Object.entries(expected.grads)) expect(relativeMaxDiff(fused.grads[name], g.data), name).toBeLessThan(2e-4);
  });
});

describe('fused meta-batch vs one task at a time', () => {
  it.each(CASES.filter((c) => c.steps === 3).map((c) => [label(c), c] as const))('%s', (_name, c) => {
    const p = problem(c, 5);
    const batched = fusedMetaGradient(c.algorithm, p.spec, p.inner, p.params, p.batch);
    let loss = 0;
    const sums: Record<string, Float64Array> = {};
    for (let t = 0; t < p.batch.tasks; t++) {
      const one = fusedMetaGradient(c.algorithm, p.spec, p.inner, p.params, sliceEpisodeBatch(p.batch, t));
      loss += one.loss / p.batch.tasks;
      for (const [name, g] of Object.entries(one.grads)) {
        sums[name] ??= new Float64Array(g.length);
        g.forEach((v, i) => (sums[name][i] += v / p.batch.tasks));
      }
    }
    expect(batched.loss).toBeCloseTo(loss, 6);
    for (const [name, g] of Object.entries(batched.grads)) expect(relativeMaxDiff(g, sums[name]), name).toBeLessThan(1e-6);
  });
});

describe('engine choice', () => {
  it("'auto' takes the fused path on a CPU backend and reports which engine a learner runs", () => {
    expect(chooseEngine('auto')).toBe('fused-wasm');
    expect(chooseEngine('tfjs')).toBe('tfjs-cpu');
    const p = problem(CASES[0]);
    const config = { algorithm: CASES[0].algorithm, spec: p.spec, inner: p.inner, metaLr: 1e-3 };
    const fused = new MetaLearner(config, p.params);
    const tfjs = new MetaLearner({ ...config, engine: 'tfjs' }, p.params);
    expect([fused.engine, tfjs.engine]).toEqual(['fused-wasm', 'tfjs-cpu']);
    // One meta-step each from the same start: the same loss, and parameters equal to float32 rounding.
    expect(fused.metaStep(p.batch)).toBeCloseTo(tfjs.metaStep(p.batch), 5);
    const [a, b] = [fused.exportParams(), tfjs.exportParams()];
    for (const name of Object.keys(a)) expect(relativeMaxDiff(a[name].data, b[name].data), name).toBeLessThan(1e-5);
    fused.dispose();
    tfjs.dispose();
  });

  it.each(CASES.filter((c) => c.steps === 3 && c.activation === 'softplus').map((c) => [label(c), c] as const))('%s: adaptMany gives the same results on both engines', (_name, c) => {
    const p = problem(c, 9);
    const { tasks, supportSize: n, inputDim: d } = p.batch;
    const supports: Examples[] = Array.from({ length: tasks }, (_, t) => ({
      n,
      x: p.batch.support.x.slice(t * n * d, (t + 1) * n * d),
      y: p.batch.support.y.slice(t * n, (t + 1) * n),
    }));
    const model = { algorithm: c.algorithm, spec: p.spec, params: p.params, inner: p.inner };
    const fused = adaptMany(model, supports, {}, 'fused') as AdaptResult[];
    const tfjs = adaptMany(model, supports, {}, 'tfjs') as AdaptResult[];
    fused.forEach((r, t) => {
      expect(r.steps).toBe(tfjs[t].steps);
      expect(r.supportLossBefore).toBeCloseTo(tfjs[t].supportLossBefore, 5);
      expect(r.supportLossAfter).toBeCloseTo(tfjs[t].supportLossAfter, 5);
      expect(Object.keys(r.params).sort()).toEqual(Object.keys(tfjs[t].params).sort());
      for (const [name, q] of Object.entries(tfjs[t].params)) expect(relativeMaxDiff(r.params[name].data, q.data), name).toBeLessThan(1e-5);
    });
  });
});
