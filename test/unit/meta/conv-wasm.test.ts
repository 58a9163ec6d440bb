/**
 * The conv body on the wasm backend, the CPU backend the service runs on: wasm lacks kernels the cpu
 * backend has (a convolution's filter gradient, gather's gradient), so every algorithm's meta-step and
 * evaluation run here once, and the second-order MAML and ProtoNets meta-gradients are checked
 * against finite differences on this backend too.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { ALGORITHM_NAMES, ALGORITHMS } from '../../../src/meta/algorithms/index.js';
import { initBackend, tf } from '../../../src/meta/backend.js';
import { MetaLearner } from '../../../src/meta/learner.js';
import { Rng } from '../../../src/meta/rng.js';
import type { TrainingBatch } from '../../../src/meta/types.js';
import { convClassificationProblem, expectMetaGradientMatchesFd } from './helpers.js';

beforeAll(async () => {
  expect(await initBackend('wasm')).toBe('wasm');
});

describe('conv body on wasm', () => {
  it.each(['maml', 'protonet'] as const)('%s meta-gradient matches finite differences', (name) => {
    expectMetaGradientMatchesFd(name, { ...convClassificationProblem(12), inner: { steps: 2, lr: 0.5 } }, 1e-3, 1e-2);
  });

  it.each(ALGORITHM_NAMES)('%s takes a finite meta-step and evaluates', (name) => {
    const { spec, batch } = convClassificationProblem(4);
    const algorithm = ALGORITHMS[name];
    const inner = { steps: 2, lr: 0.5 };
    let params = algorithm.initMetaParams(spec, new Rng(1), inner);
    let training: TrainingBatch = batch;
    if (algorithm.trainsOn === 'pool') {
      params = { ...params, ...algorithm.initPoolParams(spec, [3], new Rng(2)) };
      const n = batch.supportSize;
      training = { tasks: 1, inputDim: spec.inputDim, n, taskIds: Int32Array.of(0), outputs: Int32Array.of(3), x: batch.support.x.slice(0, n * spec.inputDim), y: batch.support.y.slice(0, n) };
    }
    const learner = new MetaLearner({ algorithm: name, spec, inner, metaLr: 1e-3 }, params);
    const memory = tf.memory().numTensors;
    expect(Number.isFinite(learner.metaStep(training))).toBe(true);
    expect(learner.evaluate(batch).accuracy).toBeGreaterThanOrEqual(0);
    expect(tf.memory().numTensors).toBe(memory);
    learner.dispose();
  });
});
