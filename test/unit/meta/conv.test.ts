/**
 * The conv body: its hand-written ops against tfjs' own (forward and gradient, on the cpu backend,
 * which has every kernel), every algorithm's meta-gradient against finite differences on a conv body
 * (second-order MAML differentiates each op's gradient again), and the batched meta-batch against
 * the per-task loop.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { ALGORITHMS, type AlgorithmName } from '../../../src/meta/algorithms/index.js';
import { initBackend, tf } from '../../../src/meta/backend.js';
import { conv3x3, convEmbeddingDim, maxPool2x2 } from '../../../src/meta/conv.js';
import { chooseEngine } from '../../../src/meta/engine.js';
import { MetaLearner } from '../../../src/meta/learner.js';
import { embed, initModelParams, modelSpec, toTensors } from '../../../src/meta/model.js';
import { Rng } from '../../../src/meta/rng.js';
import {
  ALGORITHM_KIND_CASES,
  convClassificationProblem,
  convRegressionProblem,
  dot,
  expectBatchedEqualsLoop,
  expectMetaGradientMatchesFd,
  maxAbs,
  metaGradient,
  relErr,
  trainingSetup,
  unitDirection,
  type MetaProblem,
} from './helpers.js';

beforeAll(async () => {
  await initBackend('cpu');
});

// Smaller than the MLP tests' 1e-2: a larger step crosses the max pooling's switches.
const EPS = 1e-3;
const TOL = 1e-2;

const random = (shape: number[], seed: number, low = -1) => {
  const rng = new Rng(seed);
  return tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.uniform(low, 1)), shape);
};

const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0];

describe('conv ops agree with tfjs', () => {
  it.each([
    [2, 5, 5, 3, 4],
    [3, 4, 6, 1, 2],
  ])('conv3x3 on [%i, %i, %i, %i] -> %i channels: value and both gradients', (n, h, w, cin, cout) => {
    tf.tidy(() => {
      const x = random([n, h, w, cin], 1);
      const k = random([3, 3, cin, cout], 2);
      const dy = random([n, h, w, cout], 3);
      const ours = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(conv3x3(a, b), dy)))([x, k]);
      const theirs = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same'), dy)))([x, k]);
      expect(maxDiff(conv3x3(x, k), tf.conv2d(x as tf.Tensor4D, k as tf.Tensor4D, 1, 'same'))).toBe(0);
      expect(maxDiff(ours[0], theirs[0])).toBeLessThan(1e-5);
      expect(maxDiff(ours[1], theirs[1])).toBeLessThan(1e-5);
      expect(maxAbs({ k: { shape: k.shape, data: ours[1].dataSync() as Float32Array } })).toBeGreaterThan(0.1);
    });
  });

  it.each([
    [4, 6],
    [5, 7],
    [1, 1],
  ])('maxPool2x2 on %ix%i: tfjs maxPool with ceil, and its gradient', (h, w) => {
    tf.tidy(() => {
      const x = random([2, h, w, 3], 4, 0); // non-negative, as after the activation
      const dy = random([2, Math.ceil(h / 2), Math.ceil(w / 2), 3], 5);
      const reference = (a: tf.Tensor) => tf.maxPool(a as tf.Tensor4D, 2, 2, 'same');
      // tfjs 'same' pads an odd edge on the far side, so it is the ceil pooling whenever sides are odd or even.
      expect(maxDiff(maxPool2x2(x), reference(x))).toBe(0);
      const ours = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(maxPool2x2(a), dy)))(x);
      const theirs = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(reference(a), dy)))(x);
      expect(maxDiff(ours, theirs)).toBeLessThan(1e-6);
    });
  });

  it('embeds [T, n, h w c] inputs with shared or per-task parameters alike', () => {
    const { spec, batch } = convClassificationProblem(3);
    const theta = initModelParams(spec, new Rng(1));
    tf.tidy(() => {
      const params = toTensors(theta);
      const x = tf.tensor3d(batch.support.x, [batch.tasks, batch.supportSize, spec.inputDim]);
      const shared = embed(spec, params, x);
      const tiled = Object.fromEntries(Object.entries(params).map(([n, p]) => [n, tf.stack(Array.from({ length: batch.tasks }, () => (p.rank === 1 ? tf.reshape(p, [1, -1]) : p)))]));
      expect(shared.shape).toEqual([batch.tasks, batch.supportSize, convEmbeddingDim(spec.inputShape!, spec.channels!)]);
      expect(maxDiff(shared, embed(spec, tiled, x))).toBeLessThan(1e-6);
      // One example's embedding does not depend on the others of its batch (per-example normalisation).
      const alone = embed(spec, params, tf.slice(tf.reshape(x, [-1, spec.inputDim]), [0, 0], [1, spec.inputDim]));
      expect(maxDiff(alone, tf.slice(tf.reshape(shared, [-1, alone.shape[1] as number]), [0, 0], [1, -1]))).toBeLessThan(1e-6);
    });
  });
});

const problems: Record<string, () => MetaProblem> = {
  regression: () => ({ ...convRegressionProblem(11), inner: { steps: 2, lr: 0.03 } }),
  classification: () => ({ ...convClassificationProblem(12), inner: { steps: 2, lr: 0.5 } }),
};

describe('conv-body meta-gradients match finite differences', () => {
  const cases: Array<[AlgorithmName, string]> = [
    ['maml', 'regression'],
    ['maml', 'classification'],
    ['anil', 'classification'],
    ['metasgd', 'classification'],
    ['protonet', 'classification'],
  ];
  it.each(cases)('%s on %s: d(post-adaptation query loss)/d(theta)', (name, kind) => {
    const p = problems[kind]();
    const memory = tf.memory().numTensors;
    const grads = expectMetaGradientMatchesFd(name, p, EPS, TOL);
    // The body's own parameters receive a gradient (the check above is not all head).
    expect(maxAbs({ w: grads['body.0.weight'] })).toBeGreaterThan(1e-4);
    expect(tf.memory().numTensors).toBe(memory);
  });

  it('the second-order term matters on a conv body: fomaml does not pass the maml check', () => {
    const p = problems.classification();
    const theta = ALGORITHMS.maml.initMetaParams(p.spec, new Rng(3), p.inner);
    const first = metaGradient('fomaml', p, theta).grads;
    const second = metaGradient('maml', p, theta).grads;
    const dir = unitDirection(theta, new Rng(5));
    expect(relErr(dot(first, dir), dot(second, dir))).toBeGreaterThan(5 * TOL);
  });
});

describe('conv body: batched meta-batch equals the per-task loop', () => {
  it.each(ALGORITHM_KIND_CASES)('%s on %s', (name, kind) => {
    const p = problems[kind]();
    const { params, batch } = trainingSetup(name, p);
    // The tfjs engine's two modes (the ONNX Runtime engine is checked against it in ort-engine.test.ts).
    const learner = new MetaLearner({ algorithm: name, spec: p.spec, inner: p.inner, metaLr: 1e-3, engine: 'tfjs' }, params);
    expect(learner.engine).toMatch(/^tfjs-/);
    expectBatchedEqualsLoop(learner, batch, 1e-4);
    learner.dispose();
  });
});

describe('conv body specs', () => {
  it('default to Conv-4 and take their image shape from inputShape', () => {
    const spec = modelSpec('classification', 196, { body: 'conv', inputShape: [14, 14, 1] }, 5);
    expect(spec.channels).toEqual([64, 64, 64, 64]);
    expect(convEmbeddingDim(spec.inputShape!, spec.channels!)).toBe(64); // 14 -> 7 -> 4 -> 2 -> 1
    const params = initModelParams(spec, new Rng(0));
    expect(params['body.1.weight'].shape).toEqual([3, 3, 64, 64]);
    expect(Array.from(params['body.0.scale'].data).every((v) => v === 1)).toBe(true);
    expect(Array.from(params['body.0.offset'].data).every((v) => v === 0)).toBe(true);
    expect(maxAbs({ w: params['body.1.weight'] })).toBeLessThanOrEqual(1 / Math.sqrt(9 * 64));
  });

  it.each([
    [{ body: 'conv' }, /inputShape/],
    [{ body: 'conv', inputShape: [14, 14, 2] }, /inputDim is 196/],
    [{ body: 'conv', inputShape: [14, 14, 1], hidden: [8] }, /hidden applies to the mlp body/],
    [{ inputShape: [14, 14, 1] }, /conv body only/],
    [{ body: 'conv', inputShape: [14, 14, 1], channels: [] }, /channels/],
    [{ body: 'resnet' }, /model.body/],
  ])('reject %j', (config, message) => {
    expect(() => modelSpec('classification', 196, config as never, 5)).toThrow(message);
  });

  it('run second-order MAML on tfjs: the fused kernels are MLP kernels, ONNX Runtime runs first-order bodies only', () => {
    expect(chooseEngine('auto', 'maml', 'conv')).toMatch(/^tfjs-/);
    expect(() => chooseEngine('fused', 'maml', 'conv')).toThrow(/MLP bodies only|not built/);
  });
});
