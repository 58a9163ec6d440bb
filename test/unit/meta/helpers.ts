/** Shared fixtures for the engine tests: small problems, plain-array maths and finite differences. */

import { expect } from 'vitest';
import { ALGORITHM_NAMES, ALGORITHMS, type AlgorithmName, type InnerSettings } from '../../../src/meta/algorithms/index.js';
import { tf } from '../../../src/meta/backend.js';
import { lossOn } from '../../../src/meta/inner-loop.js';
import type { MetaLearner } from '../../../src/meta/learner.js';
import { batchToTensors } from '../../../src/meta/tensors.js';
import { gaussianBlobs, linear, packEpisodes, samplePoolBatch, sinusoid } from '../../../src/meta/families/index.js';
import { modelSpec, toArrays, toTensors, type ModelConfig, type ModelSpec, type NamedTensors, type ParamArrays } from '../../../src/meta/model.js';
import { Rng } from '../../../src/meta/rng.js';
import type { EpisodeBatch, TaskFamily, TaskKind, TaskPool, TrainingBatch } from '../../../src/meta/types.js';

export function sample(family: TaskFamily, rng: Rng, tasks: number, shots: number, queryShots: number, ways?: number): EpisodeBatch {
  return packEpisodes(Array.from({ length: tasks }, () => family.sampleEpisode(rng, 'train', { shots, queryShots, ways })));
}

/** A small regression problem: sinusoid tasks, a small softplus (smooth, for finite differences) MLP. */
export function regressionProblem(seed: number, config: ModelConfig = { hidden: [8, 8], activation: 'softplus' }, tasks = 4) {
  const spec = modelSpec('regression', 1, config);
  return { spec, batch: sample(sinusoid(), new Rng(seed), tasks, 5, 6) };
}

/** A small 3-way classification problem on Gaussian blobs in 2-D. */
export function classificationProblem(seed: number, config: ModelConfig = { hidden: [8, 8], activation: 'softplus' }, tasks = 3) {
  const spec: ModelSpec = modelSpec('classification', 2, config, 3);
  return { spec, batch: sample(gaussianBlobs({ meanScale: 1.5 }, { inputDim: 2, ways: 3 }), new Rng(seed), tasks, 2, 3, 3) };
}

/**
 * A pool of training tasks for the small problems here: sinusoids (or, in more dimensions, linear
 * tasks) for regression; 3-way blobs (3 classes a task) for classification.
 */
export function poolFor(kind: string, inputDim = kind === 'regression' ? 1 : 2): TaskPool {
  const family = kind === 'classification' ? gaussianBlobs({ meanScale: 1.5 }, { inputDim, ways: 3 }) : inputDim === 1 ? sinusoid() : linear({}, { inputDim });
  return family.trainingPool(new Rng(5), 7);
}

/** Evaluates f on uploaded parameters, returning a number (all tensors disposed). */
export function scalarAt(params: ParamArrays, f: (p: NamedTensors) => tf.Tensor): number {
  return tf.tidy(() => f(toTensors(params)).dataSync()[0]);
}

export function mapArrays(params: ParamArrays, f: (name: string, data: Float32Array) => Float32Array): ParamArrays {
  return Object.fromEntries(Object.entries(params).map(([n, p]) => [n, { shape: [...p.shape], data: f(n, p.data) }]));
}

/** A random direction of unit L2 norm over all parameters. */
export function unitDirection(params: ParamArrays, rng: Rng): ParamArrays {
  const dir = mapArrays(params, (_n, d) => Float32Array.from(d, () => rng.normal()));
  const norm = Math.sqrt(Object.values(dir).reduce((s, p) => s + p.data.reduce((a, x) => a + x * x, 0), 0));
  return mapArrays(dir, (_n, d) => d.map((x) => x / norm));
}

export function dot(a: ParamArrays, b: ParamArrays): number {
  return Object.keys(a).reduce((s, n) => s + a[n].data.reduce((acc, x, i) => acc + x * b[n].data[i], 0), 0);
}

