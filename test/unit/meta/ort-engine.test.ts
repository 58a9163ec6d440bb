/**
 * The ONNX Runtime engine for conv bodies (src/meta/ort/): the body's graphs against the tfjs body
 * (forward to 1e-5; the backward graph's vector-Jacobian product against tfjs' gradient to 1e-4
 * relative and against central differences), the meta-gradient of every algorithm it runs against
 * the tfjs engine's (1e-4 relative) and against central differences of its own losses (see
 * `differentiated`), training (same seed, same bytes), evaluation and adaptation against tfjs (on
 * tfjs for algorithms that adapt the body), and chooseEngine's decision.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { ALGORITHMS, type AlgorithmName, type InnerSettings } from '../../../src/meta/algorithms/index.js';
import type { Gradients } from '../../../src/meta/adam.js';
import { adaptMany, predict } from '../../../src/meta/adapt.js';
import { initBackend, tf } from '../../../src/meta/backend.js';
import { chooseEngine } from '../../../src/meta/engine.js';
import { MetaLearner, type LearnerConfig } from '../../../src/meta/learner.js';
import { embed, HEAD_NAMES, initModelParams, modelSpec, toTensors, type ModelConfig, type ModelSpec, type ParamArrays } from '../../../src/meta/model.js';
import { ortBodyPass, ortEmbed } from '../../../src/meta/ort/body.js';
import { ortAdaptTask, ortMetaGradient, ortThreads } from '../../../src/meta/ort/index.js';
import { sliceEpisodeBatch } from '../../../src/meta/tensors.js';
import { Rng } from '../../../src/meta/rng.js';
import { gaussianBlobs, samplePoolBatch } from '../../../src/meta/families/index.js';
import type { PoolBatch, TrainingBatch } from '../../../src/meta/types.js';
import { metaTrain, type TrainEvent } from '../../../src/meta/train.js';
import { convClassificationProblem, convRegressionProblem, directionalFd, dot, download, entryFd, largestEntries, maxAbs, maxAbsDiff, metaGradient, poolFor, relErr, unitDirection, type MetaProblem } from './helpers.js';

beforeAll(async () => {
  await initBackend('cpu');
});

// As conv.test.ts: a larger step crosses the max pooling's switches.
const EPS = 1e-3;
const TOL = 1e-2;

const uniform = (length: number, seed: number, low = -1) => {
  const rng = new Rng(seed);
  return Float32Array.from({ length }, () => rng.uniform(low, 1));
};

/** Images whose left half is background (0): windows of equal activations, ties the max pool must route to their first entry, as tfjs does. */
const withBackground = (x: Float32Array, inputDim: number, width: number, channels: number) =>
  x.map((v, i) => (Math.floor((i % inputDim) / channels) % width < width / 2 ? 0 : v));

const BODIES: Array<[string, ModelConfig]> = [
  ['relu, odd sides', { body: 'conv', inputShape: [7, 5, 2], channels: [4, 3], activation: 'relu' }],
  ['softplus, three blocks', { body: 'conv', inputShape: [6, 6, 1], channels: [3, 4, 2], activation: 'softplus' }],
];

