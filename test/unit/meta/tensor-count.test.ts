/**
 * No tensor outlives its call: for every algorithm and every task kind it supports, `adapt`,
 * `adaptMany`, a meta-training iteration (`MetaLearner.metaStep`, batched and per-task loop) and an
 * evaluation leave `tf.memory().numTensors` where it was, and disposing the learner returns it to
 * where it was before the learner existed. A leak of one tensor per call is what turns a long-lived
 * worker's memory into a slope (issue 17: the soak's tensor drift), so the count is pinned exactly.
 * Each case runs twice: with the engine 'auto' picks (the fused wasm kernels on the CPU when they
 * are built and have the algorithm) and with tfjs forced, so both engines are held to it.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { adapt, adaptMany, ALGORITHM_NAMES, ALGORITHMS, chooseEngine, initBackend, MetaLearner, Rng, tf, type AlgorithmName, type EnginePreference, type InnerSettings, type MetaModel, type TaskKind } from '../../../src/meta/index.js';
import { gaussianBlobs, samplePoolBatch, sinusoid } from '../../../src/meta/families/index.js';
import type { ModelSpec, ParamArrays } from '../../../src/meta/model.js';
import type { TrainingBatch } from '../../../src/meta/types.js';
import { classificationProblem, poolFor, regressionProblem } from './helpers.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const ENGINES: readonly EnginePreference[] = ['auto', 'tfjs'];
const cases = ALGORITHM_NAMES.flatMap((algorithm) => ALGORITHMS[algorithm].kinds.flatMap((kind) => ENGINES.map((engine) => [algorithm, kind, engine] as const)));

function problem(kind: TaskKind, seed: number) {
  return kind === 'regression' ? regressionProblem(seed, { hidden: [8, 8] }) : classificationProblem(seed, { hidden: [8, 8] });
}

/**
 * What the algorithm meta-trains on, and its starting parameters: a meta-batch of episodes, or for an
 * algorithm that trains on a pool of tasks (multitask) a minibatch of the pool, with the pool's heads.
 */
function training(algorithm: AlgorithmName, kind: TaskKind, seed: number, inner: InnerSettings): { spec: ModelSpec; batch: TrainingBatch; params: ParamArrays } {
  const { spec, batch } = problem(kind, seed);
  const learned = ALGORITHMS[algorithm];
  const params = learned.initMetaParams(spec, new Rng(1), inner);
  if (learned.trainsOn === 'episodes') return { spec, batch, params };
  const pool = poolFor(kind);
  return { spec, batch: samplePoolBatch(pool, new Rng(seed), 4, 6, spec.inputDim), params: { ...params, ...learned.initPoolParams(spec, pool.outputs, new Rng(2)) } };
}

/** Support sets of new tasks of the kind, as `/adapt` receives them. */
function supports(kind: TaskKind, seed: number, count: number) {
  const family = kind === 'regression' ? sinusoid() : gaussianBlobs({ meanScale: 1.5 }, { inputDim: 2, ways: 3 });
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => family.sampleEpisode(rng, 'test', { shots: 4, queryShots: 2, ways: 3 }).support);
}

describe.each(cases)('%s on %s tasks, engine %s', (algorithm, kind, engine) => {
  it('adapt, adaptMany, metaStep and evaluate leave the tensor count unchanged', () => {
    const inner = { steps: 3, lr: 0.01 };
    const { spec, batch, params } = training(algorithm, kind, 11, inner);
    const before = tf.memory().numTensors;
    const learner = new MetaLearner({ algorithm, spec, inner, metaLr: 0.001, engine }, params);
    expect(learner.engine).toBe(chooseEngine(engine, algorithm));
    // The first step creates the optimiser's moments: count from after it.
    learner.metaStep(batch);
    const held = tf.memory().numTensors;
    for (const mode of ['batched', 'loop'] as const) {
      learner.metaStep(batch, mode);
      expect(tf.memory().numTensors, `metaStep ${mode}`).toBe(held);
    }
    learner.evaluate(problem(kind, 12).batch);
    expect(tf.memory().numTensors, 'evaluate').toBe(held);

    const model: MetaModel = { algorithm, spec, inner, params: learner.exportMetaParams() };
    const sets = supports(kind, 13, 3);
    adapt(model, sets[0], {}, engine);
    expect(tf.memory().numTensors, 'adapt').toBe(held);
    const results = adaptMany(model, sets, {}, engine);
    expect(results.every((r) => !(r instanceof Error))).toBe(true);
    expect(tf.memory().numTensors, 'adaptMany').toBe(held);

    learner.dispose();
    expect(tf.memory().numTensors, 'after dispose').toBe(before);
  });
});

it('covers every algorithm and every kind it supports, on both engines', () => {
  expect(new Set(cases.map(([algorithm]) => algorithm))).toEqual(new Set(ALGORITHM_NAMES));
  expect(new Set(cases.map(([, , engine]) => engine))).toEqual(new Set(ENGINES));
  expect(cases.some(([, kind]) => kind === 'classification')).toBe(true);
});
