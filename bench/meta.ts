/**
 * Engine benchmark: `npm run bench:meta [-- options]` prints tables and writes bench/results/meta.json.
 *
 * Speed: ms per meta-iteration of every algorithm on the MAML paper's sinusoid setting (1-40-40-1,
 * meta-batch 25, K=10 support + 10 query, 1 inner step, inner lr 0.01, Adam 0.001), per backend,
 * batched (the engine's mode) and as a naive per-task loop, measured in the same run. ProtoNets only
 * classify, so it runs on 5-way Gaussian blobs in 1 dimension with the same body and the same
 * 10 support + 10 query examples per task (2 + 2 per class).
 * Quality: MAML meta-trained on sinusoids, then post-adaptation MSE on 2000 held-out sinusoid tasks
 * after 1 and 10 steps (with its standard error); and 5-way 1-shot / 5-shot test-class accuracy on
 * `digits` for maml, anil, protonet.
 *
 * Baseline: where a Python with PyTorch is found (Debian: `apt-get install python3-torch`), the same
 * MAML setting in plain PyTorch (bench/pytorch/maml_sine.py, learn2learn's algorithm, one thread) is
 * timed in the same run, and meta-trained for the same iterations; its parameters are scored on the
 * same test tasks by the same code as the engine's.
 *
 * Output: bench/results/meta.json holds the last run (setting, options, machine, rows, pytorch,
 * quality, digits) and `qualityByIterations`, the sinusoid result of every iteration count (and
 * number of seeds) run so far.
 *
 * Options: --iterations N (sinusoid MAML meta-training, default 8000), --seeds N (train the sinusoid
 * model, and the baseline, with seeds 0..N-1 and report the means; default 1), --digits-iterations N
 * (default 500), --backends wasm,cpu, --timing-iterations N (default 40), --warmup-ms N (each
 * algorithm's warm-up in each mode before timing, default 1500), --skip-quality,
 * --skip-digits, --pytorch auto|off|PYTHON (default auto: /usr/bin/python3 or python3 if it has torch),
 * --out PATH.
 */

import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { BackendUnavailableError, initBackend, tf, type BackendPreference } from '../src/meta/backend.js';
import { digits, gaussianBlobs, packEpisodes, sinusoid } from '../src/meta/families/index.js';
import {
  ALGORITHM_NAMES,
  initMetaParams,
  MetaLearner,
  metaStep,
  metaTrain,
  modelSpec,
  type AlgorithmName,
  type LearnerConfig,
  type MetaStepMode,
  type ParamArrays,
  type TrainEvent,
} from '../src/meta/index.js';
import { Rng } from '../src/meta/rng.js';
import type { EpisodeBatch, EpisodeShape, TaskFamily } from '../src/meta/types.js';

const { values: args } = parseArgs({
  options: {
    iterations: { type: 'string', default: '8000' },
    'digits-iterations': { type: 'string', default: '500' },
    backends: { type: 'string', default: 'wasm,cpu' },
    'timing-iterations': { type: 'string', default: '40' },
    'warmup-ms': { type: 'string', default: '1500' },
    'skip-quality': { type: 'boolean', default: false },
    'skip-digits': { type: 'boolean', default: false },
    pytorch: { type: 'string', default: 'auto' },
    seeds: { type: 'string', default: '1' },
    out: { type: 'string', default: 'bench/results/meta.json' },
  },
});