describe('conv body graphs on ONNX Runtime', () => {
  it.each(BODIES)('%s: forward equals the tfjs body to 1e-5, the backward graph its gradient to 1e-4', (_name, config) => {
    const spec = modelSpec('classification', config.inputShape!.reduce((a, b) => a * b, 1), config, 3);
    const params = initModelParams(spec, new Rng(1));
    const n = 6;
    const [, width, channels] = config.inputShape!;
    const x = withBackground(uniform(n * spec.inputDim, 2), spec.inputDim, width, channels);
    const ours = ortEmbed(spec, params, x, n);
    const theirs = tf.tidy(() => embed(spec, toTensors(params), tf.tensor2d(x, [n, spec.inputDim])).dataSync());
    expect(ours.length).toBe(theirs.length);
    expect(Math.max(...ours.map((v, i) => Math.abs(v - theirs[i])))).toBeLessThan(1e-5);
    const seed = uniform(ours.length, 3);
    const pass = ortBodyPass(spec, params, x, n);
    expect(Array.from(pass.embeddings)).toEqual(Array.from(ours));
    const grads = pass.backward(seed);
    const names = Object.keys(params).filter((name) => name.startsWith('body.'));
    const reference = tf.tidy(() => {
      const theta = toTensors(params);
      const objective = (...p: tf.Tensor[]) => tf.sum(tf.mul(embed(spec, Object.fromEntries(names.map((name, i) => [name, p[i]])), tf.tensor2d(x, [n, spec.inputDim])), tf.tensor2d(seed, [n, ours.length / n])));
      return tf.grads(objective)(names.map((name) => theta[name])).map((g) => g.dataSync() as Float32Array);
    });
    const asArrays = (data: Float32Array[]): ParamArrays => Object.fromEntries(names.map((name, i) => [name, { shape: params[name].shape, data: data[i] }]));
    const expected = asArrays(reference);
    const actual = asArrays(names.map((name) => grads[name]));
    expect(maxAbs(expected)).toBeGreaterThan(0.1);
    for (const name of names) expect(maxAbsDiff({ [name]: actual[name] }, { [name]: expected[name] }), name).toBeLessThan(1e-4 * maxAbs({ [name]: expected[name] }));
    // And against central differences of <seed, embedding> along a random direction of the body.
    const body = Object.fromEntries(names.map((name) => [name, params[name]]));
    const f = (p: ParamArrays) => ortEmbed(spec, p, x, n).reduce((s, v, i) => s + v * seed[i], 0);
    const dir = unitDirection(body, new Rng(4));
    const fd = directionalFd(body, dir, EPS, f);
    expect(Math.abs(fd)).toBeGreaterThan(1e-2);
    expect(relErr(dot(actual, dir), fd)).toBeLessThan(TOL);
  });
});

describe('embedding many images', () => {
  it('runs a batch beyond a chunk in padded chunks, equal to the tfjs body', () => {
    const spec = modelSpec('classification', 16, { body: 'conv', inputShape: [4, 4, 1], channels: [3], activation: 'relu' }, 2);
    const params = initModelParams(spec, new Rng(1));
    const n = 300; // two chunks of 128 and a padded one of 44
    const x = uniform(n * spec.inputDim, 6);
    const ours = ortEmbed(spec, params, x, n);
    const theirs = tf.tidy(() => embed(spec, toTensors(params), tf.tensor2d(x, [n, spec.inputDim])).dataSync());
    expect(ours.length).toBe(theirs.length);
    expect(Math.max(...ours.map((v, i) => Math.abs(v - theirs[i])))).toBeLessThan(1e-5);
  });
});

/** The problems the engine's algorithms run on: classification (ProtoNets, ANIL) and regression (ANIL). */
function problems(algorithm: AlgorithmName): Array<[string, MetaProblem]> {
  const inner = { steps: 2, lr: 0.3 };
  const classification: [string, MetaProblem] = ['classification', { ...convClassificationProblem(21), inner }];
  const regression: [string, MetaProblem] = ['regression', { ...convRegressionProblem(22), inner: { steps: 2, lr: 0.05 } }];
  return ALGORITHMS[algorithm].kinds.includes('regression') ? [classification, regression] : [classification];
}

const CASES: Array<[AlgorithmName, boolean, string, MetaProblem]> = [
  ...problems('protonet').map(([kind, p]): [AlgorithmName, boolean, string, MetaProblem] => ['protonet', false, kind, p]),
  ...problems('anil').map(([kind, p]): [AlgorithmName, boolean, string, MetaProblem] => ['anil', false, kind, p]),
  ['anil', true, 'classification', { ...convClassificationProblem(23), inner: { steps: 2, lr: 0.4 } }],
  ...problems('fomaml').map(([kind, p]): [AlgorithmName, boolean, string, MetaProblem] => ['fomaml', false, kind, p]),
  ['fomaml', true, 'classification', { ...convClassificationProblem(23), inner: { steps: 2, lr: 0.4 } }],
  ...problems('reptile').map(([kind, p]): [AlgorithmName, boolean, string, MetaProblem] => ['reptile', false, kind, p]),
  ['reptile', true, 'classification', { ...convClassificationProblem(23), inner: { steps: 2, lr: 0.4 } }],
];

/** The episodes' support sets as their query sets too: a loss of the support sets. */
const supportAsQuery = (batch: MetaProblem['batch']): MetaProblem['batch'] => ({ ...batch, querySize: batch.supportSize, query: batch.support });

