/**
 * The fused path against an independent float64 reference (support/reference64.ts: plain JS, hand
 * backprop of the inner steps, no tfjs): the meta-gradient against central differences of the
 * reference's post-adaptation query loss (FOMAML and Reptile: against their own update rules), for
 * every algorithm, kind and activation, 1 and 3 inner steps; and, on the MAML paper's sinusoid
 * setting, meta-loss, meta-gradient and post-adaptation MSE to about 5 significant digits.
 */

import { describe, expect, it } from 'vitest';
import { fusedEvaluate, fusedMetaGradient } from '../../../src/meta/fused/index.js';
import { initMetaParams } from '../../../src/meta/learner.js';
import { modelSpec } from '../../../src/meta/model.js';
import { Rng } from '../../../src/meta/rng.js';
import { sinusoid } from '../../../src/meta/families/index.js';
import { CASES, label, problem } from './support/fused-cases.js';
import { sample } from './helpers.js';
import { metaGradient64, metaLoss64, toParams64 } from './support/reference64.js';

/** max |a - b| relative to max |b|. */
function relative(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / Math.max(scale, 1e-6);
}

describe('fused meta-gradient vs float64 reference', () => {
  it.each(CASES.map((c) => [label(c), c] as const))('%s', (_name, c) => {
    const p = problem(c, 7);
    const theta = toParams64(p.params);
    const fused = fusedMetaGradient(c.algorithm, p.spec, p.inner, p.params, p.batch);
    expect(fused.loss).toBeCloseTo(metaLoss64(c.algorithm, p.spec, p.inner, theta, p.batch), 5);
    const reference = metaGradient64(c.algorithm, p.spec, p.inner, theta, p.batch);
    for (const [name, g] of Object.entries(reference)) expect(relative(fused.grads[name], g), name).toBeLessThan(1e-4);
  });
});

describe('MAML on sinusoids (1-40-40-1 relu, K=10) vs float64 reference', () => {
  it('agrees on meta-loss, meta-gradient and post-adaptation MSE to ~5 significant digits', () => {
    const spec = modelSpec('regression', 1, { hidden: [40, 40], activation: 'relu' });
    const inner = { steps: 1, lr: 0.01 };
    const params = initMetaParams({ algorithm: 'maml', spec, inner, metaLr: 0.001 }, new Rng(1));
    const batch = sample(sinusoid(), new Rng(2), 5, 10, 10);
    const theta = toParams64(params);
    const fused = fusedMetaGradient('maml', spec, inner, params, batch);
    const loss64 = metaLoss64('maml', spec, inner, theta, batch);
    expect(Math.abs(fused.loss - loss64) / loss64).toBeLessThan(1e-5);
    // The whole meta-gradient by central differences would take seconds; the head and the first
    // layer (where the second-order terms pass through both hidden layers) cover every path.
    const checked = ['body.0.weight', 'body.0.bias', 'body.1.bias', 'head.weight', 'head.bias'];
    const reference = metaGradient64('maml', spec, inner, theta, batch, checked);
    for (const name of checked) {
      expect(relative(fused.grads[name], reference[name]), name).toBeLessThan(1e-4);
    }
    const tenSteps = { steps: 10, lr: 0.01 };
    const mse = fusedEvaluate('maml', spec, tenSteps, params, batch).loss;
    const mse64 = metaLoss64('maml', spec, tenSteps, theta, batch);
    expect(Math.abs(mse - mse64) / mse64).toBeLessThan(1e-5);
  });
});
