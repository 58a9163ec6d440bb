/**
 * The guarded inner loop: with a step size far too large the raw support loss explodes; guard 'best'
 * returns the best iterate (never above the start, never NaN) and says it diverged, 'none' returns
 * the raw last iterate; the fused and tfjs engines record the same trace and choose the same step.
 * The returned parameters are the best step's, judged from outside the loop: every iterate is
 * recomputed (guard 'none' with k steps) and scored by a plain-JS loss on its own predictions.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { adaptMany, predict, taskParams, type AdaptResult, type MetaModel } from '../../../src/meta/adapt.js';
import { ALGORITHMS, type AlgorithmName } from '../../../src/meta/algorithms/index.js';
import { initBackend, tf } from '../../../src/meta/backend.js';
import { gaussianBlobs, sinusoid } from '../../../src/meta/families/index.js';
import { FUSED_ALGORITHMS } from '../../../src/meta/fused/index.js';
import { readTrace } from '../../../src/meta/guard.js';
import { NonFiniteError } from '../../../src/meta/learner.js';
import { modelSpec, type ModelSpec, type ParamArrays } from '../../../src/meta/model.js';
import { Rng } from '../../../src/meta/rng.js';
import type { Examples } from '../../../src/meta/types.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const spec = modelSpec('regression', 1, { hidden: [16, 16] });
const supports: Examples[] = [4, 5, 6].map((seed) => sinusoid().sampleEpisode(new Rng(seed), 'test', { shots: 10, queryShots: 1 }).support);
const STEPS = 10;
/** Regression algorithms that run inner steps on both engines. */
const ALGORITHMS_WITH_STEPS = FUSED_ALGORITHMS.filter((name) => ALGORITHMS[name].runsInnerSteps && ALGORITHMS[name].kinds.includes('regression'));

function metaModel(algorithm: AlgorithmName, lr: number, model: ModelSpec = spec): MetaModel {
  const inner = { steps: 1, lr };
  return { algorithm, spec: model, inner, params: ALGORITHMS[algorithm].initMetaParams(model, new Rng(1), inner) };
}

describe('readTrace', () => {
  it('picks the lowest finite loss (the earliest on a tie) and flags a rise or a NaN', () => {
    expect(readTrace([2, 1, 0.5, 0.5, 3], 'best')).toEqual({ trace: [2, 1, 0.5, 0.5, 3], bestStep: 2, diverged: true });
    expect(readTrace([2, 1, Number.NaN], 'best')).toMatchObject({ bestStep: 1, diverged: true });
    expect(readTrace([2, 1, 0.5], 'best')).toMatchObject({ bestStep: 2, diverged: false });
    expect(readTrace([2, 1, 3], 'none')).toMatchObject({ bestStep: 2, diverged: true });
    expect(readTrace([2], 'best')).toMatchObject({ bestStep: 0, diverged: false });
  });
});

describe.each(['tfjs', 'fused'] as const)('guarded inner loop on %s', (engine) => {
  it.each(ALGORITHMS_WITH_STEPS)('%s: a huge step size diverges; guard best returns the best iterate, none the raw one', (algorithm) => {
    const model = metaModel(algorithm, 50);
    const memory = tf.memory().numTensors;
    const best = adaptMany(model, supports, { steps: STEPS }, engine);
    expect(tf.memory().numTensors).toBe(memory);
    for (const r of best) {
      expect(r).not.toBeInstanceOf(NonFiniteError);
      const { supportLoss, supportLossBefore, supportLossAfter, params } = r as AdaptResult;
      expect(supportLoss.trace).toHaveLength(STEPS + 1);
      expect(supportLoss.diverged).toBe(true);
      expect(supportLossAfter).toBeLessThanOrEqual(supportLossBefore);
      expect(supportLossAfter).toBe(supportLoss.trace[supportLoss.bestStep]);
      const finite = supportLoss.trace.filter(Number.isFinite);
      expect(supportLossAfter).toBe(Math.min(...finite));
      for (const p of Object.values(params)) expect(p.data.every(Number.isFinite)).toBe(true);
    }
    // The raw last iterate: non-finite (an error, never NaN parameters) or far above the start.
    const none = adaptMany(model, supports, { steps: STEPS, guard: 'none' }, engine);
    none.forEach((r, t) => {
      if (r instanceof NonFiniteError) return;
      expect(r.supportLoss.bestStep).toBe(STEPS);
      expect(r.supportLoss.trace).toEqual((best[t] as AdaptResult).supportLoss.trace);
      expect(r.supportLossAfter).toBeGreaterThan(r.supportLossBefore);
    });
  });

  it.each(ALGORITHMS_WITH_STEPS)('%s: an ordinary step size does not diverge, and guard best returns the last iterate', (algorithm) => {
    const model = metaModel(algorithm, 0.01);
    for (const r of adaptMany(model, supports, { steps: STEPS }, engine) as AdaptResult[]) {
      expect(r.supportLoss).toMatchObject({ bestStep: STEPS, diverged: false });
      expect(r.supportLossAfter).toBeLessThan(r.supportLossBefore);
    }
  });
});

