/**
 * The guarded inner loop: with a step size far too large the raw support loss explodes; guard 'best'
 * returns the best iterate (never above the start, never NaN) and says it diverged, 'none' returns
 * the raw last iterate; the fused and tfjs engines record the same trace and choose the same step.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { adaptMany, type AdaptResult, type MetaModel } from '../../../src/meta/adapt.js';
import { ALGORITHMS, type AlgorithmName } from '../../../src/meta/algorithms/index.js';
import { initBackend, tf } from '../../../src/meta/backend.js';
import { sinusoid } from '../../../src/meta/families/index.js';
import { FUSED_ALGORITHMS } from '../../../src/meta/fused/index.js';
import { readTrace } from '../../../src/meta/guard.js';
import { NonFiniteError } from '../../../src/meta/learner.js';
import { modelSpec } from '../../../src/meta/model.js';
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

function metaModel(algorithm: AlgorithmName, lr: number): MetaModel {
  const inner = { steps: 1, lr };
  return { algorithm, spec, inner, params: ALGORITHMS[algorithm].initMetaParams(spec, new Rng(1), inner) };
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
