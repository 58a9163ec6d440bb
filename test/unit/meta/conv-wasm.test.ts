/**
 * The conv body on the wasm backend, the CPU backend the service runs on: wasm lacks kernels the cpu
 * backend has (a convolution's filter gradient, gather's gradient), so every algorithm's meta-step and
 * evaluation run here once, and the second-order MAML and ProtoNets meta-gradients are checked
 * against finite differences on this backend too.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { ALGORITHM_NAMES } from '../../../src/meta/algorithms/index.js';
import { initBackend, tf } from '../../../src/meta/backend.js';
import { MetaLearner } from '../../../src/meta/learner.js';
import { convClassificationProblem, expectMetaGradientMatchesFd, trainingSetup } from './helpers.js';

beforeAll(async () => {
  expect(await initBackend('wasm')).toBe('wasm');
});

describe('conv body on wasm', () => {
  it.each(['maml', 'protonet'] as const)('%s meta-gradient matches finite differences', (name) => {
    expectMetaGradientMatchesFd(name, { ...convClassificationProblem(12), inner: { steps: 2, lr: 0.5 } }, 1e-3, 1e-2);
  });

  it.each(ALGORITHM_NAMES)('%s takes a finite meta-step and evaluates', (name) => {
    const p = { ...convClassificationProblem(4), inner: { steps: 2, lr: 0.5 } };
    const { params, batch } = trainingSetup(name, p);
    const learner = new MetaLearner({ algorithm: name, spec: p.spec, inner: p.inner, metaLr: 1e-3 }, params);
    const memory = tf.memory().numTensors;
    expect(Number.isFinite(learner.metaStep(batch))).toBe(true);
    expect(learner.evaluate(p.batch).accuracy).toBeGreaterThanOrEqual(0);
    expect(tf.memory().numTensors).toBe(memory);
    learner.dispose();
  });
});
