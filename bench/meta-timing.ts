/**
 * bench:meta's speed rows: ms per meta-iteration of every engine path on every timed setting, next to
 * the engine's own per-task loop and the PyTorch baselines (bench/pytorch/meta_baseline.py: the whole
 * meta-batch batched, functorch's vmap of grad, and learn2learn's per-task loop), all measured in
 * interleaved rounds, over several runs (see TIMING).
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
 * was timed first (MAML) was measured mid-warm-up, at 2-3x its cost. So: every case warms up in every
 * mode, on the engine and in PyTorch, for a fixed time before any timing; then timing runs in rounds,
 * each round timing, for every case in turn, one block each of the engine batched, the engine's
 * per-task loop and every PyTorch form, so load changes on a shared machine hit all of them alike.
 * A block lasts at least `blockMs` on every side (5-iteration blocks, 3.5 ms of engine time, let
 * scheduling favour one side): it runs meta-steps until that much time has passed, on batches
 * sampled before its timer starts. A round's ratio is the fastest PyTorch form of that round over the
 * engine batched of that round; a row is the median over rounds (with the interquartile range), and
 * a run repeats the whole timing with fresh learners and fresh PyTorch cases, so the headline is the
 * median over runs, quoted with its range. PyTorch's blocks run while the engine waits.
 */
export const TIMING = { rounds: 9, warmUpMinIterations: 10, blockMs: 200, runs: 3 };

/** The timing options bench:meta passes (see TIMING for the defaults). */
export interface TimingOptions {
  /** The shortest a timed block may be, on every side. */
  blockMs: number;
  /** Each case's warm-up in each mode, engine and PyTorch, before its first round. */
  warmUpMs: number;
  runs: number;
}

const MODES = ['batched', 'loop'] as const;

/** bench/pytorch/algorithms.py's forms of each algorithm (its META_GRADIENT): each round's ratio is against the fastest. */
export const PYTORCH_FORMS = ['batched', 'functorch', 'loop'] as const;
export type PytorchForm = (typeof PYTORCH_FORMS)[number];

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
  /** ms per meta-iteration of each block, by round. */
  engine: Record<MetaStepMode, number[]>;
  pytorch: Record<PytorchForm, number[]>;
  /** ms per meta-iteration last measured (warm-up, then the last block): how many batches a block samples. */
  rate: Record<string, number>;
}

/** Batches a block of `blockMs` at `msPerIteration` needs, with a margin (a block reuses them in turn if it needs more). */
function batchesFor(blockMs: number, msPerIteration: number): number {
  return Math.max(1, Math.ceil((1.2 * blockMs) / msPerIteration));
}

/** One timed block of meta-steps lasting at least `blockMs`; ms per step. Batches are sampled before the timer starts. */
function timeBlock(t: Timed, mode: MetaStepMode, blockMs: number): number {
  const batches = Array.from({ length: batchesFor(blockMs, t.rate[mode]) }, t.next);
  let i = 0;
  const ms = blockMsPerCall(() => t.learner.metaStep(batches[i++ % batches.length], mode), blockMs);
  t.rate[mode] = ms;
  return ms;
}