/** Central difference of f along direction `dir` at `params` (in float64 arithmetic on float32 losses). */
export function directionalFd(params: ParamArrays, dir: ParamArrays, eps: number, f: (p: ParamArrays) => number): number {
  const plus = mapArrays(params, (n, d) => d.map((x, i) => x + eps * dir[n].data[i]));
  const minus = mapArrays(params, (n, d) => d.map((x, i) => x - eps * dir[n].data[i]));
  return (f(plus) - f(minus)) / (2 * eps);
}

/** Central difference of f with respect to one entry. */
export function entryFd(params: ParamArrays, name: string, index: number, eps: number, f: (p: ParamArrays) => number): number {
  const shift = (sign: number) => mapArrays(params, (n, d) => (n === name ? d.map((x, i) => (i === index ? x + sign * eps : x)) : d));
  return (f(shift(1)) - f(shift(-1))) / (2 * eps);
}

/** The `count` entries with the largest |gradient|, as [name, index]. */
export function largestEntries(grads: ParamArrays, count: number): Array<[string, number]> {
  const all: Array<[string, number, number]> = [];
  for (const [n, p] of Object.entries(grads)) p.data.forEach((g, i) => all.push([n, i, Math.abs(g)]));
  return all.sort((a, b) => b[2] - a[2]).slice(0, count).map(([n, i]) => [n, i]);
}

export function maxAbs(params: ParamArrays): number {
  return Math.max(...Object.values(params).map((p) => p.data.reduce((m, x) => Math.max(m, Math.abs(x)), 0)));
}

export function maxAbsDiff(a: ParamArrays, b: ParamArrays): number {
  return Math.max(...Object.keys(a).map((n) => a[n].data.reduce((m, x, i) => Math.max(m, Math.abs(x - b[n].data[i])), 0)));
}

/** Downloads named tensors computed inside a tidy. */
export function download(f: () => NamedTensors): ParamArrays {
  let out: ParamArrays = {};
  tf.tidy(() => {
    out = toArrays(f());
  });
  return out;
}

/** Relative error with a floor so that near-zero derivatives compare absolutely. */
export function relErr(actual: number, expected: number, floor = 1e-3): number {
  return Math.abs(actual - expected) / Math.max(Math.abs(expected), floor);
}

/** A small 3-way image problem for the conv body: blobs in 5x5x1 (odd sides: the pooling pads). */
export function convClassificationProblem(seed: number, config: ModelConfig = { body: 'conv', inputShape: [5, 5, 1], channels: [3, 4], activation: 'softplus' }, tasks = 3) {
  const spec: ModelSpec = modelSpec('classification', 25, config, 3);
  return { spec, batch: sample(gaussianBlobs({ meanScale: 1.5 }, { inputDim: 25, ways: 3 }), new Rng(seed), tasks, 2, 3, 3) };
}

/** A small regression problem for the conv body: linear tasks on 4x4x2 inputs. */
export function convRegressionProblem(seed: number, config: ModelConfig = { body: 'conv', inputShape: [4, 4, 2], channels: [3, 2], activation: 'softplus' }, tasks = 3) {
  const spec = modelSpec('regression', 32, config);
  return { spec, batch: sample(linear({}, { inputDim: 32 }), new Rng(seed), tasks, 4, 5) };
}

/** A meta-learning problem: a model, one meta-batch and the inner loop's settings. */
export interface MetaProblem {
  spec: ModelSpec;
  batch: EpisodeBatch;
  inner: InnerSettings;
}

/** An episodic algorithm's meta-gradient of `theta` on the problem, downloaded. */
export function metaGradient(name: AlgorithmName, p: MetaProblem, theta: ParamArrays): { loss: number; grads: ParamArrays } {
  const algorithm = ALGORITHMS[name];
  if (algorithm.trainsOn !== 'episodes') throw new Error(`${name} has no episodic meta-gradient`);
  let loss = NaN;
  const grads = download(() => {
    const g = algorithm.metaGradient(p.spec, toTensors(theta), batchToTensors(p.spec, p.batch), p.inner);
    loss = g.loss.dataSync()[0];
    return g.grads;
  });
  return { loss, grads };
}

