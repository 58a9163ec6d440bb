/**
 * No tensor outlives its call: for every algorithm and every task kind it supports, `adapt`,
 * `adaptMany`, `predict`, a meta-training iteration (`MetaLearner.metaStep`, batched and per-task
 * loop) and an evaluation leave `tf.memory().numTensors` where it was, and disposing the learner
 * returns it to where it was before the learner existed. A leak of one tensor per call is what turns
 * a long-lived worker's memory into a slope (issue 17: the soak's tensor drift), so the count is
 * pinned exactly. Each case runs on the engine 'auto' picks (the fused wasm kernels on the CPU when
 * they are built and have the algorithm) and with tfjs forced, and a conv body (always tfjs) runs
 * too. On the tfjs path every call must have run tfjs kernels, so an unchanged count means the
 * tensors they allocated were all released, not that none were made.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { adapt, adaptMany, ALGORITHM_NAMES, ALGORITHMS, initBackend, MetaLearner, predict, Rng, taskParams, tf, type AlgorithmName, type EnginePreference, type InnerSettings, type MetaModel, type TaskKind } from '../../../src/meta/index.js';
import { conv3x3 } from '../../../src/meta/conv.js';
import { gaussianBlobs, samplePoolBatch, sinusoid } from '../../../src/meta/families/index.js';
import { fusedKernelsAvailable, fusedSupports } from '../../../src/meta/fused/index.js';
import { ortAvailable } from '../../../src/meta/ort/index.js';
import type { BodyKind, ModelSpec, ParamArrays } from '../../../src/meta/model.js';
import type { TrainingBatch } from '../../../src/meta/types.js';
import { classificationProblem, convClassificationProblem, poolFor, regressionProblem } from './helpers.js';

beforeAll(async () => {
  await initBackend('cpu');
  // The conv body's input gradient keeps one constant for the process (conv.ts reverseTaps), made on
  // first use: make it here, so that it is not counted against the first conv case.
  tf.tidy(() => tf.grad((x: tf.Tensor) => tf.sum(conv3x3(x, tf.ones([3, 3, 1, 1]))))(tf.ones([1, 3, 3, 1])));
});

const ENGINES: readonly EnginePreference[] = ['auto', 'tfjs'];
const mlpCases = ALGORITHM_NAMES.flatMap((algorithm) => ALGORITHMS[algorithm].kinds.flatMap((kind) => ENGINES.map((engine) => [algorithm, kind, 'mlp', engine] as const)));
const convCases = ALGORITHM_NAMES.filter((algorithm) => ALGORITHMS[algorithm].kinds.includes('classification')).map((algorithm) => [algorithm, 'classification', 'conv', 'auto'] as const);
const cases: ReadonlyArray<readonly [AlgorithmName, TaskKind, BodyKind, EnginePreference]> = [...mlpCases, ...convCases];

function problem(kind: TaskKind, body: BodyKind, seed: number) {
  if (body === 'conv') return convClassificationProblem(seed);
  return kind === 'regression' ? regressionProblem(seed, { hidden: [8, 8] }) : classificationProblem(seed, { hidden: [8, 8] });
}

/**
 * What the algorithm meta-trains on, and its starting parameters: a meta-batch of episodes, or for an
 * algorithm that trains on a pool of tasks (multitask) a minibatch of the pool, with the pool's heads.
 */
function training(algorithm: AlgorithmName, kind: TaskKind, body: BodyKind, seed: number, inner: InnerSettings): { spec: ModelSpec; batch: TrainingBatch; params: ParamArrays } {
  const { spec, batch } = problem(kind, body, seed);
  const learned = ALGORITHMS[algorithm];
  const params = learned.initMetaParams(spec, new Rng(1), inner);
  if (learned.trainsOn === 'episodes') return { spec, batch, params };
  const pool = poolFor(kind, spec.inputDim);
  return { spec, batch: samplePoolBatch(pool, new Rng(seed), 4, 6, spec.inputDim), params: { ...params, ...learned.initPoolParams(spec, pool.outputs, new Rng(2)) } };
}