/** Warms a case up in one mode; its ms per meta-step, sampling included (an upper bound of the timed cost). */
function warmUp(t: Timed, mode: MetaStepMode, ms: number): number {
  const start = performance.now();
  let i = 0;
  for (; i < TIMING.warmUpMinIterations || performance.now() - start < ms; i++) t.learner.metaStep(t.next(), mode);
  return (performance.now() - start) / i;
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

/** The first and third quartiles (linear interpolation between order statistics). */
export function quartiles(xs: number[]): [number, number] {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => {
    const i = q * (s.length - 1);
    const lo = Math.floor(i);
    return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (i - lo);
  };
  return [at(0.25), at(0.75)];
}

export type Range = [number, number];
export const rounded = ([a, b]: Range, digits = 3): Range => [round(a, digits), round(b, digits)];
export const byForm = <T>(f: (form: PytorchForm) => T) => Object.fromEntries(PYTORCH_FORMS.map((form) => [form, f(form)])) as Record<PytorchForm, T>;

/** One run's row: medians over its rounds, with interquartile ranges ([q1, q3]). */
export interface Row {
  algorithm: AlgorithmName;
  backend: string;
  task: string;
  /** The engine batched (its mode). */
  msPerIteration: number;
  msPerIterationIqr: Range;
  naiveLoopMsPerIteration: number;
  naiveLoopMsPerIterationIqr: Range;
  /** naiveLoopMsPerIteration / msPerIteration. */
  speedup: number;
  /** The rest only where PyTorch ran: each form's median and IQR. */
  pytorchMsPerIteration?: Record<PytorchForm, number>;
  pytorchMsPerIterationIqr?: Record<PytorchForm, Range>;
  /** The PyTorch form fastest in most rounds, and in how many rounds each form was the fastest. */
  pytorchFastestForm?: PytorchForm;
  pytorchFastestRounds?: Record<PytorchForm, number>;
  /** Median over rounds of (the round's fastest PyTorch form's ms / the round's engine batched ms), and its IQR. */
  speedupVsPytorch?: number;
  speedupVsPytorchIqr?: Range;
  /** Every block's ms per meta-iteration, by round: what the figures above are computed from. */
  roundsMs: { engine: Record<MetaStepMode, number[]>; pytorch?: Record<PytorchForm, number[]> };
}

/** The form fastest in most rounds (ties: the earlier form in PYTORCH_FORMS). */
export function mostRounds(counts: Record<PytorchForm, number>): PytorchForm {
  return PYTORCH_FORMS.reduce((a, b) => (counts[b] > counts[a] ? b : a));
}

function toRow(t: Timed, backend: string): Row {
  const batched = median(t.engine.batched);
  const loop = median(t.engine.loop);
  const row: Row = {
    algorithm: t.algorithm,
    backend,
    task: t.setting.task,
    msPerIteration: round(batched),
    msPerIterationIqr: rounded(quartiles(t.engine.batched)),
    naiveLoopMsPerIteration: round(loop),
    naiveLoopMsPerIterationIqr: rounded(quartiles(t.engine.loop)),
    speedup: round(loop / batched, 2),
    roundsMs: { engine: { batched: t.engine.batched.map((v) => round(v, 4)), loop: t.engine.loop.map((v) => round(v, 4)) } },
  };
  let line = `  ${backend.padEnd(6)} ${t.algorithm.padEnd(9)} ${t.setting.name.padEnd(8)} ${batched.toFixed(2).padStart(8)} ms (IQR ${row.msPerIterationIqr.map((v) => v.toFixed(2)).join('-')})  loop ${loop.toFixed(2).padStart(8)} ms`;
  if (t.pytorch.batched.length > 0) {
    const fastest = t.engine.batched.map((_, r) => PYTORCH_FORMS.reduce((a, b) => (t.pytorch[b][r] < t.pytorch[a][r] ? b : a)));
    const ratios = fastest.map((form, r) => t.pytorch[form][r] / t.engine.batched[r]);
    const counts = byForm((form) => fastest.filter((f) => f === form).length);
    Object.assign(row, {
      pytorchMsPerIteration: byForm((form) => round(median(t.pytorch[form]))),
      pytorchMsPerIterationIqr: byForm((form) => rounded(quartiles(t.pytorch[form]))),
      pytorchFastestForm: mostRounds(counts),
      pytorchFastestRounds: counts,
      speedupVsPytorch: round(median(ratios), 2),
      speedupVsPytorchIqr: rounded(quartiles(ratios), 2),
      roundsMs: { ...row.roundsMs, pytorch: byForm((form) => t.pytorch[form].map((v) => round(v, 4))) },
    });
    const forms = PYTORCH_FORMS.map((form) => `${form} ${row.pytorchMsPerIteration![form].toFixed(2)}`).join(', ');
    line += `  PyTorch ${forms} ms; fastest ${row.pytorchFastestForm}: engine x${row.speedupVsPytorch!.toFixed(2)} (IQR ${row.speedupVsPytorchIqr!.map((v) => v.toFixed(2)).join('-')})`;
  }
  console.log(line);
  return row;
}

/**
 * One run: times every case on every engine path named in `paths` (skipping, with why, one that
 * cannot start here), interleaved with PyTorch's blocks when `pytorch` is given.
 */
export async function timing(paths: string[], options: TimingOptions, pytorch: PytorchServer | null, run = 1): Promise<Row[]> {
  const unknown = paths.filter((p) => !(p in ENGINE_PATHS));
  if (unknown.length > 0) throw new Error(`unknown engine path ${unknown.join(', ')}; expected some of ${Object.keys(ENGINE_PATHS).join(', ')}`);
  const { blockMs, warmUpMs } = options;
  const settings = timingSettings();
  const rows: Row[] = [];
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
      const rng = new Rng(run);
      const { params, next } = trainingData(config, setting, rng);
      const learner = new MetaLearner({ ...config, ...path.learner }, params);
      const hasPytorch = pytorch !== null && getAlgorithm(algorithm).trainsOn === 'episodes';
      return { id: `${algorithm}/${settingName}`, algorithm, setting, config, learner, next, hasPytorch, engine: { batched: [], loop: [] }, pytorch: byForm(() => []), rate: {} };
    });
    const before = tf.memory().numTensors;
    for (const t of timed) {
      if (t.hasPytorch) checkSameSetting(t, (await pytorch!.request<{ setting: PytorchSetting }>({ op: 'setup', case: t.id, algorithm: t.algorithm, setting: t.setting.name, seed: run })).setting);
      for (const mode of MODES) t.rate[mode] = warmUp(t, mode, warmUpMs);
      if (!t.hasPytorch) continue;
      for (const form of PYTORCH_FORMS) {
        t.rate[`pytorch ${form}`] = (await pytorch!.request<{ ms: number }>({ op: 'warmup', case: t.id, mode: form, ms: warmUpMs, minIterations: TIMING.warmUpMinIterations })).ms;
      }
    }
    for (let round = 0; round < TIMING.rounds; round++) {
      for (const t of timed) {
        for (const mode of MODES) t.engine[mode].push(timeBlock(t, mode, blockMs));
        if (!t.hasPytorch) continue;
        for (const form of PYTORCH_FORMS) {
          const key = `pytorch ${form}`;
          const block = await pytorch!.request<{ ms: number; blockMs: number }>({ op: 'time', case: t.id, mode: form, ms: blockMs, iterations: batchesFor(blockMs, t.rate[key]) });
          if (block.blockMs < blockMs) throw new Error(`PyTorch's ${form} block of ${t.id} lasted ${block.blockMs} ms, under the ${blockMs} ms asked for`);
          t.rate[key] = block.ms;
          t.pytorch[form].push(block.ms);
        }
      }
    }
    if (tf.memory().numTensors !== before) throw new Error(`timing on ${backend} leaked ${tf.memory().numTensors - before} tensors`);
    for (const t of timed) t.learner.dispose();
    rows.push(...timed.map((t) => toRow(t, backend)));
  }
  return rows;
}