/**
 * Checks an algorithm's meta-gradient at its initial meta-parameters against central differences of
 * the post-adaptation query loss (what it claims to differentiate), along a random unit direction and
 * at its 3 largest entries; returns the gradient.
 */
export function expectMetaGradientMatchesFd(name: AlgorithmName, p: MetaProblem, eps: number, tol: number): ParamArrays {
  const theta = ALGORITHMS[name].initMetaParams(p.spec, new Rng(3), p.inner);
  const { loss, grads } = metaGradient(name, p, theta);
  const f = (th: ParamArrays) =>
    scalarAt(th, (t) => {
      const tensors = batchToTensors(p.spec, p.batch);
      return tf.mean(lossOn(p.spec, ALGORITHMS[name].adapt(p.spec, t, tensors.support, p.inner), tensors.query));
    });
  expect(loss).toBeCloseTo(f(theta), 5);
  const dir = unitDirection(theta, new Rng(5));
  const fd = directionalFd(theta, dir, eps, f);
  expect(Math.abs(fd)).toBeGreaterThan(1e-3); // the check must have something to compare
  expect(relErr(dot(grads, dir), fd)).toBeLessThan(tol);
  for (const [param, i] of largestEntries(grads, 3)) expect(relErr(grads[param].data[i], entryFd(theta, param, i, eps, f))).toBeLessThan(tol);
  return grads;
}

/**
 * The learner's batched meta-gradient of `batch` equals its per-task loop's (loss to 1e-5, gradient to
 * `tolerance` relative to its largest entry), and is not zero.
 */
export function expectBatchedEqualsLoop(learner: MetaLearner, batch: TrainingBatch, tolerance: number): void {
  let batchedLoss = NaN;
  let loopLoss = NaN;
  const batched = download(() => {
    const g = learner.batchedGradient(batch);
    batchedLoss = g.loss.dataSync()[0];
    return g.grads;
  });
  const loop = download(() => {
    const g = learner.loopGradient(batch);
    loopLoss = g.loss.dataSync()[0];
    return g.grads;
  });
  expect(Math.abs(batchedLoss - loopLoss)).toBeLessThan(1e-5 * Math.max(1, Math.abs(loopLoss)));
  expect(maxAbsDiff(batched, loop)).toBeLessThan(tolerance * maxAbs(loop));
  expect(maxAbs(loop)).toBeGreaterThan(0);
}

/** Every algorithm with every task kind it can meta-learn, as [name, kind] test cases. */
export const ALGORITHM_KIND_CASES: Array<[AlgorithmName, TaskKind]> = ALGORITHM_NAMES.flatMap((a) => ALGORITHMS[a].kinds.map((kind): [AlgorithmName, TaskKind] => [a, kind]));

/**
 * An algorithm's initial meta-parameters and one training batch on a problem: its meta-batch, or,
 * for a pool algorithm, a minibatch of a pool of training tasks (with its pool parameters) in which
 * one task is drawn twice.
 */
export function trainingSetup(name: AlgorithmName, p: MetaProblem): { params: ParamArrays; batch: TrainingBatch } {
  const algorithm = ALGORITHMS[name];
  const params = algorithm.initMetaParams(p.spec, new Rng(9), p.inner);
  if (algorithm.trainsOn !== 'pool') return { params, batch: p.batch };
  const pool = poolFor(p.spec.kind, p.spec.inputDim);
  const batch = samplePoolBatch(pool, new Rng(11), 4, 6, p.spec.inputDim);
  batch.taskIds[3] = batch.taskIds[0];
  return { params: { ...params, ...algorithm.initPoolParams(p.spec, pool.outputs, new Rng(10)) }, batch };
}
