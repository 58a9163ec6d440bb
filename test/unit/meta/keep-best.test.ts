/**
 * hyper.keepBest: the result holds the meta-parameters of the best validation evaluation (the top of
 * a plain sort of the run's evaluations), byte for byte those the learner had at that iteration (a
 * checkpoint taken there), when a later evaluation is worse; keepBest false holds the last
 * iteration's; a run resumed after its best still stores it; every algorithm, a conv body and a zero
 * head; each evaluation's intervals come from per-task scores that both engines agree on.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { ALGORITHM_NAMES, ALGORITHMS, POOL_PREFIX, type AlgorithmName } from '../../../src/meta/algorithms/index.js';
import { initBackend } from '../../../src/meta/backend.js';
import { meanCi } from '../../../src/meta/evaluation.js';
import { digits, gaussianBlobs, packEpisodes, sinusoid } from '../../../src/meta/families/index.js';
import { MetaLearner, type LearnerConfig } from '../../../src/meta/learner.js';
import { HEAD_NAMES, modelSpec, type ParamArrays } from '../../../src/meta/model.js';
import { Rng } from '../../../src/meta/rng.js';
import type { MetricsPoint } from '../../../src/meta/selection.js';
import { metaTrain, type Checkpoint, type TrainConfig, type TrainEvent } from '../../../src/meta/train.js';

beforeAll(async () => {
  await initBackend('cpu');
});

type Result = Extract<TrainEvent, { type: 'result' }>;

async function run(config: TrainConfig, resumeFrom?: Checkpoint) {
  const metrics: MetricsPoint[] = [];
  /** The best so far that each metrics event names. */
  const bests: MetricsPoint[] = [];
  const checkpoints: Checkpoint[] = [];
  let result: Result | undefined;
  for await (const e of metaTrain(config, { resumeFrom })) {
    if (e.type === 'metrics') {
      const { type: _type, best, ...point } = e;
      metrics.push(point);
      bests.push(best);
    }
    if (e.type === 'checkpoint') checkpoints.push(e.checkpoint);
    if (e.type === 'result') result = e;
  }
  if (!result) throw new Error('no result');
  return { metrics, bests, checkpoints, result };
}

/** The best evaluation the plain way: lowest loss (regression) or highest accuracy then lowest loss; the earliest of equals. */
function plainBest(points: MetricsPoint[]): MetricsPoint {
  const key = (p: MetricsPoint) => (p.valAccuracy === undefined ? [p.valLoss] : [-p.valAccuracy, p.valLoss]);
  return [...points].sort((a, b) => key(a)[0] - key(b)[0] || (key(a)[1] ?? 0) - (key(b)[1] ?? 0) || a.iteration - b.iteration)[0];
}