/**
 * What central differences check of a meta-gradient, from the engine's own losses, and where:
 * ProtoNets and ANIL differentiate their loss at theta. FOMAML takes the query loss's gradient at the
 * adapted parameters phi: on one task, its meta-gradient is the gradient at phi of its loss with no
 * inner step. Reptile's theta - phi is the sum of the inner steps, each lr x the support loss's
 * gradient at the step's start: on one task, the second step's, (theta - phi_2) - (theta - phi_1),
 * is lr x the gradient at phi_1 of the support loss (FOMAML's loss with no inner step, on the support
 * set), which a zero head leaves non-zero for the body (phi_1's head is not zero).
 */
function differentiated(algorithm: AlgorithmName, p: MetaProblem, theta: ParamArrays): { grads: Gradients; f: (th: ParamArrays) => number; at: ParamArrays } {
  const loss = (name: AlgorithmName, inner: InnerSettings, batch: MetaProblem['batch']) => (th: ParamArrays) => ortMetaGradient(name, p.spec, inner, th, batch).loss;
  const still = { ...p.inner, steps: 0 };
  if (algorithm === 'fomaml') {
    const one = sliceEpisodeBatch(p.batch, 0);
    const at = ortAdaptTask(p.spec, p.inner, theta, { n: one.supportSize, ...one.support });
    return { grads: ortMetaGradient(algorithm, p.spec, p.inner, theta, one).grads, f: loss(algorithm, still, one), at };
  }
  if (algorithm === 'reptile') {
    const one = sliceEpisodeBatch(p.batch, 0);
    const [first, second] = [1, 2].map((steps) => ortMetaGradient(algorithm, p.spec, { ...p.inner, steps }, theta, one).grads);
    const at = Object.fromEntries(Object.entries(theta).map(([name, q]) => [name, { shape: q.shape, data: q.data.map((v, i) => v - first[name][i]) }]));
    const grads = Object.fromEntries(Object.keys(theta).map((name) => [name, second[name].map((g, i) => (g - first[name][i]) / p.inner.lr)]));
    return { grads, f: loss('fomaml', still, supportAsQuery(one)), at };
  }
  return { grads: ortMetaGradient(algorithm, p.spec, p.inner, theta, p.batch).grads, f: loss(algorithm, p.inner, p.batch), at: theta };
}

describe('meta-gradients on ONNX Runtime', () => {
  it.each(CASES)('%s (zero head: %s), %s: equals the tfjs engine to 1e-4 and central differences', (algorithm, zeroHead, _kind, p) => {
    const theta = ALGORITHMS[algorithm].initMetaParams(p.spec, new Rng(3), p.inner);
    if (zeroHead) for (const name of HEAD_NAMES) theta[name].data.fill(0);
    const ours = ortMetaGradient(algorithm, p.spec, p.inner, theta, p.batch);
    const theirs = metaGradient(algorithm, p, theta);
    expect(Object.keys(ours.grads).sort()).toEqual(Object.keys(theirs.grads).sort());
    expect(relErr(ours.loss, theirs.loss, 1)).toBeLessThan(1e-5);
    const actual: ParamArrays = Object.fromEntries(Object.entries(theirs.grads).map(([name, g]) => [name, { shape: g.shape, data: ours.grads[name] }]));
    expect(maxAbs(theirs.grads)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(actual, theirs.grads)).toBeLessThan(1e-4 * maxAbs(theirs.grads));
    // Central differences of the engine's own losses (zero head: the head is not meta-trained, so only the body moves).
    const { grads, f, at } = differentiated(algorithm, p, theta);
    const moving = zeroHead ? Object.fromEntries(Object.entries(at).filter(([name]) => name.startsWith('body.'))) : at;
    const fixed = zeroHead ? Object.fromEntries(HEAD_NAMES.map((name) => [name, at[name]])) : {};
    const fOf = (m: ParamArrays) => f({ ...m, ...fixed });
    const movingGrads = Object.fromEntries(Object.keys(moving).map((name) => [name, { shape: at[name].shape, data: grads[name] }]));
    const dir = unitDirection(moving, new Rng(5));
    const fd = directionalFd(moving, dir, EPS, fOf);
    expect(Math.abs(fd)).toBeGreaterThan(1e-3);
    expect(relErr(dot(movingGrads, dir), fd)).toBeLessThan(TOL);
    for (const [name, i] of largestEntries(movingGrads, 3)) expect(relErr(movingGrads[name].data[i], entryFd(moving, name, i, EPS, fOf)), `${name}[${i}]`).toBeLessThan(TOL);
  });
});