describe('fused and tfjs guards agree', () => {
  it.each(ALGORITHMS_WITH_STEPS)('%s: the same trace and best step, on a diverging and on an ordinary step size', (algorithm) => {
    for (const lr of [3, 0.01]) {
      const model = metaModel(algorithm, lr);
      const fused = adaptMany(model, supports, { steps: STEPS }, 'fused') as AdaptResult[];
      const tfjs = adaptMany(model, supports, { steps: STEPS }, 'tfjs') as AdaptResult[];
      fused.forEach((r, t) => {
        const other = tfjs[t].supportLoss;
        if (lr === 3) expect(r.supportLoss.diverged).toBe(true);
        expect(r.supportLoss.bestStep, `lr ${lr} task ${t}`).toBe(other.bestStep);
        expect(r.supportLoss.diverged).toBe(other.diverged);
        r.supportLoss.trace.forEach((loss, step) => {
          if (!Number.isFinite(loss)) return expect(Number.isFinite(other.trace[step])).toBe(false);
          expect(Math.abs(loss - other.trace[step]), `lr ${lr} task ${t} step ${step}`).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(loss)));
        });
      });
    }
  });
});

/** A task's mean support loss computed outside the inner loop: MSE or cross-entropy on `predict`'s output. */
function supportLossOf(model: MetaModel, adapted: ParamArrays, support: Examples): number {
  const out = predict(model.spec, taskParams(model, adapted), support.x);
  const y = Array.from(support.y);
  if (out.kind === 'regression') return out.values.reduce((sum, v, i) => sum + (v - y[i]) ** 2, 0) / y.length;
  return -out.probabilities.reduce((sum, p, i) => sum + Math.log(p[y[i]]), 0) / y.length;
}

/** The earliest step with the lowest loss (the guard's tie rule). */
const argmin = (losses: number[]) => losses.reduce((best, loss, step) => (loss < losses[best] ? step : best), 0);

const convSpec = modelSpec('classification', 25, { body: 'conv', inputShape: [5, 5, 1], channels: [3, 4], activation: 'softplus' }, 3);
const convSupports = [4, 5, 6].map((seed) => gaussianBlobs({ meanScale: 1.5 }, { inputDim: 25, ways: 3 }).sampleEpisode(new Rng(seed), 'test', { shots: 3, queryShots: 1, ways: 3 }).support);
const BEST_STEPS = 12;

describe('the returned parameters are the best step\'s', () => {
  // Step sizes at which these tasks' support losses fall and then overshoot, so the best step lies
  // strictly inside the run for some task and is the last for others (checked below, not assumed).
  const cases = [
    { name: 'maml (whole network), fused', algorithm: 'maml', engine: 'fused', lr: 0.15, model: spec, sets: supports },
    { name: 'maml (whole network), tfjs', algorithm: 'maml', engine: 'tfjs', lr: 0.15, model: spec, sets: supports },
    { name: 'anil (head), fused', algorithm: 'anil', engine: 'fused', lr: 0.15, model: spec, sets: supports },
    { name: 'anil (head), tfjs', algorithm: 'anil', engine: 'tfjs', lr: 0.15, model: spec, sets: supports },
    { name: 'maml on a conv body, tfjs', algorithm: 'maml', engine: 'tfjs', lr: 0.5, model: convSpec, sets: convSupports },
  ] as const;

  it.each(cases)('$name: guard best returns the iterate with the lowest recomputed support loss, at most the meta-model\'s', ({ algorithm, engine, lr, model: modelOf, sets }) => {
    const model = metaModel(algorithm, lr, modelOf);
    const guarded = adaptMany(model, sets, { steps: BEST_STEPS }, engine);
    // iterates[k][t]: task t's parameters after exactly k raw steps.
    const iterates = Array.from({ length: BEST_STEPS + 1 }, (_, k) => adaptMany(model, sets, { steps: k, guard: 'none' }, engine));
    const bestSteps = sets.map((support, t) => {
      const result = guarded[t];
      if (result instanceof Error) throw result;
      const losses = iterates.map((run) => {
        const iterate = run[t];
        if (iterate instanceof Error) throw iterate;
        return supportLossOf(model, iterate.params, support);
      });
      const metaModelLoss = supportLossOf(model, {}, support);
      expect(losses[0]).toBeCloseTo(metaModelLoss, 5);
      // The recorded trace is the recomputed one, so the guard chose on the right numbers.
      losses.forEach((loss, k) => expect(Math.abs(result.supportLoss.trace[k] - loss), `task ${t} step ${k}`).toBeLessThanOrEqual(1e-4 * Math.max(1, loss)));
      const best = argmin(losses);
      expect(result.supportLoss.bestStep, `task ${t}`).toBe(best);
      const bestIterate = iterates[best][t] as AdaptResult;
      expect(Object.keys(result.params)).toEqual(Object.keys(bestIterate.params));
      for (const [name, p] of Object.entries(bestIterate.params)) {
        expect(result.params[name].shape).toEqual(p.shape);
        expect(Array.from(result.params[name].data), `task ${t} ${name}`).toEqual(Array.from(p.data));
      }
      const chosen = supportLossOf(model, result.params, support);
      expect(chosen).toBeCloseTo(losses[best], 5);
      expect(chosen).toBeLessThanOrEqual(metaModelLoss);
      return best;
    });
    // Not the trivial cases only: some task's best step is neither the start nor the last step.
    expect(bestSteps.some((step) => step > 0 && step < BEST_STEPS), `best steps ${bestSteps.join(', ')}`).toBe(true);
  });
});
