/**
 * bench:meta's speed rows: ms per meta-iteration of every engine path on every timed setting, next to
 * the engine's own per-task loop and the PyTorch baselines (bench/pytorch/meta_baseline.py: the whole
 * meta-batch batched, and learn2learn's per-task loop), all measured in interleaved rounds of one run.
 */

import { BackendUnavailableError, initBackend, tf, type BackendPreference } from '../src/meta/backend.js';
import { digits, gaussianBlobs, packEpisodes, samplePoolBatch, sinusoid } from '../src/meta/families/index.js';
import { fusedSupports } from '../src/meta/fused/index.js';
import { getAlgorithm, initMetaParams, MetaLearner, modelSpec, type AlgorithmName, type LearnerConfig, type MetaStepMode, type ParamArrays } from '../src/meta/index.js';
import { Rng } from '../src/meta/rng.js';
import type { EpisodeShape, TaskFamily, TrainingBatch } from '../src/meta/types.js';
import type { PytorchServer, PytorchSetting } from './pytorch/baseline.js';

/** The MAML paper's sinusoid setting (the speed rows' and the quality run's). */
export const SETTING = {
  model: { hidden: [40, 40], activation: 'relu' as const },
  metaBatchSize: 25,
  shots: 10,
  queryShots: 10,
  innerSteps: 1,
  innerLr: 0.01,
  metaLr: 0.001,
};

/** 5-way few-shot digits; an MLP body as in the MAML paper's non-convolutional Omniglot baseline. */
export const DIGITS = {
  ways: 5,
  hidden: [128, 64],
  metaBatchSize: 8,
  queryShots: 5,
  innerSteps: 1,
  innerLr: 0.4,
  metaLr: 0.001,
  testEpisodes: 100,
  testQueryShots: 15,
  /** Inner steps at test time (MAML's Omniglot evaluation adapts a little longer than it trains). */
  testSteps: 3,
};

/**
 * 5-way few-shot digits with the conv body (Conv-4: 64 channels per block), ProtoNets as Snell et al.
 * train it (one episode an iteration, 15 query examples per class), scored on 600 test episodes of 15
 * queries per class, next to PyTorch's Conv-4 and MLP ProtoNets on the same split and episodes; MAML
 * and ANIL on the same body, a meta-batch of 4 (5 queries per class), one inner step in training and
 * three at test as the MLP digits rows, each with a meta-learned head and with a zero one
 * (hyper.zeroHead). Their inner step sizes were chosen on the training loss of 100-iteration probes:
 * MAML at 0.4 (the MLP rows' value) stayed at chance (loss 1.60), at 0.1 it fell to 1.44; ANIL's
 * head-only step fell at 0.4. With a zero head, 5-shot probes on 200 validation episodes (scratch
 * scripts, not results files) reached 83-85% at 300-500 iterations with a step of 0.4 or 1.0 for ANIL
 * and about 72% at 100 iterations for MAML at 0.4, against 64% for MAML at 0.1 with 2 steps, whose
 * 2 steps at 0.4 stayed at chance.
 */
export const CONV_DIGITS = {
  ways: 5,
  inputShape: [14, 14, 1],
  channels: [64, 64, 64, 64],
  hidden: [128, 64],
  metaBatchSize: 1,
  queryShots: 15,
  metaLr: 0.001,
  testEpisodes: 600,
  testQueryShots: 15,
  adapting: { metaBatchSize: 4, queryShots: 5, innerSteps: 1, innerLr: { maml: 0.1, anil: 0.4 }, zeroHeadInnerLr: { maml: 0.4, anil: 0.4 }, testSteps: 3 },
};

/**
 * Multitask's own training settings in the quality runs (tuned on validation tasks, never test ones):
 * Adam 0.003 and a pool of 1000 training tasks on sinusoids; digits pools its 24 training classes.
 */
export const MULTITASK = { metaLr: 0.003, tasks: 1000 };