/** Multitask's problems: a minibatch of a pool of tasks on the conv problems' inputs, the pool's heads with the body. */
function poolProblems(): Array<[string, { spec: ModelSpec; batch: PoolBatch; theta: ParamArrays }]> {
  return (['classification', 'regression'] as const).map((kind) => {
    const { spec } = kind === 'classification' ? convClassificationProblem(24) : convRegressionProblem(25);
    const pool = poolFor(kind, spec.inputDim);
    const batch = samplePoolBatch(pool, new Rng(6), 4, 5, spec.inputDim);
    batch.taskIds[3] = batch.taskIds[1]; // a task drawn twice: its head's gradient sums both
    batch.outputs[3] = batch.outputs[1];
    const multitask = ALGORITHMS.multitask;
    return [kind, { spec, batch, theta: { ...multitask.initMetaParams(spec, new Rng(3), { steps: 1, lr: 0.1 }), ...multitask.initPoolParams(spec, pool.outputs, new Rng(4)) } }];
  });
}

describe('multitask pool gradients on ONNX Runtime', () => {
  it.each(poolProblems())('%s: equals the tfjs engine to 1e-4 and central differences', (_kind, { spec, batch, theta }) => {
    const ours = ortMetaGradient('multitask', spec, { steps: 1, lr: 0.1 }, theta, batch);
    let loss = NaN;
    const theirs = download(() => {
      const g = ALGORITHMS.multitask.poolGradient(spec, toTensors(theta), batch);
      loss = g.loss.dataSync()[0];
      return g.grads;
    });
    expect(Object.keys(ours.grads).sort()).toEqual(Object.keys(theirs).sort());
    expect(relErr(ours.loss, loss, 1)).toBeLessThan(1e-5);
    const actual: ParamArrays = Object.fromEntries(Object.entries(theirs).map(([name, g]) => [name, { shape: g.shape, data: ours.grads[name] }]));
    expect(maxAbs(theirs)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(actual, theirs)).toBeLessThan(1e-4 * maxAbs(theirs));
    const f = (th: ParamArrays) => ortMetaGradient('multitask', spec, { steps: 1, lr: 0.1 }, th, batch).loss;
    const dir = unitDirection(theta, new Rng(5));
    const fd = directionalFd(theta, dir, EPS, f);
    expect(Math.abs(fd)).toBeGreaterThan(1e-3);
    expect(relErr(dot(actual, dir), fd)).toBeLessThan(TOL);
    for (const [name, i] of largestEntries(actual, 3)) expect(relErr(actual[name].data[i], entryFd(theta, name, i, EPS, f)), `${name}[${i}]`).toBeLessThan(TOL);
  });

  it('refuses a meta-batch of episodes for multitask, and a pool minibatch for an episodic algorithm', () => {
    const [[, { spec, batch, theta }]] = poolProblems();
    const episodes = convClassificationProblem(24).batch;
    expect(() => ortMetaGradient('multitask', spec, { steps: 1, lr: 0.1 }, theta, episodes)).toThrow(/multitask trains on task-pool minibatches/);
    expect(() => ortMetaGradient('anil', spec, { steps: 1, lr: 0.1 }, theta, batch)).toThrow(/anil trains on meta-batches of episodes/);
  });
});

