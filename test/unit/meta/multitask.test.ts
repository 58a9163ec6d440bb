/**
 * Multitask (hard parameter sharing): the joint training gradient and the logistic head's gradient
 * against finite differences, the closed-form heads at their optimum, the task pools each family
 * kind builds, and what meta-training keeps (the body in the meta-model, the pool's heads in checkpoints).
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { adapt, type MetaModel } from '../../../src/meta/adapt.js';
import { ALGORITHMS } from '../../../src/meta/algorithms/index.js';
import { POOL_BIAS, POOL_WEIGHT } from '../../../src/meta/algorithms/multitask.js';
import { initBackend, tf } from '../../../src/meta/backend.js';
import { dataset, digits, gaussianBlobs, samplePoolBatch, sinusoid } from '../../../src/meta/families/index.js';
import { logisticHead, logisticObjective, ridgeHead, RIDGE_REGRESSION } from '../../../src/meta/linear-head.js';
import { modelSpec, toTensors, type ModelSpec, type ParamArrays } from '../../../src/meta/model.js';
import { Rng } from '../../../src/meta/rng.js';
import { metaTrain, TrainConfigError, type Checkpoint, type TrainEvent } from '../../../src/meta/train.js';
import type { PoolBatch, TaskFamily } from '../../../src/meta/types.js';
import { directionalFd, dot, download, entryFd, largestEntries, poolFor, relErr, scalarAt, unitDirection } from './helpers.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const multitask = ALGORITHMS.multitask;
const smooth = { hidden: [8, 8], activation: 'softplus' as const };

function poolProblem(kind: 'regression' | 'classification'): { spec: ModelSpec; theta: ParamArrays; batch: PoolBatch } {
  const spec = kind === 'regression' ? modelSpec('regression', 1, smooth) : modelSpec('classification', 2, smooth, 3);
  const pool = poolFor(kind);
  const theta = { ...multitask.initMetaParams(spec, new Rng(3), { steps: 1, lr: 0.1 }), ...multitask.initPoolParams(spec, pool.outputs, new Rng(4)) };
  const batch = samplePoolBatch(pool, new Rng(6), 5, 6, spec.inputDim);
  batch.taskIds[4] = batch.taskIds[1]; // a task drawn twice: its head's gradient sums both
  batch.outputs[4] = batch.outputs[1];
  return { spec, theta, batch };
}

describe('multitask: the joint training gradient', () => {
  it.each(['regression', 'classification'] as const)('matches finite differences of the minibatch loss (%s)', (kind) => {
    const { spec, theta, batch } = poolProblem(kind);
    const memory = tf.memory().numTensors;
    let loss = NaN;
    const grads = download(() => {
      const g = multitask.poolGradient(spec, toTensors(theta), batch);
      loss = g.loss.dataSync()[0];
      return g.grads;
    });
    expect(tf.memory().numTensors).toBe(memory);
    const f = (th: ParamArrays) => scalarAt(th, (t) => multitask.poolGradient(spec, t, batch).loss);
    expect(loss).toBeCloseTo(f(theta), 6);
    // Heads of tasks outside the minibatch get no gradient; the ones in it do.
    const [, embedding, width] = theta[POOL_WEIGHT].shape;
    const headGrad = (id: number) => grads[POOL_WEIGHT].data.subarray(id * embedding * width, (id + 1) * embedding * width);
    const absent = [0, 1, 2, 3, 4, 5, 6].find((id) => !batch.taskIds.includes(id))!;
    expect(headGrad(absent).every((g) => g === 0)).toBe(true);
    expect(headGrad(batch.taskIds[1]).some((g) => g !== 0)).toBe(true);
    const dir = unitDirection(theta, new Rng(7));
    const fd = directionalFd(theta, dir, 1e-2, f);
    expect(Math.abs(fd)).toBeGreaterThan(1e-3);
    expect(relErr(dot(grads, dir), fd)).toBeLessThan(1e-2);
    for (const [name, i] of largestEntries(grads, 4)) expect(relErr(grads[name].data[i], entryFd(theta, name, i, 1e-2, f))).toBeLessThan(1e-2);
  });

  it('a task with fewer classes than the widest: its extra outputs take no part in its loss', () => {
    const { spec, theta, batch } = poolProblem('classification');
    const narrow = { ...batch, outputs: batch.outputs.map(() => 2) };
    const onlyTwo = { ...batch, y: batch.y.map((label) => label % 2) };
    const narrowed = { ...onlyTwo, outputs: narrow.outputs };
    // Changing the third class's head changes nothing when no task has a third class.
    const shifted = structuredClone(theta);
    for (let i = 2; i < shifted[POOL_BIAS].data.length; i += 3) shifted[POOL_BIAS].data[i] += 5;
    const loss = (th: ParamArrays, b: PoolBatch) => scalarAt(th, (t) => multitask.poolGradient(spec, t, b).loss);
    expect(loss(shifted, narrowed)).toBeCloseTo(loss(theta, narrowed), 6);
    expect(loss(shifted, onlyTwo)).not.toBeCloseTo(loss(theta, onlyTwo), 3);
  });
});

describe('multitask: the closed-form heads', () => {
  const rng = new Rng(21);
  const features = (n: number, dim: number) => Float64Array.from({ length: n * dim }, () => rng.normal());

  it.each([
    [5, 8],
    [20, 6],
  ])('ridge regression (n=%i, D=%i) solves its normal equations', (n, dim) => {
    const h = features(n, dim);
    const y = Float64Array.from({ length: n }, () => rng.normal());
    const { weight, bias } = ridgeHead(h, y, n, dim);
    // Gradient of mean((h.w + b - y)^2) + lambda |w|^2 vanishes at the fit.
    const residual = Array.from({ length: n }, (_, i) => h.subarray(i * dim, (i + 1) * dim).reduce((s, v, d) => s + v * weight[d], bias[0]) - y[i]);
    for (let d = 0; d < dim; d++) {
      const g = (2 / n) * residual.reduce((s, r, i) => s + r * h[i * dim + d], 0) + 2 * RIDGE_REGRESSION * weight[d];
      expect(Math.abs(g)).toBeLessThan(1e-9);
    }
    expect(Math.abs(residual.reduce((a, b) => a + b, 0))).toBeLessThan(1e-9);
  });

  it('the logistic objective\u2019s gradient matches finite differences', () => {
    const [n, dim, classes] = [9, 4, 3];
    const h = features(n, dim);
    const labels = Array.from({ length: n }, (_, i) => i % classes);
    const head = { weight: features(dim, classes), bias: features(1, classes) };
    const { weight, bias } = logisticObjective(h, labels, n, dim, classes, head);
    const f = (w: Float64Array, b: Float64Array) => logisticObjective(h, labels, n, dim, classes, { weight: w, bias: b }).value;
    const eps = 1e-6;
    for (let j = 0; j < weight.length; j++) {
      const [plus, minus] = [Float64Array.from(head.weight), Float64Array.from(head.weight)];
      plus[j] += eps;
      minus[j] -= eps;
      expect(weight[j]).toBeCloseTo((f(plus, head.bias) - f(minus, head.bias)) / (2 * eps), 6);
    }
    for (let c = 0; c < classes; c++) {
      const [plus, minus] = [Float64Array.from(head.bias), Float64Array.from(head.bias)];
      plus[c] += eps;
      minus[c] -= eps;
      expect(bias[c]).toBeCloseTo((f(head.weight, plus) - f(head.weight, minus)) / (2 * eps), 6);
    }
  });

  it.each([
    [5, 16, 5],
    [30, 6, 3],
  ])('Newton reaches the logistic optimum (n=%i, D=%i, %i classes): zero gradient at a minimum', (n, dim, classes) => {
    const h = features(n, dim);
    const labels = Array.from({ length: n }, (_, i) => i % classes);
    const fit = logisticHead(h, labels, n, dim, classes);
    const g = logisticObjective(h, labels, n, dim, classes, fit);
    expect(Math.max(...g.weight.map(Math.abs), ...g.bias.map(Math.abs))).toBeLessThan(1e-8);
    // Nearby heads are no better (a minimum, not a saddle or a maximum).
    const nudged = { weight: fit.weight.map((w, j) => w + (j % 2 ? 1e-3 : -1e-3)), bias: fit.bias };
    expect(logisticObjective(h, labels, n, dim, classes, nudged).value).toBeGreaterThan(g.value);
  });

  it('adapting builds an ordinary head: the closed-form fit on the body features of the support set', () => {
    const spec = modelSpec('classification', 2, { hidden: [16, 8] }, 3);
    const model: MetaModel = { algorithm: 'multitask', spec, inner: { steps: 1, lr: 0.1 }, params: multitask.initMetaParams(spec, new Rng(1), { steps: 1, lr: 0.1 }) };
    const support = gaussianBlobs({}, { inputDim: 2, ways: 3 }).sampleEpisode(new Rng(3), 'test', { shots: 4, queryShots: 1, ways: 3 }).support;
    const memory = tf.memory().numTensors;
    const r = adapt(model, support, { steps: 50, lr: 123 });
    expect(tf.memory().numTensors).toBe(memory);
    expect(r.steps).toBe(0);
    expect(Object.keys(r.params)).toEqual(['head.weight', 'head.bias']);
    expect(r.params['head.weight'].shape).toEqual([8, 3]);
    // Steps and lr are not used: the head is the same without them.
    expect(adapt(model, support).params['head.weight'].data).toEqual(r.params['head.weight'].data);
    const h = download(() => ({ h: tf.relu(tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(tf.tensor2d(support.x, [12, 2]), tf.tensor(model.params['body.0.weight'].data, [2, 16])), tf.tensor(model.params['body.0.bias'].data, [16]))), tf.tensor(model.params['body.1.weight'].data, [16, 8])), tf.tensor(model.params['body.1.bias'].data, [8]))) })).h.data;
    const g = logisticObjective(h, Array.from(support.y), 12, 8, 3, { weight: Float64Array.from(r.params['head.weight'].data), bias: Float64Array.from(r.params['head.bias'].data) });
    expect(Math.max(...g.weight.map(Math.abs), ...g.bias.map(Math.abs))).toBeLessThan(1e-4);
  });
});

describe('multitask: task pools and what training keeps', () => {
  it('a generator draws hyper.tasks tasks; digits pools its 24 training classes as one task; a dataset its stored training tasks', () => {
    expect(sinusoid().trainingPool(new Rng(1), 50).outputs).toEqual(Array(50).fill(1));
    expect(gaussianBlobs({}, { inputDim: 2, ways: 4 }).trainingPool(new Rng(1), 3).outputs).toEqual([4, 4, 4]);
    const digitPool = digits().trainingPool!(new Rng(1), 1000);
    expect(digitPool.outputs).toEqual([24]);
    const ex = digitPool.examples(0, new Rng(2), 200);
    expect(new Set(ex.y).size).toBeGreaterThan(20);
    expect(ex.y.every((label) => Number.isInteger(label) && label >= 0 && label < 24)).toBe(true);
    const stored = Array.from({ length: 5 }, (_, t) => ({ x: [[0], [1], [2], [3], [4], [5]], y: t === 0 ? [7, 7, 9, 9, 9, 9] : [0, 0, 1, 1, 2, 2] }));
    const pool = dataset(stored, { kind: 'classification', inputDim: 1, ways: 2 }).trainingPool();
    expect(pool.outputs).toEqual([2, 3, 3, 3]); // task 4 is held out; task 0's labels 7, 9 are its classes 0, 1
    expect(pool.examples(0, new Rng(3), 20).y.every((label) => label === 0 || label === 1)).toBe(true);
  });

  it('the meta-model holds the body only; checkpoints hold the pool heads too, and one of another pool is refused', async () => {
    const config = {
      algorithm: 'multitask' as const,
      model: { hidden: [16, 8] },
      families: gaussianBlobs({}, { inputDim: 2, ways: 3 }),
      hyper: { iterations: 6, metaBatchSize: 4, shots: 2, queryShots: 2, evalEvery: 3, checkpointEvery: 3, evalTasks: 4, tasks: 20 },
    };
    const events: TrainEvent[] = [];
    for await (const e of metaTrain(config)) events.push(e);
    const checkpoint = events.find((e): e is { type: 'checkpoint'; checkpoint: Checkpoint } => e.type === 'checkpoint')!.checkpoint;
    expect(checkpoint.params[POOL_WEIGHT].shape).toEqual([20, 8, 3]);
    const result = events.at(-1);
    if (result?.type !== 'result') throw new Error('no result');
    expect(Object.keys(result.model.params)).toEqual(['body.0.weight', 'body.0.bias', 'body.1.weight', 'body.1.bias']);
    const metrics = events.filter((e) => e.type === 'metrics');
    expect(metrics.every((m) => m.type === 'metrics' && m.valAccuracy !== undefined && Number.isFinite(m.trainLoss))).toBe(true);
    // A checkpoint whose pool does not match the configuration is refused.
    const other = { ...config, hyper: { ...config.hyper, tasks: 21 } };
    await expect(metaTrain(other, { resumeFrom: checkpoint }).next()).rejects.toThrow(TrainConfigError);
  });

  it('a pool whose heads would not fit in memory is refused before training starts', async () => {
    const blobs = gaussianBlobs({}, { inputDim: 2, ways: 1000 });
    await expect(metaTrain({ algorithm: 'multitask', model: { hidden: [512] }, families: blobs, hyper: { iterations: 2, tasks: 100 } }).next()).rejects.toThrow(/hyper.tasks: the pool's heads would hold 51200000 values/);
  });

  it('a family without a task pool is refused before training starts', async () => {
    const clean = sinusoid();
    const noPool: TaskFamily = { name: 'episodes-only', kind: clean.kind, inputDim: clean.inputDim, sampleEpisode: (rng, split, shape) => clean.sampleEpisode(rng, split, shape) };
    await expect(metaTrain({ algorithm: 'multitask', families: noPool, hyper: { iterations: 2 } }).next()).rejects.toThrow(/no pool of training tasks/);
  });
});