function positive(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got '${value}'`);
  return n;
}

const SETTING = {
  model: { hidden: [40, 40], activation: 'relu' as const },
  metaBatchSize: 25,
  shots: 10,
  queryShots: 10,
  innerSteps: 1,
  innerLr: 0.01,
  metaLr: 0.001,
};

/** Where an algorithm is timed: sinusoids, or (ProtoNets, classification only) 1-D blobs. */
function timingTask(algorithm: AlgorithmName): { family: TaskFamily; shape: EpisodeShape; label: string } {
  if (algorithm !== 'protonet') return { family: sinusoid(), shape: { shots: SETTING.shots, queryShots: SETTING.queryShots }, label: 'sinusoid' };
  return { family: gaussianBlobs({}, { inputDim: 1, ways: 5 }), shape: { shots: 2, queryShots: 2, ways: 5 }, label: 'gaussian-blobs 5-way 2+2 shots (classification)' };
}

function learnerConfig(algorithm: AlgorithmName, family: TaskFamily, hidden: number[], steps: number, lr: number, metaLr: number): LearnerConfig {
  return {
    algorithm,
    spec: modelSpec(family.kind, family.inputDim, { hidden, activation: 'relu' }, family.ways),
    inner: { steps, lr },
    metaLr,
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const round = (x: number, digits = 3) => Number(x.toFixed(digits));

/**
 * How the speed rows are measured. A fresh process needs ~100-200 MAML iterations (2-3 s) before a
 * step reaches its steady cost: V8 optimises tfjs's JS and tiers the wasm kernels up from its
 * baseline compiler only once they are hot. With a fixed 30-iteration warm-up, whichever algorithm
 * was timed first (MAML) was measured mid-warm-up, at 2-3x its cost. So: every algorithm warms up in
 * both modes for a fixed time before any timing, then timing runs in rounds, each round one batched
 * and one per-task-loop block of every algorithm, so load changes on a shared machine hit every
 * algorithm and both modes alike; a row is the median over rounds.
 */
const TIMING = { rounds: 9, warmUpMs: positive('warmup-ms', args['warmup-ms']), warmUpMinIterations: 10 };

/** One algorithm being timed: its learner, its own task stream and the block times per mode. */
interface Timed {
  algorithm: AlgorithmName;
  label: string;
  learner: MetaLearner;
  next: () => EpisodeBatch;
  ms: Record<MetaStepMode, number[]>;
}

/** Runs `iterations` meta-steps and returns ms per step; batches are sampled before the timer starts. */
function timeBlock(t: Timed, mode: MetaStepMode, iterations: number): number {
  const batches = Array.from({ length: iterations }, t.next);
  const start = performance.now();
  for (const batch of batches) metaStep(t.learner, batch, mode);
  return (performance.now() - start) / iterations;
}

function warmUp(t: Timed, mode: MetaStepMode): void {
  const start = performance.now();
  for (let i = 0; i < TIMING.warmUpMinIterations || performance.now() - start < TIMING.warmUpMs; i++) metaStep(t.learner, t.next(), mode);
}

interface Row {
  algorithm: AlgorithmName;
  backend: string;
  task: string;
  msPerIteration: number;
  naiveLoopMsPerIteration: number;
  speedup: number;
}

async function timing(backends: BackendPreference[], iterations: number): Promise<Row[]> {
  const rows: Row[] = [];
  // Per round: a quarter as many per-task-loop iterations (each costs ~5-10x a batched one).
  const batchedPerBlock = Math.max(1, Math.ceil(iterations / TIMING.rounds));
  const loopPerBlock = Math.max(1, Math.ceil(iterations / 4 / TIMING.rounds));
  for (const preference of backends) {
    let backend: string;
    try {
      backend = await initBackend(preference);
    } catch (err) {
      if (!(err instanceof BackendUnavailableError)) throw err;
      console.log(`skipping backend ${preference}: ${err.reason}`);
      continue;
    }
    const timed: Timed[] = ALGORITHM_NAMES.map((algorithm) => {
      const { family, shape, label } = timingTask(algorithm);
      const config = learnerConfig(algorithm, family, SETTING.model.hidden, SETTING.innerSteps, SETTING.innerLr, SETTING.metaLr);
      const rng = new Rng(1);
      const learner = new MetaLearner(config, initMetaParams(config, rng));
      const next = () => packEpisodes(Array.from({ length: SETTING.metaBatchSize }, () => family.sampleEpisode(rng, 'train', shape)));
      return { algorithm, label, learner, next, ms: { batched: [], loop: [] } };
    });
    const before = tf.memory().numTensors;
    for (const t of timed) for (const mode of ['batched', 'loop'] as const) warmUp(t, mode);
    for (let round = 0; round < TIMING.rounds; round++) {
      for (const t of timed) {
        t.ms.batched.push(timeBlock(t, 'batched', batchedPerBlock));
        t.ms.loop.push(timeBlock(t, 'loop', loopPerBlock));
      }
    }
    if (tf.memory().numTensors !== before) throw new Error(`timing on ${backend} leaked ${tf.memory().numTensors - before} tensors`);
    for (const t of timed) {
      t.learner.dispose();
      const batched = median(t.ms.batched);
      const loop = median(t.ms.loop);
      rows.push({ algorithm: t.algorithm, backend, task: t.label, msPerIteration: round(batched), naiveLoopMsPerIteration: round(loop), speedup: round(loop / batched, 2) });
      const spread = `${Math.min(...t.ms.batched).toFixed(2)}-${Math.max(...t.ms.batched).toFixed(2)}`;
      console.log(`  ${backend.padEnd(6)} ${t.algorithm.padEnd(9)} ${batched.toFixed(2).padStart(8)} ms (rounds ${spread})  loop ${loop.toFixed(2).padStart(8)} ms  x${(loop / batched).toFixed(2)}`);
    }
  }
  return rows;
}

/** Runs metaTrain to the end and returns the meta-parameters with the last validation metrics. */
async function train(config: Parameters<typeof metaTrain>[0]): Promise<{ params: ParamArrays; valLoss: number; valAccuracy?: number; msPerIteration: number }> {
  const start = performance.now();
  for await (const event of metaTrain(config) as AsyncGenerator<TrainEvent>) {
    if (event.type === 'metrics') {
      const acc = event.valAccuracy === undefined ? '' : `  val acc ${(100 * event.valAccuracy).toFixed(1)}%`;
      console.log(`    iter ${String(event.iteration).padStart(6)}  train ${event.trainLoss.toFixed(4)}  val ${event.valLoss.toFixed(4)}${acc}`);
    }
    if (event.type === 'result') {
      const iterations = event.iteration;
      return { params: event.model.params, valLoss: event.valLoss, valAccuracy: event.valAccuracy, msPerIteration: (performance.now() - start) / iterations };
    }
  }
  throw new Error('metaTrain ended without a result');
}

/** Post-adaptation loss and accuracy of `params` on `batch` after `steps` inner steps. */
function evaluateAfter(config: LearnerConfig, params: ParamArrays, batch: EpisodeBatch, steps: number) {
  const learner = new MetaLearner({ ...config, inner: { ...config.inner, steps } }, params);
  try {
    return learner.evaluate(batch);
  } finally {
    learner.dispose();
  }
}

/**
 * The held-out sinusoid test tasks: K=10 support, 100 query points each. The MSE of one task grows
 * with its amplitude squared, so a mean over 100 tasks moves by +-0.1 from one draw of tasks to the
 * next (measured: 0.58-0.86 after 1 step for one model); 2000 tasks, scored as 20 disjoint sets of
 * 100, give the mean and show that spread. The set is fixed (its own seed), never tuned against.
 */
const SINE_TEST = { tasks: 2000, setSize: 100, queryPoints: 100 };

/**
 * Mean post-adaptation MSE over the test tasks, its standard error from the 20 disjoint 100-task
 * sets, their range, and their median (which one diverging task cannot move).
 */
function sinusoidScore(config: LearnerConfig, params: ParamArrays, sets: EpisodeBatch[], steps: number) {
  const means = sets.map((batch) => evaluateAfter(config, params, batch, steps).loss);
  const mean = means.reduce((a, b) => a + b, 0) / means.length;
  const sd = Math.sqrt(means.reduce((a, m) => a + (m - mean) ** 2, 0) / (means.length - 1));
  return { mean: round(mean, 4), standardError: round(sd / Math.sqrt(means.length), 4), per100TaskSet: { min: round(Math.min(...means), 3), median: round(median(means), 3), max: round(Math.max(...means), 3) } };
}

/** One trained model's score after 1 and 10 steps. */
function sinusoidScores(config: LearnerConfig, params: ParamArrays, sets: EpisodeBatch[]) {
  const oneStep = sinusoidScore(config, params, sets, 1);
  const tenSteps = sinusoidScore(config, params, sets, 10);
  return {
    mse1Step: oneStep.mean,
    mse10Steps: tenSteps.mean,
    standardError: { mse1Step: oneStep.standardError, mse10Steps: tenSteps.standardError },
    per100TaskSet: { mse1Step: oneStep.per100TaskSet, mse10Steps: tenSteps.per100TaskSet },
  };
}

type SeedScore = { seed: number } & ReturnType<typeof sinusoidScores>;

/**
 * Several training seeds: the means over seeds, and as standard error the spread between seeds
 * (it is 2-3x the test set's own, so one seed alone says little); one seed: that seed's score.
 */
function overSeeds(scores: SeedScore[]) {
  if (scores.length === 1) return { ...scores[0], bySeed: scores };
  const stat = (pick: (s: SeedScore) => number) => {
    const xs = scores.map(pick);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1));
    return { mean: round(mean, 4), standardError: round(sd / Math.sqrt(xs.length), 4) };
  };
  const [one, ten] = [stat((s) => s.mse1Step), stat((s) => s.mse10Steps)];
  return { mse1Step: one.mean, mse10Steps: ten.mean, standardError: { mse1Step: one.standardError, mse10Steps: ten.standardError }, bySeed: scores };
}

/** Runs `jobs` at most `width` at a time. */
async function pool<T>(jobs: (() => Promise<T>)[], width: number): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  const lane = async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, jobs.length) }, lane));
  return results;
}

async function sinusoidQuality(iterations: number, seeds: number, python: string | null) {
  const family = sinusoid({ heldOutTasks: SINE_TEST.tasks });
  const { innerSteps, innerLr, metaLr, metaBatchSize, shots, queryShots } = SETTING;
  const every = Math.max(1, Math.floor(iterations / 10));
  const rng = new Rng(12345);
  const tasks = family.heldOutTasks('test');
  const sets = Array.from({ length: SINE_TEST.tasks / SINE_TEST.setSize }, (_, i) =>
    packEpisodes(tasks.slice(i * SINE_TEST.setSize, (i + 1) * SINE_TEST.setSize).map((task) => family.episodeFor(task, rng, { shots, queryShots: SINE_TEST.queryPoints }))),
  );
  const config = learnerConfig('maml', family, SETTING.model.hidden, innerSteps, innerLr, metaLr);
  const seedList = Array.from({ length: seeds }, (_, seed) => seed);

  // The PyTorch baseline meta-trains in child processes meanwhile (one thread each); its wall time
  // is what this part of the benchmark waits for, so it gets every core while the engine shares one.
  const baseline = python
    ? pool(seedList.map((seed) => () => pytorchRun(python, ['--iterations', String(iterations), '--seed', String(seed)])), cpus().length)
    : undefined;
  baseline?.catch(() => undefined); // awaited below; this only keeps an early failure from going unhandled

  const engine: SeedScore[] = [];
  let msPerIteration = 0;
  for (const seed of seedList) {
    console.log(`\nMAML on sinusoids, ${iterations} meta-iterations (${metaBatchSize} tasks each), seed ${seed}:`);
    const trained = await train({
      algorithm: 'maml',
      model: SETTING.model,
      families: family,
      hyper: { iterations, metaBatchSize, shots, queryShots, innerSteps, innerLr, metaLr, evalEvery: every, checkpointEvery: iterations, seed },
    });
    engine.push({ seed, ...sinusoidScores(config, trained.params, sets) });
    msPerIteration += trained.msPerIteration / seeds;
  }
  const quality: Record<string, unknown> = {
    iterations,
    seeds,
    ...overSeeds(engine),
    testTasks: SINE_TEST.tasks,
    queryPointsPerTask: SINE_TEST.queryPoints,
    trainMsPerIteration: round(msPerIteration, 2),
  };
  if (baseline) {
    console.log('\nwaiting for the PyTorch baseline to finish meta-training');
    const runs = await baseline;
    quality.pytorch = { ...overSeeds(runs.map((run, seed) => ({ seed, ...sinusoidScores(config, run.params!, sets) }))), trainSeconds: runs.map((run) => round(run.trainSeconds!, 1)) };
  }
  return quality;
}

/** 5-way few-shot digits; an MLP body as in the MAML paper's non-convolutional Omniglot baseline. */
const DIGITS = {
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

async function digitsQuality(iterations: number) {
  const family = digits({}, { ways: DIGITS.ways });
  const rows: Record<string, unknown>[] = [];
  for (const shots of [1, 5]) {
    const rng = new Rng(777 + shots);
    const test = packEpisodes(Array.from({ length: DIGITS.testEpisodes }, () => family.sampleEpisode(rng, 'test', { shots, queryShots: DIGITS.testQueryShots, ways: DIGITS.ways })));
    for (const algorithm of ['maml', 'anil', 'protonet'] as const) {
      console.log(`\n${algorithm} on digits, ${DIGITS.ways}-way ${shots}-shot, ${iterations} meta-iterations:`);
      const { hidden, metaBatchSize, queryShots, innerSteps, innerLr, metaLr } = DIGITS;
      const trained = await train({
        algorithm,
        model: { hidden, activation: 'relu' },
        families: family,
        hyper: { iterations, metaBatchSize, shots, queryShots, ways: DIGITS.ways, innerSteps, innerLr, metaLr, evalEvery: Math.max(1, Math.floor(iterations / 4)), checkpointEvery: iterations, seed: 0 },
      });
      const config = learnerConfig(algorithm, family, hidden, innerSteps, innerLr, metaLr);
      const result = evaluateAfter(config, trained.params, test, DIGITS.testSteps);
      console.log(`    test accuracy ${(100 * result.accuracy!).toFixed(1)}% over ${DIGITS.testEpisodes} episodes`);
      rows.push({
        algorithm,
        ways: DIGITS.ways,
        shots,
        accuracy: round(result.accuracy!, 4),
        iterations,
        testEpisodes: DIGITS.testEpisodes,
        valAccuracy: trained.valAccuracy === undefined ? undefined : round(trained.valAccuracy, 4),
        trainMsPerIteration: round(trained.msPerIteration, 2),
      });
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------
// The PyTorch baseline (bench/pytorch/maml_sine.py), run as a child process.

const PYTORCH_SCRIPT = new URL('./pytorch/maml_sine.py', import.meta.url).pathname;

function run(command: string, argv: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, argv, { maxBuffer: 64 << 20 }, (error, stdout, stderr) => (error ? reject(new Error(`${command} ${argv.join(' ')}: ${stderr || error.message}`)) : resolve(stdout)));
  });
}

/** A Python that imports torch, or null (with why) when there is none or --pytorch off. */
async function findPytorch(choice: string): Promise<{ python: string | null; reason?: string }> {
  if (choice === 'off') return { python: null, reason: '--pytorch off' };
  const candidates = choice === 'auto' ? ['/usr/bin/python3', 'python3'] : [choice];
  for (const python of candidates) {
    try {
      await run(python, ['-c', 'import torch']);
      return { python };
    } catch {
      // next candidate
    }
  }
  return { python: null, reason: `no Python with torch among ${candidates.join(', ')} (Debian: apt-get install python3-torch)` };
}

interface PytorchRun {
  torch: string;
  threads: number;
  msPerIteration?: number;
  trainSeconds?: number;
  params?: ParamArrays;
}

async function pytorchRun(python: string, argv: string[]): Promise<PytorchRun> {
  const out = JSON.parse(await run(python, [PYTORCH_SCRIPT, ...argv])) as Omit<PytorchRun, 'params'> & { params?: Record<string, { shape: number[]; data: number[] }> };
  const params = out.params && Object.fromEntries(Object.entries(out.params).map(([name, { shape, data }]) => [name, { shape, data: Float32Array.from(data) }]));
  return { ...out, params };
}

function printTable(rows: Row[]): void {
  console.log('\nalgorithm  backend  ms/iter (batched)  ms/iter (per-task loop)  speed-up  task');
  for (const r of rows) {
    console.log(
      `${r.algorithm.padEnd(10)} ${r.backend.padEnd(8)} ${r.msPerIteration.toFixed(2).padStart(17)} ${r.naiveLoopMsPerIteration.toFixed(2).padStart(24)} ${`x${r.speedup.toFixed(2)}`.padStart(9)}  ${r.task}`,
    );
  }
}

async function main(): Promise<void> {
  const backends = args.backends.split(',').map((b) => b.trim()) as BackendPreference[];
  const timingIterations = positive('timing-iterations', args['timing-iterations']);
  const iterations = positive('iterations', args.iterations);
  const digitsIterations = positive('digits-iterations', args['digits-iterations']);
  const seeds = positive('seeds', args.seeds);
  const started = performance.now();
  const load = loadavg()[0];
  console.log(`timing ${ALGORITHM_NAMES.join(', ')} on ${backends.join(', ')} (load average ${load.toFixed(2)} on ${cpus().length} cores)`);
  const rows = await timing(backends, timingIterations);
  printTable(rows);
  const pytorch = await findPytorch(args.pytorch);
  let baseline: Record<string, unknown> = { skipped: pytorch.reason };
  if (pytorch.python) {
    const timed = await pytorchRun(pytorch.python, ['--timing-iterations', String(timingIterations)]);
    const ms = timed.msPerIteration!;
    const speedup = Object.fromEntries(rows.filter((r) => r.algorithm === 'maml').map((r) => [r.backend, round(ms / r.msPerIteration, 2)]));
    baseline = { python: pytorch.python, torch: timed.torch, threads: timed.threads, mamlMsPerIteration: round(ms), engineSpeedup: speedup };
    console.log(`\nplain PyTorch ${timed.torch} (${timed.threads} thread), same MAML setting: ${ms.toFixed(2)} ms per iteration; engine ${Object.entries(speedup).map(([b, x]) => `x${x} on ${b}`).join(', ')}`);
  } else {
    console.log(`\nPyTorch baseline skipped: ${pytorch.reason}`);
  }

  const result: Record<string, unknown> = {
    setting: {
      ...SETTING,
      architecture: '1-40-40-1',
      iterationIncludes: 'the meta-step: upload of the meta-batch, forward and backward passes, one gradient download, the Adam update (the meta-batch is sampled and packed before the timer starts)',
      timing: `every algorithm warmed up for ${TIMING.warmUpMs} ms in each mode first; then ${TIMING.rounds} rounds, each timing one batched and one per-task-loop block of every algorithm in turn; a row is the median over rounds`,
      protonet: 'ProtoNets classify only: timed on 5-way Gaussian blobs in 1 dimension, 2 support + 2 query per class (10 + 10 per task), same 1-40-40 body',
      naiveLoop: "the same algorithm, one task of the meta-batch at a time ('loop' mode), measured in the same run",
      sinusoidTest:
        'as learn2learn / the MAML paper: 1-40-40-1 relu, nn.Linear init (weights and biases U(+-1/sqrt(fan_in))), per-task mean MSE averaged over 25 tasks, ' +
        'Adam 0.001, inner lr 0.01 (1 step in training; 1 and 10 steps at test), A~U[0.1,5], phase~U[0,pi], x~U[-5,5], K=10 at test; ' +
        'scored on 2000 held-out tasks x 100 query points (a 100-task mean varies by about +-0.1 between task draws); ' +
        'with several seeds, mse1Step / mse10Steps are means over seeds and standardError the spread between seeds; the PyTorch baseline is scored on the same tasks by the same code',
      reference: 'quoted, not measured here: PyTorch 1.13 CPU, 1 thread: 13.5 ms per MAML meta-iteration (learn2learn 17.5-20); learn2learn MSE 0.37 (1 step) / 0.08 (10 steps) after 20,000 iterations',
    },
    options: { iterations, seeds, digitsIterations, timingIterations, backends },
    machine: { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, loadAverageAtStart: round(load, 2), tfjs: tf.version.tfjs },
    rows,
    pytorch: baseline,
  };
  if (!args['skip-quality']) {
    await initBackend(rows.some((r) => r.backend === 'tensorflow') ? 'tensorflow' : 'wasm');
    const quality = await sinusoidQuality(iterations, seeds, pytorch.python);
    result.quality = quality;
    const line = (q: { mse1Step: number; mse10Steps: number }) => `1 step ${q.mse1Step}, 10 steps ${q.mse10Steps}`;
    console.log(`\nsinusoid MSE on ${SINE_TEST.tasks} held-out test tasks: ${line(quality as never)}`);
    if (quality.pytorch) console.log(`  plain PyTorch, same tasks, same scoring: ${line(quality.pytorch as never)}`);
    if (!args['skip-digits']) {
      result.digitsSetting = { ...DIGITS, classes: 'test classes disjoint from meta-training classes (24/8/8 split of 10 digits x 4 rotations)' };
      result.digits = await digitsQuality(digitsIterations);
    }
  }
  // One file keeps the sinusoid result of every iteration count run (e.g. the default and 20,000).
  const previous = existsSync(args.out) ? (JSON.parse(readFileSync(args.out, 'utf8')) as { qualityByIterations?: Record<string, unknown> }) : {};
  result.qualityByIterations = { ...previous.qualityByIterations };
  const runKey = seeds === 1 ? String(iterations) : `${iterations}, seeds 0-${seeds - 1}`;
  if (result.quality) (result.qualityByIterations as Record<string, unknown>)[runKey] = { ...(result.quality as object), date: new Date().toISOString().slice(0, 10) };
  result.totalSeconds = round((performance.now() - started) / 1000, 1);
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(args.out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`\nwrote ${args.out} in ${result.totalSeconds} s`);
}

await main();