describe('training, evaluation and adaptation on ONNX Runtime', () => {
  const p = { ...convClassificationProblem(31), inner: { steps: 1, lr: 0.4 } };
  const config = (algorithm: AlgorithmName, engine: LearnerConfig['engine'], zeroHead = false, inner = p.inner): LearnerConfig => ({ algorithm, spec: p.spec, inner, metaLr: 0.01, engine, zeroHead });

  // Reptile with a zero head takes two inner steps: after one, its body's meta-gradient is zero
  // (the zero head's output does not depend on the body), and Adam would step on tfjs' rounding of it.
  it.each([
    ['protonet', false, 1],
    ['anil', false, 1],
    ['anil', true, 1],
    ['multitask', false, 1],
    ['fomaml', false, 1],
    ['fomaml', true, 1],
    ['reptile', false, 1],
    ['reptile', true, 2],
  ] as const)('%s (zero head: %s, inner steps %s): three meta-steps track tfjs, and the same seed gives the same bytes', (algorithm, zeroHead, steps) => {
    const learned = ALGORITHMS[algorithm];
    const pool = poolFor('classification', p.spec.inputDim);
    const start = { ...learned.initMetaParams(p.spec, new Rng(7), p.inner), ...(learned.trainsOn === 'pool' ? learned.initPoolParams(p.spec, pool.outputs, new Rng(9)) : {}) };
    const batch: TrainingBatch = learned.trainsOn === 'pool' ? samplePoolBatch(pool, new Rng(10), 3, 4, p.spec.inputDim) : p.batch;
    const run = (engine: LearnerConfig['engine']) => {
      const learner = new MetaLearner(config(algorithm, engine, zeroHead, { ...p.inner, steps }), start);
      const losses = [0, 1, 2].map(() => learner.metaStep(batch));
      const params = learner.exportParams();
      learner.dispose();
      return { engine: learner.engine, losses, params };
    };
    const [a, b, reference] = [run('ort'), run('ort'), run('tfjs')];
    expect(a.engine).toBe('onnxruntime');
    expect(reference.engine).toBe('tfjs-cpu');
    for (const name of Object.keys(a.params)) expect(Buffer.from(a.params[name].data.buffer).equals(Buffer.from(b.params[name].data.buffer)), name).toBe(true);
    a.losses.forEach((loss, i) => expect(relErr(loss, reference.losses[i], 1)).toBeLessThan(1e-4));
    // Adam normalises each step, so parameters agree to float32 noise relative to the step size.
    expect(maxAbsDiff(a.params, reference.params)).toBeLessThan(1e-4);
    expect(maxAbsDiff(a.params, start)).toBeGreaterThan(1e-3);
  });

  it.each(['protonet', 'anil', 'multitask'] as const)('%s: evaluation and adaptation equal tfjs', (algorithm) => {
    const params = ALGORITHMS[algorithm].initMetaParams(p.spec, new Rng(8), p.inner);
    const [ort, tfjs] = [new MetaLearner(config(algorithm, 'ort'), params), new MetaLearner(config(algorithm, 'tfjs'), params)];
    const [ours, theirs] = [ort.evaluate(p.batch), tfjs.evaluate(p.batch)];
    ort.dispose();
    tfjs.dispose();
    ours.taskLosses.forEach((loss, t) => expect(relErr(loss, theirs.taskLosses[t], 1)).toBeLessThan(1e-4));
    expect(ours.taskAccuracies).toEqual(theirs.taskAccuracies);
    const model = { algorithm, spec: p.spec, params, inner: p.inner };
    const n = p.batch.supportSize;
    const supports = [0, 1].map((t) => ({ n, x: p.batch.support.x.subarray(t * n * p.spec.inputDim, (t + 1) * n * p.spec.inputDim), y: p.batch.support.y.subarray(t * n, (t + 1) * n) }));
    const [a, b] = [adaptMany(model, supports, {}, 'ort'), adaptMany(model, supports, {}, 'tfjs')];
    a.forEach((result, t) => {
      const other = b[t];
      if (result instanceof Error || other instanceof Error) throw new Error('adaptation failed');
      expect(Object.keys(result.params).sort()).toEqual(Object.keys(other.params).sort());
      expect(maxAbsDiff(result.params, other.params)).toBeLessThan(1e-4 * Math.max(1, maxAbs(other.params)));
      expect(relErr(result.supportLossAfter, other.supportLossAfter, 1)).toBeLessThan(1e-4);
      const task = { ...params, ...result.params };
      const query = p.batch.query.x.subarray(t * p.batch.querySize * p.spec.inputDim, (t + 1) * p.batch.querySize * p.spec.inputDim);
      const [pa, pb] = [predict(p.spec, task, query, 'ort'), predict(p.spec, task, query, 'tfjs')];
      if (pa.kind !== 'classification' || pb.kind !== 'classification') throw new Error('expected classification');
      expect(pa.labels).toEqual(pb.labels);
      pa.probabilities.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - pb.probabilities[i][j])).toBeLessThan(1e-5)));
    });
  });
});