const metaOnly = (params: ParamArrays) => Object.fromEntries(Object.entries(params).filter(([name]) => !name.startsWith(POOL_PREFIX)));
const bytes = (params: ParamArrays) => Object.fromEntries(Object.entries(params).map(([name, { data }]) => [name, Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64')]));

/**
 * MAML on sinusoids with an outer step far too large for it: validation improves, then worsens
 * (finite throughout). Checkpoints at every evaluation, so the learner's parameters at each are on
 * record.
 */
function overshooting(hyper: TrainConfig['hyper'] = {}): TrainConfig {
  return {
    algorithm: 'maml',
    model: { hidden: [16, 16] },
    families: sinusoid(),
    hyper: { iterations: 40, metaBatchSize: 4, shots: 5, queryShots: 5, evalEvery: 4, checkpointEvery: 4, evalTasks: 16, metaLr: 0.2, seed: 3, ...hyper },
  };
}

describe('keepBest', () => {
  it('stores the best evaluation, byte for byte the parameters at its iteration, when the last is worse', async () => {
    const { metrics, bests, checkpoints, result } = await run(overshooting());
    const best = plainBest(metrics);
    // The construction holds: the best comes before the end and the last is worse.
    expect(best.iteration).toBeLessThan(40);
    expect(metrics.at(-1)!.valLoss).toBeGreaterThan(best.valLoss * 1.1);
    // Every metrics event names the best so far.
    bests.forEach((named, i) => expect(named).toEqual(plainBest(metrics.slice(0, i + 1))));
    expect(result).toMatchObject({ keptBest: true, evaluation: best, best, last: { iteration: 40 }, valLoss: best.valLoss });
    const atBest = checkpoints.find((c) => c.iteration === best.iteration)!;
    expect(bytes(result.model.params)).toEqual(bytes(metaOnly(atBest.params)));
    // Each point carries its intervals: finite and positive over 16 tasks.
    for (const m of metrics) expect(m.valLossCi95).toBeGreaterThan(0);
  });

  it('keepBest false stores the last iteration, and still reports the best', async () => {
    const kept = await run(overshooting());
    const { result } = await run(overshooting({ keepBest: false }));
    expect(result).toMatchObject({ keptBest: false, evaluation: { iteration: 40 }, best: kept.result.best });
    expect(result.evaluation).toEqual(result.last);
    // The parameters after 40 iterations, as a longer run's checkpoint at 40 holds them.
    const longer = await run(overshooting({ iterations: 44 }));
    expect(bytes(result.model.params)).toEqual(bytes(metaOnly(longer.checkpoints.find((c) => c.iteration === 40)!.params)));
    expect(bytes(result.model.params)).not.toEqual(bytes(kept.result.model.params));
  });

  it('a run resumed from a checkpoint after its best still stores that best; without the checkpointed best it could not', async () => {
    const full = await run(overshooting());
    const bestIteration = full.result.best.iteration;
    const after = full.checkpoints.find((c) => c.iteration > bestIteration && full.metrics.every((m) => m.iteration <= c.iteration || m.valLoss > full.result.best.valLoss))!;
    expect(after).toBeDefined();
    const resumed = await run(overshooting(), structuredClone(after));
    expect(resumed.result.best).toEqual(full.result.best);
    expect(bytes(resumed.result.model.params)).toEqual(bytes(full.result.model.params));
    const { best: _dropped, ...withoutBest } = structuredClone(after);
    const forgetful = await run(overshooting(), withoutBest);
    expect(forgetful.result.best.iteration).toBeGreaterThan(after.iteration);
    expect(bytes(forgetful.result.model.params)).not.toEqual(bytes(full.result.model.params));
  });

  it('classification selects on validation accuracy, with its interval', async () => {
    const config: TrainConfig = {
      algorithm: 'maml',
      model: { hidden: [16] },
      families: gaussianBlobs({}, { inputDim: 2, ways: 3 }),
      hyper: { iterations: 30, metaBatchSize: 4, shots: 2, queryShots: 4, evalEvery: 3, checkpointEvery: 3, evalTasks: 16, innerLr: 0.3, metaLr: 0.05, seed: 4 },
    };
    const { metrics, checkpoints, result } = await run(config);
    expect(result.best).toEqual(plainBest(metrics));
    for (const m of metrics) expect(m.valAccuracyCi95).toBeGreaterThanOrEqual(0);
    const kept = result.best.iteration === 30 ? (await run({ ...config, hyper: { ...config.hyper, keepBest: false } })).result.model.params : metaOnly(checkpoints.find((c) => c.iteration === result.best.iteration)!.params);
    expect(bytes(result.model.params)).toEqual(bytes(kept));
  });

  // Every algorithm (multitask's pool heads are left out of what is kept), a conv body, a zero head.
  const cases: [string, TrainConfig][] = [
    ...ALGORITHM_NAMES.map((algorithm: AlgorithmName): [string, TrainConfig] => [
      algorithm,
      {
        algorithm,
        model: { hidden: [12] },
        families: ALGORITHMS[algorithm].kinds.includes('regression') ? sinusoid() : gaussianBlobs({}, { inputDim: 2, ways: 3 }),
        hyper: { iterations: 12, metaBatchSize: 3, shots: 3, queryShots: 3, evalEvery: 2, checkpointEvery: 2, evalTasks: 6, metaLr: 0.03, tasks: 20, seed: 5 },
      },
    ]),
    ['maml, conv body', { algorithm: 'maml', model: { body: 'conv', channels: [2], inputShape: [14, 14, 1] }, families: digits(), hyper: { iterations: 4, metaBatchSize: 1, shots: 1, queryShots: 1, evalEvery: 2, checkpointEvery: 2, evalTasks: 2, metaLr: 0.05, seed: 1 } }],
    ['anil, zero head', { algorithm: 'anil', model: { hidden: [12] }, families: gaussianBlobs({}, { inputDim: 2, ways: 3 }), hyper: { iterations: 12, metaBatchSize: 3, shots: 2, queryShots: 3, evalEvery: 2, checkpointEvery: 2, evalTasks: 6, innerSteps: 2, innerLr: 0.3, zeroHead: true, seed: 5 } }],
  ];
  it.each(cases)('%s: the kept parameters are those at the best evaluation', async (_name, config) => {
    const { metrics, checkpoints, result } = await run(config);
    const iterations = config.hyper!.iterations!;
    expect(result.best).toEqual(plainBest(metrics));
    const expected = result.best.iteration === iterations ? (await run({ ...config, hyper: { ...config.hyper, keepBest: false } })).result.model.params : metaOnly(checkpoints.find((c) => c.iteration === result.best.iteration)!.params);
    expect(bytes(result.model.params)).toEqual(bytes(expected));
    expect(Object.keys(result.model.params).some((name) => name.startsWith(POOL_PREFIX))).toBe(false);
    if (config.hyper!.zeroHead) for (const name of HEAD_NAMES) expect(result.model.params[name].data.every((v) => v === 0)).toBe(true);
  });
});

describe('MetaLearner.evaluate', () => {
  it.each(['regression', 'classification'] as const)('%s: each task scored; the means are their means; fused and tfjs agree task by task', (kind) => {
    const family = kind === 'regression' ? sinusoid() : gaussianBlobs({}, { inputDim: 2, ways: 3 });
    const spec = modelSpec(kind, family.inputDim, { hidden: [12] }, family.ways);
    const rng = new Rng(9);
    const batch = packEpisodes(Array.from({ length: 7 }, () => family.sampleEpisode(rng, 'val', { shots: 3, queryShots: 4, ways: family.ways })));
    const config: LearnerConfig = { algorithm: 'maml', spec, inner: { steps: 2, lr: 0.1 }, metaLr: 0.01 };
    const params = ALGORITHMS.maml.initMetaParams(spec, new Rng(3), config.inner);
    const [fused, tfjs] = (['fused', 'tfjs'] as const).map((engine) => {
      const learner = new MetaLearner({ ...config, engine }, params);
      try {
        return learner.evaluate(batch);
      } finally {
        learner.dispose();
      }
    });
    for (const evaluation of [fused, tfjs]) {
      expect(evaluation.taskLosses).toHaveLength(7);
      expect(evaluation.loss).toBeCloseTo(meanCi(evaluation.taskLosses).mean, 10);
      if (kind === 'classification') expect(evaluation.accuracy).toBeCloseTo(meanCi(evaluation.taskAccuracies!).mean, 10);
      else expect(evaluation.taskAccuracies).toBeUndefined();
    }
    // Distinct tasks score differently, so agreement is task by task, not only on average.
    expect(new Set(fused.taskLosses).size).toBeGreaterThan(1);
    fused.taskLosses.forEach((loss, t) => expect(loss).toBeCloseTo(tfjs.taskLosses[t], 4));
    fused.taskAccuracies?.forEach((accuracy, t) => expect(accuracy).toBeCloseTo(tfjs.taskAccuracies![t], 6));
  });
});
