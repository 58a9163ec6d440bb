/**
 * bench:meta's PyTorch baselines (bench/pytorch/) compute what the engine computes, so that its speed
 * ratios compare like with like: the batched and the functorch PyTorch meta-gradients equal the
 * per-task loop's, and the batched one equals the engine's on the same parameters and meta-batch, for every algorithm on every timed
 * setting of its task kind. Runs where /usr/bin/python3 (or python3) has torch; skipped, saying why,
 * elsewhere, and failing under CI=true (test/support/requirements.ts).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { learnerConfig, timingSettings } from '../../bench/meta-timing.js';
import { findPytorch, gradientCheck, PytorchServer } from '../../bench/pytorch/baseline.js';
import { ALGORITHM_NAMES, getAlgorithm, initBackend, initMetaParams, MetaLearner, packEpisodes, Rng, tf, type ParamArrays } from '../../src/meta/index.js';
import { describeNeeding, requirement } from '../support/requirements.js';

const pytorch = await findPytorch('auto');

describeNeeding(requirement('torch', pytorch.python ? undefined : pytorch.reason), 'the PyTorch baselines', () => {
  let server: PytorchServer;

  beforeAll(async () => {
    await initBackend('cpu');
    server = await PytorchServer.start(pytorch.python!);
  });

  afterAll(async () => {
    await server?.close();
  });

  it('give the per-task loop\'s meta-gradient batched and with functorch (--check), in float64 exactly and in float32 to rounding', async () => {
    for (const dtype of ['float64', 'float32'] as const) {
      const { checks } = await gradientCheck(pytorch.python!, dtype);
      // Every algorithm on every setting of its kind (5 regression + 6 + 6 classification), in each form.
      const batched = checks.filter((c) => c.form === 'batched');
      expect(batched).toHaveLength(17);
      expect(checks.map((c) => `${c.form} ${c.algorithm} ${c.setting}`).sort()).toEqual(['batched', 'functorch'].flatMap((form) => batched.map((c) => `${form} ${c.algorithm} ${c.setting}`)).sort());
      const tolerance = dtype === 'float64' ? 1e-12 : 2e-6;
      for (const c of checks) {
        const what = `${c.form} ${c.algorithm} on ${c.setting} in ${dtype}`;
        expect(c.maxAbsGradient, what).toBeGreaterThan(1e-4);
        expect(c.maxAbsDiff, what).toBeLessThanOrEqual(tolerance * Math.max(1, c.maxAbsGradient));
        expect(c.lossDiff, what).toBeLessThanOrEqual(tolerance * 10);
      }
    }
  });

  it('compute the engine\'s meta-gradient, for every algorithm on every timed setting of its kind', async () => {
    const settings = Object.values(timingSettings());
    let compared = 0;
    for (const setting of settings) {
      for (const algorithm of ALGORITHM_NAMES) {
        if (algorithm === 'protonet' && setting.family.kind !== 'classification') continue;
        // bench/pytorch implements the episodic algorithms (multitask trains on task-pool minibatches).
        if (getAlgorithm(algorithm).trainsOn !== 'episodes') continue;
        const config = learnerConfig(algorithm, setting.family, setting.hidden, setting.innerSteps, setting.innerLr, setting.metaLr);
        const rng = new Rng(3);
        const params = initMetaParams(config, rng);
        const batch = packEpisodes(Array.from({ length: setting.metaBatchSize }, () => setting.family.sampleEpisode(rng, 'train', setting.shape)));
        const learner = new MetaLearner(config, params);
        const engine = tf.tidy(() => {
          const { loss, grads } = learner.batchedGradient(batch);
          return { loss: loss.dataSync()[0], grads: Object.fromEntries(Object.entries(grads).map(([n, g]) => [n, g.dataSync()])) };
        });
        learner.dispose();
        const theirs = await server.request<{ loss: number; grads: Record<string, number[]> }>({
          op: 'gradient',
          algorithm,
          setting: setting.name,
          params: plain(params),
          batch: { support: { x: Array.from(batch.support.x), y: Array.from(batch.support.y) }, query: { x: Array.from(batch.query.x), y: Array.from(batch.query.y) } },
        });
        const what = `${algorithm} on ${setting.name}`;
        expect(Object.keys(theirs.grads), what).toEqual(Object.keys(engine.grads));
        let scale = 0;
        let diff = 0;
        for (const [name, ours] of Object.entries(engine.grads)) {
          ours.forEach((g, i) => {
            scale = Math.max(scale, Math.abs(g));
            diff = Math.max(diff, Math.abs(g - theirs.grads[name][i]));
          });
        }
        expect(scale, what).toBeGreaterThan(1e-4);
        // float32 on both sides, summed in different orders.
        expect(diff, what).toBeLessThanOrEqual(1e-4 * Math.max(1, scale));
        expect(Math.abs(theirs.loss - engine.loss), what).toBeLessThanOrEqual(1e-5 * Math.max(1, engine.loss));
        compared++;
      }
    }
    expect(compared).toBe(17);
  }, 120_000);
});

function plain(params: ParamArrays): Record<string, { shape: number[]; data: number[] }> {
  return Object.fromEntries(Object.entries(params).map(([n, { shape, data }]) => [n, { shape, data: Array.from(data) }]));
}