export function learnerConfig(algorithm: AlgorithmName, family: TaskFamily, hidden: number[], steps: number, lr: number, metaLr: number): LearnerConfig {
  return {
    algorithm,
    spec: modelSpec(family.kind, family.inputDim, { hidden, activation: 'relu' }, family.ways),
    inner: { steps, lr },
    metaLr,
  };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export const round = (x: number, digits = 3) => Number(x.toFixed(digits));

/** Mean ms per call of `call`, called repeatedly for about `ms` milliseconds. */
export function blockMsPerCall(call: () => unknown, ms: number): number {
  let calls = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    call();
    calls++;
    now = performance.now();
  }
  return (now - start) / calls;
}

/** A timed setting; `name` is the same setting's name in bench/pytorch/meta_baseline.py. */
export interface TimingSetting {
  name: 'sinusoid' | 'blobs' | 'digits';
  /** What the rows say in `task`. */
  task: string;
  family: TaskFamily;
  shape: EpisodeShape;
  hidden: number[];
  metaBatchSize: number;
  innerSteps: number;
  innerLr: number;
  metaLr: number;
}

export function timingSettings(): Record<TimingSetting['name'], TimingSetting> {
  const { shots, queryShots, metaBatchSize, innerSteps, innerLr, metaLr } = SETTING;
  const hidden = SETTING.model.hidden;
  const digitsFamily = digits({}, { ways: DIGITS.ways });
  return {
    sinusoid: { name: 'sinusoid', task: 'sinusoid', family: sinusoid(), shape: { shots, queryShots }, hidden, metaBatchSize, innerSteps, innerLr, metaLr },
    // ProtoNets only classify: 1-D blobs with the sinusoid setting's body and 10 + 10 examples per task.
    blobs: { name: 'blobs', task: 'gaussian-blobs 5-way 2+2 shots (classification)', family: gaussianBlobs({}, { inputDim: 1, ways: 5 }), shape: { shots: 2, queryShots: 2, ways: 5 }, hidden, metaBatchSize, innerSteps, innerLr, metaLr },
    // The digits quality run's network and episodes, 1-shot.
    digits: {
      name: 'digits',
      task: `digits-size MLP ${digitsFamily.inputDim}-${DIGITS.hidden.join('-')}-${DIGITS.ways}, ${DIGITS.ways}-way 1-shot + ${DIGITS.queryShots} query per class, meta-batch ${DIGITS.metaBatchSize}, inner lr ${DIGITS.innerLr}`,
      family: digitsFamily,
      shape: { shots: 1, queryShots: DIGITS.queryShots, ways: DIGITS.ways },
      hidden: DIGITS.hidden,
      metaBatchSize: DIGITS.metaBatchSize,
      innerSteps: DIGITS.innerSteps,
      innerLr: DIGITS.innerLr,
      metaLr: DIGITS.metaLr,
    },
  };
}

/**
 * What is timed: every algorithm on its sinusoid-size setting, and MAML and ProtoNets at digits size.
 * Multitask's iteration is one Adam step on a minibatch of its task pool (POOL_TASKS tasks) holding
 * as many tasks and examples as the setting's meta-batch: 25 tasks x 20 points on sinusoids.
 */
export const TIMING_CASES: { algorithm: AlgorithmName; setting: TimingSetting['name'] }[] = [
  ...(['maml', 'fomaml', 'reptile', 'anil', 'metasgd', 'multitask'] as const).map((algorithm) => ({ algorithm, setting: 'sinusoid' as const })),
  { algorithm: 'protonet', setting: 'blobs' },
  { algorithm: 'maml', setting: 'digits' },
  { algorithm: 'protonet', setting: 'digits' },
];

/** Tasks in multitask's pool when timed (the default of hyper.tasks). */
export const POOL_TASKS = 1000;

