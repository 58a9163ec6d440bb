/**
 * The hand-written inner-loop gradient (backprop.ts) against tfjs autodiff: the support-loss
 * gradients themselves, the adapted parameters, and meta-gradients taken through the inner loop
 * (second order), for every activation, task kind, adaptation scope and kind of step size.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { throughAdaptation } from '../../../src/meta/algorithms/common.js';
import { ALGORITHMS } from '../../../src/meta/algorithms/index.js';
import { initBackend, tf } from '../../../src/meta/backend.js';
import { layerGradients } from '../../../src/meta/backprop.js';
import { adaptToSupport, lossOn, type AdaptScope, type InnerGradient, type InnerLr, type InnerMonitor } from '../../../src/meta/inner-loop.js';
import { ACTIVATIONS, initModelParams, tileParams, toTensors, type ModelSpec, type NamedTensors, type ParamArrays } from '../../../src/meta/model.js';
import { Rng } from '../../../src/meta/rng.js';
import { batchToTensors } from '../../../src/meta/tensors.js';
import { TASK_KINDS } from '../../../src/meta/types.js';
import { classificationProblem, download, maxAbs, maxAbsDiff, regressionProblem } from './helpers.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const kinds = TASK_KINDS;
const activations = ACTIVATIONS;

function problem(kind: (typeof kinds)[number], activation: (typeof activations)[number]) {
  const config = { hidden: [6, 5], activation };
  return kind === 'regression' ? { ...regressionProblem(31, config), lr: 0.03 } : { ...classificationProblem(32, config), lr: 0.5 };
}

function expectClose(actual: ParamArrays, expected: ParamArrays, tol = 1e-5): void {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const name of Object.keys(expected)) expect(actual[name].shape).toEqual(expected[name].shape);
  expect(maxAbs(expected)).toBeGreaterThan(0);
  expect(maxAbsDiff(actual, expected)).toBeLessThanOrEqual(tol * maxAbs(expected));
}

const LAYERS = (spec: ModelSpec): Array<[string, string]> => [
  ...spec.hidden.map((_, i): [string, string] => [`body.${i}.weight`, `body.${i}.bias`]),
  ['head.weight', 'head.bias'],
];

describe('hand-written support-loss gradient equals autodiff', () => {
  it.each(kinds.flatMap((k) => activations.flatMap((a) => [[k, a, 'shared'], [k, a, 'per-task']] as const)))(
    '%s, %s, %s parameters',
    (kind, activation, layout) => {
      const p = problem(kind, activation);
      const theta = initModelParams(p.spec, new Rng(5));
      const scale = 0.7;
      const layers = LAYERS(p.spec);
      const memory = tf.memory().numTensors;
      const run = (f: (params: NamedTensors, x: tf.Tensor, y: tf.Tensor) => NamedTensors) =>
        download(() => {
          const { support } = batchToTensors(p.spec, p.batch);
          const shared = toTensors(theta);
          return f(layout === 'shared' ? shared : tileParams(shared, p.batch.tasks), support.x, support.y);
        });
      const analytic = run((params, x, y) => {
        const grads = layerGradients(p.spec.kind, activation, layers.map(([w, b]) => ({ weight: params[w], bias: params[b] })), x, y, scale);
        return Object.fromEntries(layers.flatMap(([w, b], i) => [[w, grads[i].weight], [b, grads[i].bias]]));
      });
      const autodiff = run((params, x, y) => {
        const names = Object.keys(params);
        // Per-task gradients: with shared parameters, differentiate a tiled copy of them.
        const start = layout === 'shared' ? tileParams(params, p.batch.tasks) : params;
        const objective = (...t: tf.Tensor[]) =>
          tf.mul(tf.sum(lossOn(p.spec, Object.fromEntries(names.map((n, i) => [n, t[i]])), { x: x as tf.Tensor3D, y: y as tf.Tensor3D })), scale) as tf.Scalar;
        const grads = tf.grads(objective)(names.map((n) => start[n]));
        return Object.fromEntries(names.map((n, i) => [n, grads[i]]));
      });
      expect(tf.memory().numTensors).toBe(memory);
      expectClose(analytic, autodiff);
    },
  );

  it('rejects a mix of shared and per-task layers', () => {
    const p = problem('regression', 'relu');
    tf.tidy(() => {
      const t = toTensors(initModelParams(p.spec, new Rng(5)));
      const tiled = tileParams(t, p.batch.tasks);
      const { support } = batchToTensors(p.spec, p.batch);
      const layers = [
        { weight: t['body.0.weight'], bias: t['body.0.bias'] },
        { weight: tiled['body.1.weight'], bias: tiled['body.1.bias'] },
        { weight: t['head.weight'], bias: t['head.bias'] },
      ];
      expect(() => layerGradients('regression', 'relu', layers, support.x, support.y, 1)).toThrow(/all shared or all per-task/);
    });
  });

  it("step's gradient is zero, so the outer tape treats relu's slope as the constant it is almost everywhere", () => {
    const g = tf.tidy(() => tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.step(x), x)))(tf.tensor1d([-1.5, 0.5, 2])).arraySync());
    expect(g).toEqual([0, 1, 1]);
  });
});

function rates(theta: ParamArrays, seed: number): ParamArrays {
  const rng = new Rng(seed);
  return Object.fromEntries(Object.entries(theta).map(([n, p]) => [n, { shape: [...p.shape], data: p.data.map(() => rng.uniform(0.01, 0.05)) }]));
}

describe('adaptation and meta-gradients through the hand-written inner loop equal autodiff', () => {
  const cases = kinds.flatMap((kind) =>
    activations.flatMap((activation) =>
      (['all', 'head'] as const).flatMap((scope) => [
        [kind, activation, scope, 1, 'shared lr'],
        [kind, activation, scope, 3, 'shared lr'],
        [kind, activation, scope, 2, 'per-parameter lr'],
      ]),
    ),
  ) as Array<[(typeof kinds)[number], (typeof activations)[number], AdaptScope, number, string]>;

  it.each(cases)('%s, %s, scope %s, %i steps, %s', (kind, activation, scope, steps, lrKind) => {
    const p = problem(kind, activation);
    const theta = initModelParams(p.spec, new Rng(7));
    const lrValues = lrKind === 'shared lr' ? undefined : rates(theta, 8);
    const memory = tf.memory().numTensors;
    const adaptWith = (gradient: InnerGradient) => (th: NamedTensors, support: ReturnType<typeof batchToTensors>['support']) => {
      const lr: InnerLr = lrValues ? toTensors(lrValues) : p.lr;
      return adaptToSupport(p.spec, th, support, { scope, steps, lr, gradient });
    };
    const adapted = (gradient: InnerGradient) => download(() => adaptWith(gradient)(toTensors(theta), batchToTensors(p.spec, p.batch).support));
    expectClose(adapted('analytic'), adapted('autodiff'));
    const metaGradient = (gradient: InnerGradient) => {
      let loss = NaN;
      const grads = download(() => {
        const batch = batchToTensors(p.spec, p.batch);
        const g = throughAdaptation(p.spec, toTensors(theta), batch, (th) => adaptWith(gradient)(th, batch.support));
        loss = g.loss.dataSync()[0];
        return g.grads;
      });
      return { loss, grads };
    };
    const analytic = metaGradient('analytic');
    const autodiff = metaGradient('autodiff');
    expect(tf.memory().numTensors).toBe(memory);
    expect(Math.abs(analytic.loss - autodiff.loss)).toBeLessThan(1e-5 * Math.abs(autodiff.loss));
    expectClose(analytic.grads, autodiff.grads, 1e-4);
  });

  it('zero steps returns the tiled starting point, as autodiff does', () => {
    const p = problem('regression', 'relu');
    const theta = initModelParams(p.spec, new Rng(7));
    const run = (gradient: InnerGradient) =>
      download(() => adaptToSupport(p.spec, toTensors(theta), batchToTensors(p.spec, p.batch).support, { scope: 'all', steps: 0, lr: 0.1, gradient }));
    expectClose(run('analytic'), run('autodiff'), 0);
    expect(run('analytic')['head.bias'].shape).toEqual([p.batch.tasks, 1, 1]);
  });

  it('the algorithms use the hand-written loop: MAML adapts exactly like adaptToSupport(analytic)', () => {
    const p = problem('classification', 'relu');
    const theta = initModelParams(p.spec, new Rng(9));
    const viaAlgorithm = download(() => ALGORITHMS.maml.adapt(p.spec, toTensors(theta), batchToTensors(p.spec, p.batch).support, { steps: 2, lr: p.lr }));
    const analytic = download(() =>
      adaptToSupport(p.spec, toTensors(theta), batchToTensors(p.spec, p.batch).support, { scope: 'all', steps: 2, lr: p.lr, gradient: 'analytic' }),
    );
    expectClose(viaAlgorithm, analytic, 0);
  });
});

describe('the guarded inner loop on autodiff (a conv body\'s path) equals the hand-written one', () => {
  it.each(['all', 'head'] as const)('scope %s: the same trace and the same kept iterate, task by task', (scope) => {
    // A step size that makes some tasks' support loss rise: guard 'best' keeps an earlier iterate there.
    const p = { ...regressionProblem(33, { hidden: [6, 5], activation: 'softplus' }), lr: 0.6 };
    const theta = initModelParams(p.spec, new Rng(9));
    const run = (gradient: InnerGradient) => {
      let trace: number[] = [];
      const params = download(() => {
        const monitor: InnerMonitor = { guard: 'best' };
        const adapted = adaptToSupport(p.spec, toTensors(theta), batchToTensors(p.spec, p.batch).support, { scope, steps: 4, lr: p.lr, gradient, monitor });
        trace = Array.from(monitor.trace!.dataSync());
        return adapted;
      });
      return { params, trace };
    };
    const analytic = run('analytic');
    const autodiff = run('autodiff');
    expect(autodiff.trace).toHaveLength(5 * p.batch.tasks);
    autodiff.trace.forEach((loss, i) => expect(Math.abs(loss - analytic.trace[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(analytic.trace[i]))));
    // The check has teeth: some task's loss rose at some step, so the guard chose for it.
    const rose = Array.from({ length: p.batch.tasks }, (_, t) => autodiff.trace.some((loss, i) => i % p.batch.tasks === t && loss > autodiff.trace[t]));
    expect(rose).toContain(true);
    expectClose(autodiff.params, analytic.params, 1e-4);
  });
});

