/**
 * Every algorithm's meta-gradient against central finite differences of the objective it claims to
 * differentiate, on regression and classification, along a random unit direction and at the largest
 * single entries; and the batched meta-batch against the per-task loop.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { ALGORITHMS, type AlgorithmName } from '../../../src/meta/algorithms/index.js';
import { initBackend, tf } from '../../../src/meta/backend.js';
import { lossOn } from '../../../src/meta/inner-loop.js';
import { MetaLearner } from '../../../src/meta/learner.js';
import { toTensors, type ParamArrays } from '../../../src/meta/model.js';
import { Rng } from '../../../src/meta/rng.js';
import { batchToTensors } from '../../../src/meta/tensors.js';
import {
  ALGORITHM_KIND_CASES,
  classificationProblem,
  directionalFd,
  dot,
  download,
  expectBatchedEqualsLoop,
  entryFd,
  largestEntries,
  mapArrays,
  metaGradient,
  type MetaProblem,
  regressionProblem,
  relErr,
  scalarAt,
  trainingSetup,
  unitDirection,
} from './helpers.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const EPS = 1e-2;
const TOL = 1e-2;

type Problem = MetaProblem;

const problems: Record<string, () => Problem> = {
  regression: () => ({ ...regressionProblem(11), inner: { steps: 2, lr: 0.03 } }),
  classification: () => ({ ...classificationProblem(12), inner: { steps: 2, lr: 0.5 } }),
};

/** The post-adaptation query loss as a function of the meta-parameters (what MAML differentiates). */
function outerObjective(name: AlgorithmName, p: Problem): (theta: ParamArrays) => number {
  return (theta) =>
    scalarAt(theta, (th) => {
      const tensors = batchToTensors(p.spec, p.batch);
      return tf.mean(lossOn(p.spec, ALGORITHMS[name].adapt(p.spec, th, tensors.support, p.inner), tensors.query));
    });
}

function expectMatchesFd(grads: ParamArrays, theta: ParamArrays, f: (theta: ParamArrays) => number, seed: number): void {
  const dir = unitDirection(theta, new Rng(seed));
  const fd = directionalFd(theta, dir, EPS, f);
  expect(Math.abs(fd)).toBeGreaterThan(1e-3); // the check must have something to compare
  expect(relErr(dot(grads, dir), fd)).toBeLessThan(TOL);
  for (const [name, i] of largestEntries(grads, 3)) {
    expect(relErr(grads[name].data[i], entryFd(theta, name, i, EPS, f))).toBeLessThan(TOL);
  }
}

const throughAdaptation: Array<[AlgorithmName, string]> = [
  ['maml', 'regression'],
  ['maml', 'classification'],
  ['anil', 'regression'],
  ['anil', 'classification'],
  ['metasgd', 'regression'],
  ['metasgd', 'classification'],
  ['protonet', 'classification'],
];

describe('meta-gradients match finite differences', () => {
  it.each(throughAdaptation)('%s on %s: d(post-adaptation query loss)/d(theta)', (name, kind) => {
    const p = problems[kind]();
    const theta = ALGORITHMS[name].initMetaParams(p.spec, new Rng(3), p.inner);
    const memory = tf.memory().numTensors;
    const { loss, grads } = metaGradient(name, p, theta);
    const f = outerObjective(name, p);
    expect(loss).toBeCloseTo(f(theta), 5);
    expectMatchesFd(grads, theta, f, 5);
    expect(tf.memory().numTensors).toBe(memory);
  });

  it('maml relu network (regression)', () => {
    const p: Problem = { ...regressionProblem(21, { hidden: [8, 8], activation: 'relu' }), inner: { steps: 1, lr: 0.03 } };
    const theta = ALGORITHMS.maml.initMetaParams(p.spec, new Rng(4), p.inner);
    expectMatchesFd(metaGradient('maml', p, theta).grads, theta, outerObjective('maml', p), 6);
  });

  it.each(['regression', 'classification'])('the second-order term matters here: fomaml does not pass the maml check (%s)', (kind) => {
    const p = problems[kind]();
    const theta = ALGORITHMS.maml.initMetaParams(p.spec, new Rng(3), p.inner);
    const first = metaGradient('fomaml', p, theta).grads;
    const dir = unitDirection(theta, new Rng(5));
    const fd = directionalFd(theta, dir, EPS, outerObjective('maml', p));
    expect(relErr(dot(first, dir), fd)).toBeGreaterThan(5 * TOL);
  });

  it.each(['regression', 'classification'])('fomaml on %s: query-loss gradient at the adapted parameters', (kind) => {
    const p = problems[kind]();
    const theta = ALGORITHMS.fomaml.initMetaParams(p.spec, new Rng(3), p.inner);
    const { grads } = metaGradient('fomaml', p, theta);
    // Shift every task's adapted parameters by the same delta: the derivative is the task-mean gradient.
    const adapted = download(() => ALGORITHMS.fomaml.adapt(p.spec, toTensors(theta), batchToTensors(p.spec, p.batch).support, p.inner));
    const zero = mapArrays(theta, (_n, d) => new Float32Array(d.length));
    const f = (delta: ParamArrays) =>
      scalarAt(delta, (d) => {
        const shifted = Object.fromEntries(Object.entries(toTensors(adapted)).map(([n, a]) => [n, tf.add(a, tf.reshape(d[n], a.rank === 3 && d[n].rank === 1 ? [1, 1, -1] : [1, ...d[n].shape]))]));
        return tf.mean(lossOn(p.spec, shifted, batchToTensors(p.spec, p.batch).query));
      });
    expectMatchesFd(grads, zero, f, 7);
  });

  it.each(['regression', 'classification'])('reptile on %s with one inner step: theta - phi = lr * d(support loss)', (kind) => {
    const p = problems[kind]();
    const inner = { steps: 1, lr: p.inner.lr };
    const theta = ALGORITHMS.reptile.initMetaParams(p.spec, new Rng(3), inner);
    const { grads } = metaGradient('reptile', { ...p, inner }, theta);
    const f = (th: ParamArrays) =>
      scalarAt(th, (t) => tf.mul(tf.mean(lossOn(p.spec, t, batchToTensors(p.spec, p.batch).support)), inner.lr));
    expectMatchesFd(grads, theta, f, 8);
  });
});

describe('batched meta-batch equals the per-task loop', () => {
  it.each(ALGORITHM_KIND_CASES)('%s on %s', (name, kind) => {
    const p = problems[kind]();
    const { params, batch } = trainingSetup(name, p);
    const learner = new MetaLearner({ algorithm: name, spec: p.spec, inner: p.inner, metaLr: 1e-3 }, params);
    const memory = tf.memory().numTensors;
    expectBatchedEqualsLoop(learner, batch, 1e-5);
    expect(tf.memory().numTensors).toBe(memory);
    learner.dispose();
  });
});