describe('algorithms that adapt the body, trained on ONNX Runtime', () => {
  const p = { ...convClassificationProblem(32), inner: { steps: 2, lr: 0.4 } };

  it.each(['fomaml', 'reptile'] as const)('%s: evaluation and adaptation run on tfjs (adapting on embeddings would keep the body fixed)', (algorithm) => {
    const params = ALGORITHMS[algorithm].initMetaParams(p.spec, new Rng(8), p.inner);
    const config = (engine: LearnerConfig['engine']): LearnerConfig => ({ algorithm, spec: p.spec, inner: p.inner, metaLr: 0.01, engine });
    const [ort, tfjs] = [new MetaLearner(config('ort'), params), new MetaLearner(config('tfjs'), params)];
    expect(ort.engine).toBe('onnxruntime');
    const [ours, theirs] = [ort.evaluate(p.batch), tfjs.evaluate(p.batch)];
    ort.dispose();
    tfjs.dispose();
    expect(ours).toEqual(theirs);
    const model = { algorithm, spec: p.spec, params, inner: p.inner };
    const n = p.batch.supportSize;
    const support = { n, x: p.batch.support.x.subarray(0, n * p.spec.inputDim), y: p.batch.support.y.subarray(0, n) };
    const [a, b] = [adaptMany(model, [support]), adaptMany(model, [support], {}, 'tfjs')];
    expect(a).toEqual(b);
    const [adapted] = a;
    if (adapted instanceof Error) throw adapted;
    expect(Object.keys(adapted.params).some((name) => name.startsWith('body.'))).toBe(true);
    expect(() => adaptMany(model, [support], {}, 'ort')).toThrow(new RegExp(`adapts algorithms that keep the body fixed, not '${algorithm}'`));
  });
});

describe('meta-training names its engine', () => {
  it('a conv ProtoNets run reports onnxruntime, the same run on tfjs reports tfjs', async () => {
    const family = gaussianBlobs({ meanScale: 1.5 }, { inputDim: 25, ways: 3 });
    const run = async (engine: 'auto' | 'tfjs') => {
      const config = { algorithm: 'protonet' as const, model: { body: 'conv' as const, inputShape: [5, 5, 1], channels: [3, 4] }, families: family, engine, hyper: { iterations: 2, metaBatchSize: 2, shots: 2, queryShots: 2, ways: 3, evalEvery: 2, checkpointEvery: 2, seed: 1 } };
      for await (const event of metaTrain(config) as AsyncGenerator<TrainEvent>) if (event.type === 'result') return event.engine;
      throw new Error('no result');
    };
    expect(await run('auto')).toBe('onnxruntime');
    expect(await run('tfjs')).toBe('tfjs-cpu');
  });
});

describe('chooseEngine with ONNX Runtime', () => {
  it('takes ONNX Runtime for conv bodies and the algorithms it runs, tfjs for the rest', () => {
    expect(chooseEngine('auto', 'protonet', 'conv')).toBe('onnxruntime');
    expect(chooseEngine('auto', 'anil', 'conv')).toBe('onnxruntime');
    expect(chooseEngine('auto', 'multitask', 'conv')).toBe('onnxruntime');
    expect(chooseEngine('auto', 'fomaml', 'conv')).toBe('onnxruntime');
    expect(chooseEngine('auto', 'reptile', 'conv')).toBe('onnxruntime');
    expect(chooseEngine('auto', undefined, 'conv')).toBe('onnxruntime');
    expect(chooseEngine('auto', 'maml', 'conv')).toBe('tfjs-cpu');
    expect(chooseEngine('auto', 'metasgd', 'conv')).toBe('tfjs-cpu');
    expect(chooseEngine('tfjs', 'protonet', 'conv')).toBe('tfjs-cpu');
    expect(() => chooseEngine('ort', 'maml', 'conv')).toThrow(/no version of algorithm 'maml'/);
    expect(() => chooseEngine('ort', 'protonet', 'mlp')).toThrow(/conv bodies only/);
  });

  it('reads ORT_THREADS: one thread by default, a positive integer otherwise', () => {
    expect(ortThreads({})).toBe(1);
    expect(ortThreads({ ORT_THREADS: '4' })).toBe(4);
    expect(() => ortThreads({ ORT_THREADS: '0' })).toThrow(/ORT_THREADS/);
    expect(() => ortThreads({ ORT_THREADS: 'two' })).toThrow(/ORT_THREADS/);
  });
});
