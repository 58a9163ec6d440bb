/**
 * Evaluations (issue 13 item 3, engine): confidence intervals by hand, the grid's rows, the same
 * support sets for every method, and the question an evaluation answers: briefly meta-trained sinusoid
 * MAML adapts to new sines from 5 and 10 points better than the unadapted meta-model and than a model
 * trained from scratch on the support set (checked on 5 training seeds while writing it; the test
 * keeps one, with non-overlapping confidence intervals), and than ridge regression on the raw inputs.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { adaptMany, predict, taskParams, type MetaModel } from '../../../src/meta/adapt.js';
import { ALGORITHMS } from '../../../src/meta/algorithms/index.js';
import { initBackend } from '../../../src/meta/backend.js';
import { evaluateMetaModel, meanCi, SCRATCH_STEPS, type EvaluationRow } from '../../../src/meta/evaluation.js';
import { gaussianBlobs, packEpisodes, sinusoid } from '../../../src/meta/families/index.js';
import { rawPredict } from '../../../src/meta/raw-baseline.js';
import { initMetaParams, MetaLearner, type LearnerConfig } from '../../../src/meta/learner.js';
import { modelSpec } from '../../../src/meta/model.js';
import { Rng } from '../../../src/meta/rng.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const family = sinusoid();

function trainSineMaml(iterations: number): MetaModel {
  const config: LearnerConfig = { algorithm: 'maml', spec: modelSpec('regression', 1, { hidden: [40, 40] }), inner: { steps: 1, lr: 0.01 }, metaLr: 0.003 };
  const learner = new MetaLearner(config, initMetaParams(config, new Rng(1)));
  const rng = new Rng(101);
  try {
    for (let i = 0; i < iterations; i++) learner.metaStep(packEpisodes(Array.from({ length: 8 }, () => family.sampleEpisode(rng, 'train', { shots: 10, queryShots: 10 }))));
    return { algorithm: 'maml', spec: config.spec, params: learner.exportParams(), inner: config.inner };
  } finally {
    learner.dispose();
  }
}

const find = (rows: EvaluationRow[], method: string, shots: number, steps?: number) =>
  rows.find((r) => r.method === method && r.shots === shots && (steps === undefined || r.steps === steps)) as EvaluationRow;

describe('meanCi', () => {
  it('is the mean and 1.96 standard errors', () => {
    const { mean, ci95 } = meanCi([1, 2, 3, 4]);
    expect(mean).toBe(2.5);
    // Sample variance of 1..4 is 5/3; standard error sqrt(5/3 / 4).
    expect(ci95).toBeCloseTo(1.96 * Math.sqrt(5 / 12), 12);
    expect(meanCi([7])).toEqual({ mean: 7, ci95: 0 });
  });
});

describe('evaluateMetaModel', () => {
  it('sinusoid MAML beats unadapted, scratch and raw (ridge on x) at 5 and 10 shots', () => {
    const model = trainSineMaml(1000);
    const rows = evaluateMetaModel(model, family, { shots: [5, 10], steps: [1, 10], tasks: 100, queryShots: 20, seed: 31 });
    expect(rows.map((r) => `${r.method}/${r.shots}/${r.steps}`)).toEqual([
      'adapted/5/1', 'adapted/5/10', 'unadapted/5/0', `scratch/5/${SCRATCH_STEPS}`, 'raw/5/0',
      'adapted/10/1', 'adapted/10/10', 'unadapted/10/0', `scratch/10/${SCRATCH_STEPS}`, 'raw/10/0',
    ]);
    for (const shots of [5, 10]) {
      const adapted = find(rows, 'adapted', shots, 10).loss;
      for (const baseline of ['unadapted', 'scratch', 'raw']) {
        const other = find(rows, baseline, shots).loss;
        expect(adapted.mean + adapted.ci95, `${baseline} at ${shots} shots`).toBeLessThan(other.mean - other.ci95);
      }
    }
  });

  it('scores every method on the same support sets: the unadapted row is the steps-0 adaptation of those tasks', () => {
    const model = trainSineMaml(20);
    const settings = { shots: [5], steps: [0], tasks: 8, queryShots: 10, seed: 4, baselines: ['unadapted' as const, 'scratch' as const, 'multitask' as const] };
    const rows = evaluateMetaModel(model, family, settings);
    // steps 0 through 'adapted' and 'unadapted' are one computation on the same tasks.
    expect(find(rows, 'adapted', 5, 0).loss).toEqual(find(rows, 'unadapted', 5).loss);
    // A multitask model adds its rows on the same tasks: its closed-form head, no inner steps.
    const multitaskModel: MetaModel = { algorithm: 'multitask', spec: model.spec, inner: model.inner, params: ALGORITHMS.multitask.initMetaParams(model.spec, new Rng(2), model.inner) };
    const withMultitask = evaluateMetaModel(model, family, settings, { multitask: multitaskModel });
    expect(withMultitask.slice(0, rows.length)).toEqual(rows);
    const multitask = find(withMultitask, 'multitask', 5);
    expect(multitask.steps).toBe(0);
    // Independently: the same tasks adapted by the multitask model directly.
    const rng = new Rng(settings.seed + 5);
    const episodes = Array.from({ length: settings.tasks }, () => family.sampleEpisode(rng, 'test', { shots: 5, queryShots: settings.queryShots }));
    const direct = adaptMany(multitaskModel, episodes.map((e) => e.support)).map((r, t) => {
      if (r instanceof Error) throw r;
      const values = (predict(model.spec, taskParams(multitaskModel, r.params), episodes[t].query.x) as { values: number[] }).values;
      return values.reduce((a, v, i) => a + (v - episodes[t].query.y[i]) ** 2, 0) / values.length;
    });
    expect(multitask.loss.mean).toBeCloseTo(meanCi(direct).mean, 10);
  });

  it('the raw row is ridge regression fitted to the same support sets, scored on their query sets; `baselines` names the rows run', () => {
    const model = trainSineMaml(20);
    const settings = { shots: [5], steps: [1], tasks: 8, queryShots: 10, seed: 4 };
    const all = evaluateMetaModel(model, family, settings);
    expect(all.map((r) => r.method)).toEqual(['adapted', 'unadapted', 'scratch', 'raw']);
    const only = evaluateMetaModel(model, family, { ...settings, baselines: ['raw'] });
    expect(only.map((r) => r.method)).toEqual(['adapted', 'raw']);
    expect(only[1]).toEqual(find(all, 'raw', 5));
    const rng = new Rng(settings.seed + 5);
    const episodes = Array.from({ length: settings.tasks }, () => family.sampleEpisode(rng, 'test', { shots: 5, queryShots: settings.queryShots }));
    const direct = episodes.map(({ support, query }) => {
      const { values } = rawPredict('regression', support, query.x, 1) as { values: number[] };
      return values.reduce((a, v, i) => a + (v - query.y[i]) ** 2, 0) / query.n;
    });
    expect(find(all, 'raw', 5)).toEqual({ method: 'raw', shots: 5, steps: 0, loss: meanCi(direct), diverged: 0 });
  });

  it('classification rows carry accuracy; a family that does not fit the model is refused', () => {
    const spec = modelSpec('classification', 2, { hidden: [8] }, 3);
    const inner = { steps: 3, lr: 0.1 };
    const model: MetaModel = { algorithm: 'protonet', spec, inner, params: initMetaParams({ algorithm: 'protonet', spec, inner, metaLr: 0.001 }, new Rng(1)) };
    const blobs = gaussianBlobs({}, { inputDim: 2, ways: 3 });
    const rows = evaluateMetaModel(model, blobs, { shots: [1], steps: [3], tasks: 10, queryShots: 5, seed: 1 });
    for (const row of rows) {
      expect(row.accuracy?.mean).toBeGreaterThanOrEqual(0);
      expect(row.accuracy?.mean).toBeLessThanOrEqual(1);
    }
    // Nearest class mean on the raw inputs: blobs are what it solves, far above chance (1/3) from one shot.
    expect(find(rows, 'raw', 1).accuracy!.mean).toBeGreaterThan(0.6);
    expect(() => evaluateMetaModel(model, family, { shots: [1], steps: [1], tasks: 2, queryShots: 2, seed: 1 })).toThrow(RangeError);
  });
});