/**
 * A case's initial parameters and its stream of training batches: meta-batches of episodes, or
 * for a pool algorithm, minibatches of a pool of POOL_TASKS training tasks (its heads initialised too).
 */
export function trainingData(config: LearnerConfig, setting: TimingSetting, rng: Rng): { params: ParamArrays; next: () => TrainingBatch } {
  const algorithm = getAlgorithm(config.algorithm);
  const params = initMetaParams(config, rng);
  if (algorithm.trainsOn === 'episodes') {
    return { params, next: () => packEpisodes(Array.from({ length: setting.metaBatchSize }, () => setting.family.sampleEpisode(rng, 'train', setting.shape))) };
  }
  const pool = setting.family.trainingPool!(rng, POOL_TASKS);
  const examples = (setting.shape.shots + setting.shape.queryShots) * (setting.shape.ways ?? 1);
  return {
    params: { ...params, ...algorithm.initPoolParams(config.spec, pool.outputs, rng) },
    next: () => samplePoolBatch(pool, rng, setting.metaBatchSize, examples, setting.family.inputDim),
  };
}

/**
 * An engine path to time: the tfjs backend it runs on, options for its MetaLearner (which engine
 * computes the numbers there), and the name its rows carry (default: the backend's).
 */
interface EnginePath {
  backend: BackendPreference;
  learner?: Partial<LearnerConfig>;
  name?: string;
}

/** The engine paths `--backends` chooses from: one line each. */
export const ENGINE_PATHS: Record<string, EnginePath> = {
  // The fused WebAssembly SIMD kernels (src/meta/fused); they use no tfjs backend, wasm is loaded for the loop mode.
  fused: { backend: 'wasm', learner: { engine: 'fused' }, name: 'fused-wasm' },
  wasm: { backend: 'wasm', learner: { engine: 'tfjs' } },
  cpu: { backend: 'cpu', learner: { engine: 'tfjs' } },
  tensorflow: { backend: 'tensorflow', learner: { engine: 'tfjs' } },
  'tensorflow-gpu': { backend: 'tensorflow-gpu', learner: { engine: 'tfjs' } },
};

/**
 * How the speed rows are measured. A fresh process needs ~100-200 MAML iterations (2-3 s) before a
 * step reaches its steady cost: V8 optimises tfjs's JS and tiers the wasm kernels up from its
 * baseline compiler only once they are hot. With a fixed 30-iteration warm-up, whichever algorithm
 * was timed first (MAML) was measured mid-warm-up, at 2-3x its cost. So: every case warms up in both
 * modes, on the engine and in PyTorch, for a fixed time before any timing; then timing runs in rounds,
 * each round timing, for every case in turn, one block each of the engine batched, the engine's
 * per-task loop, PyTorch batched and PyTorch's per-task loop, so load changes on a shared machine hit
 * all of them alike; a row is the median over rounds. PyTorch's blocks run while the engine waits.
 */
export const TIMING = { rounds: 9, warmUpMinIterations: 10 };

const MODES = ['batched', 'loop'] as const;

/** One case being timed on one engine path: its learner, its own task stream and its block times. */
interface Timed {
  id: string;
  algorithm: AlgorithmName;
  setting: TimingSetting;
  config: LearnerConfig;
  learner: MetaLearner;
  next: () => TrainingBatch;
  /** Whether bench/pytorch implements the algorithm (the episodic ones). */
  hasPytorch: boolean;
  engine: Record<MetaStepMode, number[]>;
  pytorch: Record<MetaStepMode, number[]>;
}

/** Runs `iterations` meta-steps and returns ms per step; batches are sampled before the timer starts. */
function timeBlock(t: Timed, mode: MetaStepMode, iterations: number): number {
  const batches = Array.from({ length: iterations }, t.next);
  const start = performance.now();
  for (const batch of batches) t.learner.metaStep(batch, mode);
  return (performance.now() - start) / iterations;
}