/** Support sets (and query inputs) of new tasks of the kind, as `/adapt` and `/predict` receive them. */
function episodes(spec: ModelSpec, seed: number, count: number) {
  const family = spec.kind === 'regression' ? sinusoid() : gaussianBlobs({ meanScale: 1.5 }, { inputDim: spec.inputDim, ways: 3 });
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => family.sampleEpisode(rng, 'test', { shots: 4, queryShots: 2, ways: 3 }));
}

/** The engine that should run: named here, not asked of chooseEngine, so a wrong choice fails. */
function expectedEngine(algorithm: AlgorithmName, body: BodyKind, engine: EnginePreference): string {
  if (engine === 'auto' && body === 'conv' && ortAvailable() && ['protonet', 'anil', 'multitask', 'fomaml', 'reptile'].includes(algorithm)) return 'onnxruntime';
  return engine === 'auto' && body === 'mlp' && fusedKernelsAvailable() && fusedSupports(algorithm) ? 'fused-wasm' : 'tfjs-cpu';
}

/** Runs `call` and reports how many tfjs kernels it ran and how many tensors it left alive. */
async function tensorsLeft(call: () => unknown): Promise<{ kernels: number; left: number }> {
  const before = tf.memory().numTensors;
  const profile = await tf.profile(() => {
    call();
    return [];
  });
  return { kernels: profile.kernels.length, left: tf.memory().numTensors - before };
}

describe.each(cases)('%s on %s tasks, %s body, engine %s', (algorithm, kind, body, engine) => {
  it('adapt, adaptMany, predict, metaStep and evaluate leave the tensor count unchanged', async () => {
    const inner = { steps: 3, lr: 0.01 };
    const { spec, batch, params } = training(algorithm, kind, body, 11, inner);
    const before = tf.memory().numTensors;
    const learner = new MetaLearner({ algorithm, spec, inner, metaLr: 0.001, engine }, params);
    const ran = expectedEngine(algorithm, body, engine);
    expect(learner.engine).toBe(ran);
    // The first step creates the optimiser's moments: count from after it.
    learner.metaStep(batch);
    const held = tf.memory().numTensors;
    const model: MetaModel = { algorithm, spec, inner, params: learner.exportMetaParams() };
    const tasks = episodes(spec, 13, 3);
    const sets = tasks.map((episode) => episode.support);
    const adapted = adapt(model, sets[0], {}, engine).params;
    const calls: Array<[string, () => unknown, boolean]> = [
      // ProtoNets' and ANIL's whole step on ONNX Runtime is one graph, with no tfjs head.
      ['metaStep batched', () => learner.metaStep(batch, 'batched'), ran !== 'fused-wasm' && !(ran === 'onnxruntime' && (algorithm === 'protonet' || algorithm === 'anil'))],
      ['metaStep loop', () => learner.metaStep(batch, 'loop'), ran !== 'fused-wasm'],
      ['evaluate', () => learner.evaluate(problem(kind, body, 12).batch), ran !== 'fused-wasm'],
      ['adapt', () => adapt(model, sets[0], {}, engine), ran !== 'fused-wasm'],
      ['adaptMany', () => expect(adaptMany(model, sets, {}, engine).every((r) => !(r instanceof Error))).toBe(true), ran !== 'fused-wasm'],
      // Prediction always runs on tfjs.
      ['predict', () => predict(spec, taskParams(model, adapted), tasks[0].query.x), true],
    ];
    for (const [name, call, onTfjs] of calls) {
      const { kernels, left } = await tensorsLeft(call);
      expect(left, `${name} left tensors behind`).toBe(0);
      if (onTfjs) expect(kernels, `${name} ran no tfjs kernels`).toBeGreaterThan(0);
    }
    expect(tf.memory().numTensors).toBe(held);

    learner.dispose();
    expect(tf.memory().numTensors, 'after dispose').toBe(before);
  });
});

it('covers every algorithm and every kind it supports, on both engines, and a conv body', () => {
  expect(new Set(cases.map(([algorithm]) => algorithm))).toEqual(new Set(ALGORITHM_NAMES));
  expect(new Set(cases.map(([, , , engine]) => engine))).toEqual(new Set(ENGINES));
  expect(cases.some(([, kind]) => kind === 'classification')).toBe(true);
  expect(cases.filter(([, , body]) => body === 'conv').length).toBeGreaterThan(0);
});