function warmUp(t: Timed, mode: MetaStepMode, ms: number): void {
  const start = performance.now();
  for (let i = 0; i < TIMING.warmUpMinIterations || performance.now() - start < ms; i++) t.learner.metaStep(t.next(), mode);
}

/** Refuses to compare against a PyTorch setting that is not the engine's (the two are declared apart). */
function checkSameSetting(t: Timed, theirs: PytorchSetting): void {
  const { spec, inner, metaLr } = t.config;
  const ways = t.setting.shape.ways ?? 1;
  const ours: Record<string, unknown> = {
    kind: spec.kind,
    sizes: [spec.inputDim, ...spec.hidden, spec.outputDim].join('-'),
    meta_batch: t.setting.metaBatchSize,
    support: t.setting.shape.shots * ways,
    query: t.setting.shape.queryShots * ways,
    steps: inner.steps,
    inner_lr: inner.lr,
    meta_lr: metaLr,
  };
  const got: Record<string, unknown> = { ...theirs, sizes: theirs.sizes.join('-') };
  for (const [key, value] of Object.entries(ours)) {
    if (got[key] !== value) throw new Error(`bench/pytorch's '${t.setting.name}' setting has ${key} ${String(got[key])}, bench:meta's ${String(value)}`);
  }
}

export interface Row {
  algorithm: AlgorithmName;
  backend: string;
  task: string;
  msPerIteration: number;
  naiveLoopMsPerIteration: number;
  speedup: number;
  /** The rest only where PyTorch ran. */
  pytorchBatchedMsPerIteration?: number;
  pytorchLoopMsPerIteration?: number;
  speedupVsPytorchBatched?: number;
  speedupVsPytorchLoop?: number;
}

function toRow(t: Timed, backend: string): Row {
  const [batched, loop] = MODES.map((m) => median(t.engine[m]));
  const row: Row = { algorithm: t.algorithm, backend, task: t.setting.task, msPerIteration: round(batched), naiveLoopMsPerIteration: round(loop), speedup: round(loop / batched, 2) };
  const spread = `${Math.min(...t.engine.batched).toFixed(2)}-${Math.max(...t.engine.batched).toFixed(2)}`;
  let line = `  ${backend.padEnd(6)} ${t.algorithm.padEnd(9)} ${t.setting.name.padEnd(8)} ${batched.toFixed(2).padStart(8)} ms (rounds ${spread})  loop ${loop.toFixed(2).padStart(8)} ms`;
  if (t.pytorch.batched.length > 0) {
    const [pytorchBatched, pytorchLoop] = MODES.map((m) => median(t.pytorch[m]));
    Object.assign(row, {
      pytorchBatchedMsPerIteration: round(pytorchBatched),
      pytorchLoopMsPerIteration: round(pytorchLoop),
      speedupVsPytorchBatched: round(pytorchBatched / batched, 2),
      speedupVsPytorchLoop: round(pytorchLoop / batched, 2),
    });
    line += `  PyTorch batched ${pytorchBatched.toFixed(2).padStart(7)} ms (engine x${(pytorchBatched / batched).toFixed(2)})  loop ${pytorchLoop.toFixed(2).padStart(7)} ms`;
  }
  console.log(line);
  return row;
}

/**
 * Times every case on every engine path named in `paths` (skipping, with why, one that cannot start
 * here), interleaved with PyTorch's blocks when `pytorch` is given.
 */
export async function timing(paths: string[], iterations: number, warmUpMs: number, pytorch: PytorchServer | null): Promise<Row[]> {
  const unknown = paths.filter((p) => !(p in ENGINE_PATHS));
  if (unknown.length > 0) throw new Error(`unknown engine path ${unknown.join(', ')}; expected some of ${Object.keys(ENGINE_PATHS).join(', ')}`);
  const settings = timingSettings();
  const rows: Row[] = [];
  // Per round: a quarter as many per-task-loop iterations (each costs ~5-10x a batched one).
  const perBlock: Record<MetaStepMode, number> = { batched: Math.max(1, Math.ceil(iterations / TIMING.rounds)), loop: Math.max(1, Math.ceil(iterations / 4 / TIMING.rounds)) };
  for (const name of paths) {
    const path = ENGINE_PATHS[name];
    let backend: string;
    try {
      const active = await initBackend(path.backend);
      backend = path.name ?? active;
    } catch (err) {
      if (!(err instanceof BackendUnavailableError)) throw err;
      console.log(`skipping engine path ${name}: ${err.reason}`);
      continue;
    }
    // The fused engine has no version of some algorithms (multitask runs on tfjs): no row for them there.
    const cases = TIMING_CASES.filter(({ algorithm }) => path.learner?.engine !== 'fused' || fusedSupports(algorithm));
    const timed: Timed[] = cases.map(({ algorithm, setting: settingName }) => {
      const setting = settings[settingName];
      const config = learnerConfig(algorithm, setting.family, setting.hidden, setting.innerSteps, setting.innerLr, setting.metaLr);
      const rng = new Rng(1);
      const { params, next } = trainingData(config, setting, rng);
      const learner = new MetaLearner({ ...config, ...path.learner }, params);
      const hasPytorch = getAlgorithm(algorithm).trainsOn === 'episodes';
      return { id: `${algorithm}/${settingName}`, algorithm, setting, config, learner, next, hasPytorch, engine: { batched: [], loop: [] }, pytorch: { batched: [], loop: [] } };
    });
    const before = tf.memory().numTensors;
    for (const t of timed) {
      if (pytorch && t.hasPytorch) checkSameSetting(t, (await pytorch.request<{ setting: PytorchSetting }>({ op: 'setup', case: t.id, algorithm: t.algorithm, setting: t.setting.name, seed: 1 })).setting);
      for (const mode of MODES) {
        warmUp(t, mode, warmUpMs);
        if (t.hasPytorch) await pytorch?.request({ op: 'warmup', case: t.id, mode, ms: warmUpMs, minIterations: TIMING.warmUpMinIterations });
      }
    }
    for (let round = 0; round < TIMING.rounds; round++) {
      for (const t of timed) {
        for (const mode of MODES) t.engine[mode].push(timeBlock(t, mode, perBlock[mode]));
        if (!pytorch || !t.hasPytorch) continue;
        for (const mode of MODES) t.pytorch[mode].push((await pytorch.request<{ ms: number }>({ op: 'time', case: t.id, mode, iterations: perBlock[mode] })).ms);
      }
    }
    if (tf.memory().numTensors !== before) throw new Error(`timing on ${backend} leaked ${tf.memory().numTensors - before} tensors`);
    for (const t of timed) t.learner.dispose();
    rows.push(...timed.map((t) => toRow(t, backend)));
  }
  return rows;
}

export function printTable(rows: Row[]): void {
  const x = (v?: number) => (v === undefined ? '-' : `x${v.toFixed(2)}`).padStart(8);
  const ms = (v?: number) => (v === undefined ? '-' : v.toFixed(2)).padStart(9);
  console.log('\nms per meta-iteration: engine batched, engine per-task loop, PyTorch batched (the headline ratio), PyTorch per-task loop');
  console.log('algorithm  backend     engine  eng.loop  speed-up   PyTorch  engine x  PT.loop  engine x  task');
  for (const r of rows) {
    console.log(
      `${r.algorithm.padEnd(10)} ${r.backend.padEnd(8)}${ms(r.msPerIteration)} ${ms(r.naiveLoopMsPerIteration)} ${x(r.speedup)} ${ms(r.pytorchBatchedMsPerIteration)} ${x(r.speedupVsPytorchBatched)}${ms(r.pytorchLoopMsPerIteration)} ${x(r.speedupVsPytorchLoop)}  ${r.task}`,
    );
  }
}
