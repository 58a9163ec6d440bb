/**
 * Engine benchmark: `npm run bench:meta [-- options]` prints tables and writes bench/results/meta.json.
 *
 * Speed (meta-timing.ts): ms per meta-iteration of every algorithm on the MAML paper's sinusoid
 * setting (1-40-40-1, meta-batch 25, K=10 support + 10 query, 1 inner step, inner lr 0.01, Adam
 * 0.001; ProtoNets, which only classify, on 5-way Gaussian blobs in 1 dimension with the same body and
 * 10 + 10 examples per task), and of MAML and ProtoNets at digits size (196-128-64-5, 5-way 1-shot,
 * meta-batch 8, 1 inner step), per engine path (--backends), batched (the engine's mode) and as a
 * naive per-task loop. Next to each row, where a Python with PyTorch is found (Debian: `apt-get
 * install python3-torch`), the same algorithm and setting in plain PyTorch, one thread, Adam with
 * foreach=True (bench/pytorch/meta_baseline.py), in three forms: the whole meta-batch batched,
 * functorch's vmap of grad, and task by task as learn2learn runs it, timed by a long-lived Python
 * child in rounds interleaved with the engine's. Every timed block lasts at least --block-ms on every
 * side; a round's ratio is the fastest PyTorch form of that round over the engine batched; a run's
 * row is the median over its 9 rounds (with interquartile ranges), and the headline is the median
 * over --runs runs (default 3) with its [min, max] (see TIMING in meta-timing.ts).
 * Quality: MAML meta-trained on sinusoids, then post-adaptation MSE on 2000 held-out sinusoid tasks
 * after 1 and 10 steps (with its standard error), next to the same MAML meta-trained in PyTorch for the
 * same iterations (bench/pytorch/maml_sine.py) and scored on the same tasks by the same code;
 * multitask (hard parameter sharing) trained as long and scored on the same tasks with 5 and 10
 * support points (quality.multitask); and 5-way 1-shot / 5-shot test-class accuracy on `digits` for
 * maml, anil, protonet and multitask. Multitask's speed row times its iteration: one Adam step on a
 * minibatch of 25 pool tasks x 20 points (no PyTorch counterpart: bench/pytorch is episodic).
 *
 * Output: bench/results/meta.json holds the last run: the timing section (timingSetting, machine,
 * rows: each row over runs, timingRuns: every run's rows with its load average, pytorch), then
 * setting, options, quality, digits, the conv section, loadAverage (1, 5, 15 min at the start and
 * end of each section: timing, quality, digits, conv) and `qualityByIterations`, the sinusoid result
 * of every iteration count (and number of seeds) run so far.
 *
 * Options: --iterations N (sinusoid MAML meta-training, default 8000), --seeds N (train the sinusoid
 * model, and the baseline, with seeds 0..N-1 and report the means; default 1), --digits-iterations N
 * (default 500), --backends fused,wasm,cpu (the engine paths to time, see ENGINE_PATHS), --quality-backend B
 * (the backend meta-training for quality runs on: default TFJS_BACKEND, else auto; recorded as
 * quality.backend), --runs N (timing runs, default 3; each starts fresh learners and PyTorch cases),
 * --block-ms N (the shortest timed block, default 200; it replaces --timing-iterations: a block runs
 * meta-steps until that time has passed, so its iteration count follows each side's speed),
 * --warmup-ms N (each case's warm-up in each mode, engine and PyTorch, before timing in each run,
 * default 1500), --only-timing (run the timing section alone and write it into the results file,
 * keeping the other sections of the run before, as --only-conv does), --skip-quality, --skip-digits,
 * --pytorch auto|off|PYTHON (default auto: /usr/bin/python3 or python3 if it has torch), --out PATH.
 * Conv section (digitsConv, see convDigitsQuality): --conv-iterations N (ProtoNets, engine and
 * PyTorch, default 2000), --conv-adapting-iterations N (MAML and ANIL with a learned head, default
 * 600), --conv-zero-head-iterations N (MAML and ANIL with a zero head, default 2000),
 * --conv-test-episodes N (default 600), --conv-channels C1,C2,.. (default 64,64,64,64), --skip-conv,
 * --only-conv (run it alone and write it into the results file, keeping the other sections of the
 * run before), --conv-rows R1,R2,.. (with --only-conv: re-run only these rows of the section, of
 * CONV_ROWS, and keep the previous run's others; every row carries the date it was measured).
 */

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend, tf, type BackendPreference } from '../src/meta/backend.js';
import { digits, packEpisodes, sinusoid } from '../src/meta/families/index.js';
import { meanCi, queryScores, type MeanCi } from '../src/meta/evaluation.js';
import { nearestMeanPredict } from '../src/meta/raw-baseline.js';
import { MetaLearner, metaTrain, modelSpec, type LearnerConfig, type ParamArrays, type TrainEvent } from '../src/meta/index.js';
import { Rng } from '../src/meta/rng.js';
import { sliceEpisodeBatch } from '../src/meta/tensors.js';
import type { EpisodeBatch } from '../src/meta/types.js';
import { loadAverage, printTable, timingRuns, withLoad, type LoadSpan, type SummaryRow } from './meta-runs.js';
import { CONV_DIGITS, DIGITS, learnerConfig, median, MULTITASK, PYTORCH_FORMS, round, SETTING, TIMING, type TimingOptions } from './meta-timing.js';
import { findPytorch, gradientCheck, mamlSineRun, PytorchServer } from './pytorch/baseline.js';
import { pytorchDigitsProtonet, writeDigitsData } from './pytorch/digits.js';

const { values: args } = parseArgs({
  options: {
    iterations: { type: 'string', default: '8000' },
    'digits-iterations': { type: 'string', default: '500' },
    backends: { type: 'string', default: 'fused,wasm,cpu' },
    'quality-backend': { type: 'string', default: process.env.TFJS_BACKEND ?? 'auto' },
    runs: { type: 'string', default: String(TIMING.runs) },
    'block-ms': { type: 'string', default: String(TIMING.blockMs) },
    'only-timing': { type: 'boolean', default: false },
    'warmup-ms': { type: 'string', default: '1500' },
    'skip-quality': { type: 'boolean', default: false },
    'skip-digits': { type: 'boolean', default: false },
    'conv-iterations': { type: 'string', default: '2000' },
    'conv-adapting-iterations': { type: 'string', default: '600' },
    'conv-zero-head-iterations': { type: 'string', default: '2000' },
    'conv-rows': { type: 'string', default: '' },
    'conv-test-episodes': { type: 'string', default: String(CONV_DIGITS.testEpisodes) },
    'conv-channels': { type: 'string', default: CONV_DIGITS.channels.join(',') },
    'skip-conv': { type: 'boolean', default: false },
    'only-conv': { type: 'boolean', default: false },
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

/**
 * Multitask on the same sinusoid tasks: its body trained on a pool of 1000 training tasks for as many
 * iterations as MAML (each a minibatch of 25 pool tasks x 20 points, as many examples as MAML's
 * meta-batch), then a ridge head fitted on 5 and on 10 support points of each test task (it runs
 * no inner steps, so there is one score per support size, not per step count).
 */
async function multitaskSinusoidQuality(iterations: number, family: ReturnType<typeof sinusoid>) {
  const { metaBatchSize, shots, queryShots, innerSteps, innerLr } = SETTING;
  const { metaLr, tasks } = MULTITASK;
  console.log(`
multitask on sinusoids, ${iterations} iterations (${metaBatchSize} pool tasks of ${tasks} each):`);
  const trained = await train({
    algorithm: 'multitask',
    model: SETTING.model,
    families: family,
    hyper: { iterations, metaBatchSize, shots, queryShots, metaLr, tasks, evalEvery: Math.max(1, Math.floor(iterations / 10)), checkpointEvery: iterations, seed: 0 },
  });
  const config = learnerConfig('multitask', family, SETTING.model.hidden, innerSteps, innerLr, metaLr);
  const scores: Record<string, unknown> = {};
  for (const support of [5, 10]) {
    // The step count is not used by multitask's closed-form head.
    const score = sinusoidScore(config, trained.params, sineTestSets(family, support), 1);
    scores[`mse${support}Shots`] = score.mean;
    scores[`standardError${support}Shots`] = score.standardError;
  }
  console.log(`  post-adaptation MSE: 5 shots ${String(scores.mse5Shots)}, 10 shots ${String(scores.mse10Shots)}`);
  return { iterations, ...MULTITASK, ...scores, testTasks: SINE_TEST.tasks, queryPointsPerTask: SINE_TEST.queryPoints, trainMsPerIteration: round(trained.msPerIteration, 2) };
}

/** The held-out sinusoid test tasks as 20 sets of 100, each task with `shots` support points. */
function sineTestSets(family: ReturnType<typeof sinusoid>, shots: number): EpisodeBatch[] {
  const rng = new Rng(12345);
  const tasks = family.heldOutTasks('test');
  return Array.from({ length: SINE_TEST.tasks / SINE_TEST.setSize }, (_, i) =>
    packEpisodes(tasks.slice(i * SINE_TEST.setSize, (i + 1) * SINE_TEST.setSize).map((task) => family.episodeFor(task, rng, { shots, queryShots: SINE_TEST.queryPoints }))),
  );
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
  const sets = sineTestSets(family, shots);
  const config = learnerConfig('maml', family, SETTING.model.hidden, innerSteps, innerLr, metaLr);
  const seedList = Array.from({ length: seeds }, (_, seed) => seed);

  // The PyTorch baseline meta-trains in child processes meanwhile (one thread each); its wall time
  // is what this part of the benchmark waits for, so it gets every core while the engine shares one.
  const baseline = python
    ? pool(seedList.map((seed) => () => mamlSineRun(python, iterations, seed)), cpus().length)
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
  const multitask = await multitaskSinusoidQuality(iterations, family);
  const quality: Record<string, unknown> = {
    iterations,
    seeds,
    ...overSeeds(engine),
    testTasks: SINE_TEST.tasks,
    queryPointsPerTask: SINE_TEST.queryPoints,
    trainMsPerIteration: round(msPerIteration, 2),
    multitask,
  };
  if (baseline) {
    console.log('\nwaiting for the PyTorch baseline to finish meta-training');
    const runs = await baseline;
    quality.pytorch = { ...overSeeds(runs.map((run, seed) => ({ seed, ...sinusoidScores(config, run.params, sets) }))), trainSeconds: runs.map((run) => round(run.trainSeconds, 1)) };
  }
  return quality;
}


async function digitsQuality(iterations: number) {
  const family = digits({}, { ways: DIGITS.ways });
  const rows: Record<string, unknown>[] = [];
  for (const shots of [1, 5]) {
    const rng = new Rng(777 + shots);
    const test = packEpisodes(Array.from({ length: DIGITS.testEpisodes }, () => family.sampleEpisode(rng, 'test', { shots, queryShots: DIGITS.testQueryShots, ways: DIGITS.ways })));
    for (const algorithm of ['maml', 'anil', 'protonet', 'multitask'] as const) {
      console.log(`\n${algorithm} on digits, ${DIGITS.ways}-way ${shots}-shot, ${iterations} meta-iterations:`);
      const { hidden, metaBatchSize, queryShots, innerSteps, innerLr } = DIGITS;
      const metaLr = algorithm === 'multitask' ? MULTITASK.metaLr : DIGITS.metaLr;
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
        body: 'mlp',
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

/**
 * Nearest class mean on raw pixels (no learning), per test episode: the floor a learned body must
 * clear, and the service's `raw` evaluation baseline (the same function).
 */
function rawPixelAccuracies(test: EpisodeBatch, ways: number): number[] {
  return Array.from({ length: test.tasks }, (_, t) => {
    const episode = sliceEpisodeBatch(test, t);
    const support = { ...episode.support, n: test.supportSize };
    const query = { ...episode.query, n: test.querySize };
    return queryScores(nearestMeanPredict(support, query.x, test.inputDim, ways), query).accuracy!;
  });
}

/** Test accuracy of each episode after adaptation (`steps` inner steps; ProtoNets runs none), as the service adapts. */
function episodeAccuracies(config: LearnerConfig, params: ParamArrays, test: EpisodeBatch, steps: number): number[] {
  const learner = new MetaLearner({ ...config, inner: { ...config.inner, steps } }, params);
  try {
    return Array.from({ length: test.tasks }, (_, t) => learner.evaluate(sliceEpisodeBatch(test, t)).accuracy!);
  } finally {
    learner.dispose();
  }
}

const pct = (m: MeanCi) => ({ accuracy: round(m.mean, 4), ci95: round(m.ci95, 4) });

/** The conv section's rows, in groups that `--conv-rows` names: each group runs at both shot counts. */
const CONV_ROWS = ['raw-pixels', 'protonet', 'maml', 'maml-zero-head', 'anil', 'anil-zero-head'] as const;
type ConvRows = (typeof CONV_ROWS)[number];

/** The group a conv row belongs to: a re-run of the group replaces all its rows. */
const convRowGroup = (row: Record<string, unknown>) => `${String(row.algorithm)}${row.zeroHead ? '-zero-head' : ''}` as ConvRows;

/**
 * Few-shot digits with the conv body (CONV_DIGITS): per shot count, the raw-pixel floor; ProtoNets
 * with the conv and the MLP body, in the engine and in plain PyTorch (bench/pytorch/digits_protonet.py,
 * one thread, the same iterations, training classes and test episodes), trained one after the other
 * so that neither slows the other; and MAML and ANIL on the conv body, with a learned and with a zero
 * head. Every row scored on the same 600 test episodes, with a 95% interval over episodes. Only the
 * groups in `only` run.
 */
async function convDigitsQuality(
  iterations: { protonet: number; adapting: number; zeroHead: number },
  testEpisodes: number,
  channels: number[],
  python: string | null,
  only: ReadonlySet<ConvRows>,
) {
  const { ways, inputShape, hidden, metaBatchSize, queryShots, metaLr, testQueryShots, adapting } = CONV_DIGITS;
  const family = digits({}, { ways });
  const tests: Record<number, EpisodeBatch> = {};
  for (const shots of [1, 5]) {
    const rng = new Rng(777 + shots);
    tests[shots] = packEpisodes(Array.from({ length: testEpisodes }, () => family.sampleEpisode(rng, 'test', { shots, queryShots: testQueryShots, ways })));
  }
  const dir = python && only.has('protonet') ? mkdtempSync(join(tmpdir(), 'fastadapt-digits-')) : null;
  if (dir) writeDigitsData(dir, tests);
  const models = { conv: { body: 'conv', inputShape, channels, activation: 'relu' }, mlp: { body: 'mlp', hidden, activation: 'relu' } } as const;
  const rows: Record<string, unknown>[] = [];
  const date = new Date().toISOString().slice(0, 10);
  const report = (row: Record<string, unknown> & { accuracy: number; ci95: number }) => {
    rows.push({ ...row, date });
    console.log(`    ${String(row.source).padEnd(8)} ${`${row.algorithm}${row.zeroHead ? ', zero head' : ''}`.padEnd(20)} ${String(row.body).padEnd(5)} ${(100 * row.accuracy).toFixed(1)}% +- ${(100 * row.ci95).toFixed(1)}${row.msPerIteration ? `   ${row.msPerIteration} ms/iteration` : ''}`);
  };
  try {
    for (const shots of [1, 5]) {
      const test = tests[shots];
      console.log(`\ndigits ${ways}-way ${shots}-shot, ${testEpisodes} test episodes:`);
      if (only.has('raw-pixels')) report({ source: 'none', algorithm: 'raw-pixels', body: 'none', shots, ...pct(meanCi(rawPixelAccuracies(test, ways))) });
      for (const body of only.has('protonet') ? (['conv', 'mlp'] as const) : []) {
        const trained = await train({
          algorithm: 'protonet',
          model: models[body],
          families: family,
          hyper: { iterations: iterations.protonet, metaBatchSize, shots, queryShots, ways, metaLr, evalEvery: iterations.protonet, checkpointEvery: iterations.protonet, seed: 0 },
        });
        // ProtoNets runs no inner steps: the inner settings are unused.
        const config: LearnerConfig = { algorithm: 'protonet', spec: modelSpec('classification', family.inputDim, models[body], ways), inner: { steps: 1, lr: 1 }, metaLr };
        const engine = new MetaLearner(config, trained.params).engine;
        report({ source: 'engine', engine, algorithm: 'protonet', body, shots, iterations: iterations.protonet, ...pct(meanCi(episodeAccuracies(config, trained.params, test, 1))), msPerIteration: round(trained.msPerIteration, 1) });
        if (!dir) continue;
        const run = await pytorchDigitsProtonet(python!, dir, { body, shots, iterations: iterations.protonet, seed: 0, ways, queryShots, metaBatchSize, metaLr, channels, hidden });
        report({ source: 'pytorch', algorithm: 'protonet', body, shots, iterations: iterations.protonet, accuracy: round(run.accuracy, 4), ci95: round(run.ci95, 4), msPerIteration: round(run.msPerIteration, 1), threads: run.threads, torch: run.torch });
      }
      for (const algorithm of ['maml', 'anil'] as const) {
        for (const zeroHead of [false, true]) {
          if (!only.has(convRowGroup({ algorithm, zeroHead }))) continue;
          const { innerSteps, testSteps } = adapting;
          const innerLr = (zeroHead ? adapting.zeroHeadInnerLr : adapting.innerLr)[algorithm];
          const its = zeroHead ? iterations.zeroHead : iterations.adapting;
          const trained = await train({
            algorithm,
            model: models.conv,
            families: family,
            hyper: { iterations: its, metaBatchSize: adapting.metaBatchSize, shots, queryShots: adapting.queryShots, ways, innerSteps, innerLr, metaLr, zeroHead, evalEvery: its, checkpointEvery: its, seed: 0 },
          });
          const config: LearnerConfig = { algorithm, spec: modelSpec('classification', family.inputDim, models.conv, ways), inner: { steps: innerSteps, lr: innerLr }, metaLr };
          const row = { source: 'engine', algorithm, zeroHead, body: 'conv', shots, iterations: its, innerLr, testSteps };
          report({ ...row, ...pct(meanCi(episodeAccuracies(config, trained.params, test, testSteps))), msPerIteration: round(trained.msPerIteration, 1) });
        }
      }
    }
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

/**
 * The PyTorch baselines' part of the results: what they are, their gradient check (the batched and
 * functorch forms against the per-task loop), and the sinusoid MAML figures the README quotes, per
 * engine path (the same as its row: median over runs, with their range).
 */
async function pytorchSummary(python: string, server: PytorchServer, rows: SummaryRow[]): Promise<Record<string, unknown>> {
  const check = await gradientCheck(python);
  const worst = check.checks.reduce((a, b) => (b.maxAbsDiff > a.maxAbsDiff ? b : a));
  const maml = rows.filter((r) => r.algorithm === 'maml' && r.task === 'sinusoid' && r.pytorchMsPerIteration);
  const summary = {
    python,
    torch: server.torch,
    threads: server.threads,
    forms: {
      batched:
        'the whole meta-batch at once: parameters expanded to per-task copies ([T, in, out]), torch.baddbmm, ' +
        'one torch.autograd.grad(create_graph=True) over the sum of the per-task support losses, mean query loss',
      functorch: "functorch's vmap over the tasks of one task's meta-loss, its inner steps taken with functorch.grad nested in grad_and_value (second order where the algorithm is)",
      loop: "the same algorithms one task at a time, learn2learn's way (per task: adapt, query loss; averaged)",
    },
    code: 'bench/pytorch/meta_baseline.py and algorithms.py; every form steps torch.optim.Adam(foreach=True)',
    gradientCheck: {
      dtype: check.dtype,
      maxAbsDiff: worst.maxAbsDiff,
      worst: `${worst.form} ${worst.algorithm} on ${worst.setting} (largest gradient entry ${round(worst.maxAbsGradient, 4)})`,
      checks: check.checks.length,
      forms: [...new Set(check.checks.map((c) => c.form))],
    },
    mamlSinusoid: Object.fromEntries(
      maml.map((r) => [r.backend, { engineMsPerIteration: r.msPerIteration, pytorchMsPerIteration: r.pytorchMsPerIteration, pytorchFastestForm: r.pytorchFastestForm, speedupVsPytorch: r.speedupVsPytorch, speedupVsPytorchRange: r.speedupVsPytorchRange, runs: r.runs }]),
    ),
  };
  const forms = maml[0] ? PYTORCH_FORMS.map((f) => `${f} ${maml[0].pytorchMsPerIteration![f]}`).join(', ') : '-';
  console.log(
    `\nplain PyTorch ${server.torch} (${server.threads} thread), sinusoid MAML ms per iteration (beside ${maml[0]?.backend ?? '-'}): ${forms}; ` +
      `meta-gradient against the per-task loop's: max abs difference ${worst.maxAbsDiff.toExponential(1)} over ${check.checks.length} checks (${summary.gradientCheck.forms.join(', ')})`,
  );
  return summary;
}

/**
 * The conv section (convDigitsQuality) with its setting, as the results file holds it. With
 * `previous` (the last run's section) and `--conv-rows`, only those rows run and the others are kept
 * from `previous`, each with its own date.
 */
async function convSection(python: string | null, skipped?: string, previous: Record<string, unknown> = {}) {
  const iterations = {
    protonet: positive('conv-iterations', args['conv-iterations']),
    adapting: positive('conv-adapting-iterations', args['conv-adapting-iterations']),
    zeroHead: positive('conv-zero-head-iterations', args['conv-zero-head-iterations']),
  };
  const testEpisodes = positive('conv-test-episodes', args['conv-test-episodes']);
  const channels = args['conv-channels'].split(',').map((c) => positive('conv-channels', c.trim()));
  const only = new Set<ConvRows>(CONV_ROWS);
  if (args['conv-rows']) {
    if (!args['only-conv']) throw new Error('--conv-rows needs --only-conv (it re-runs rows of the results file)');
    only.clear();
    for (const name of args['conv-rows'].split(',').map((r) => r.trim())) {
      if (!(CONV_ROWS as readonly string[]).includes(name)) throw new Error(`--conv-rows: '${name}' is not one of ${CONV_ROWS.join(', ')}`);
      only.add(name as ConvRows);
    }
  }
  const backend = await initBackend(args['quality-backend'] as BackendPreference);
  const fresh = await convDigitsQuality(iterations, testEpisodes, channels, python, only);
  // The groups the run left out keep the previous run's rows, and their date (a file from before
  // rows were dated has one for the section).
  const previousRows = (previous.digitsConv ?? []) as Record<string, unknown>[];
  const kept = previousRows.filter((r) => !only.has(convRowGroup(r))).map((r) => ({ ...r, date: r.date ?? previous.digitsConvDate }));
  const order = (r: Record<string, unknown>) => Number(r.shots) * CONV_ROWS.length + CONV_ROWS.indexOf(convRowGroup(r));
  return {
    digitsConvSetting: {
      ...CONV_DIGITS,
      channels,
      testEpisodes,
      iterations: iterations.protonet,
      adaptingIterations: iterations.adapting,
      zeroHeadIterations: iterations.zeroHead,
      backend,
      body: 'conv: per block a 3x3 convolution with bias, per-example layer norm over (h, w, c) with a per-channel scale and offset (PyTorch: GroupNorm(1, C)), relu, 2x2 max pool with ceil; 14 -> 7 -> 4 -> 2 -> 1',
      timing: 'msPerIteration: wall time of meta-training over its iterations (episode sampling included), engine and PyTorch alike; they train one after the other',
      pytorch: python ? 'bench/pytorch/digits_protonet.py, one thread, on the same training classes (exported) and test episodes' : skipped,
    },
    // By shots, then group; the sort is stable, so a group's rows stay in the order they ran in.
    digitsConv: [...kept, ...fresh].sort((a, b) => order(a) - order(b)),
  };
}

/**
 * The timing section: `--runs` runs of every case on every engine path (meta-timing.ts) beside the
 * PyTorch forms, the rows over runs, and the PyTorch summary; the keys it owns in the results file.
 */
async function timingSection(pytorch: { python: string | null; reason?: string }): Promise<Record<string, unknown>> {
  const paths = args.backends.split(',').map((b) => b.trim());
  const options: TimingOptions = { blockMs: positive('block-ms', args['block-ms']), warmUpMs: positive('warmup-ms', args['warmup-ms']), runs: positive('runs', args.runs) };
  console.log(`timing on ${paths.join(', ')}, ${options.runs} run(s) (load average ${loadAverage().join(', ')} on ${cpus().length} cores)`);
  if (options.runs < 3) console.log(`only ${options.runs} run(s): the headline ratio is the median over at least 3`);
  if (options.blockMs < TIMING.blockMs) console.log(`blocks of ${options.blockMs} ms: shorter than the ${TIMING.blockMs} ms the quoted figures are timed with`);
  if (!pytorch.python) console.log(`PyTorch baselines skipped: ${pytorch.reason}`);
  const started = performance.now();
  const server = pytorch.python ? await PytorchServer.start(pytorch.python) : null;
  let timed: Awaited<ReturnType<typeof timingRuns>>;
  try {
    timed = await timingRuns(paths, options, server);
  } finally {
    await server?.close();
  }
  printTable(timed.rows);
  return {
    timingSetting: {
      ...options,
      rounds: TIMING.rounds,
      backends: paths,
      iterationIncludes: 'the meta-step: upload of the meta-batch, forward and backward passes, one gradient download, the Adam update (the meta-batch is sampled and packed before the timer starts)',
      timing:
        `per run, every case warmed up for ${options.warmUpMs} ms in each mode, engine and PyTorch, first; then ${TIMING.rounds} rounds, each timing, for every case in turn, ` +
        `one block each of the engine batched, the engine per-task loop and every PyTorch form (batched, functorch, loop), each block at least ${options.blockMs} ms ` +
        '(meta-steps until that time has passed; PyTorch runs while the engine waits); every run starts fresh learners and fresh PyTorch cases',
      ratio:
        "speedupVsPytorch: per round, the fastest PyTorch form's ms over the engine batched ms of that round; a run's row (timingRuns) keeps the median over rounds and " +
        'the interquartile range of every figure; rows hold the median over runs with [min, max] over runs (the headline: never one run\'s figure)',
      protonet: 'ProtoNets classify only: timed on 5-way Gaussian blobs in 1 dimension, 2 support + 2 query per class (10 + 10 per task), same 1-40-40 body',
      digitsSize: "MAML and ProtoNets also timed at the digits quality run's size: 196-128-64-5 relu, 5-way 1-shot with 5 query examples per class, meta-batch 8, 1 inner step at lr 0.4 (rows whose task names it)",
      naiveLoop: "the same algorithm, one task of the meta-batch at a time ('loop' mode), measured in the same rounds",
      seconds: round((performance.now() - started) / 1000, 1),
    },
    machine: { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model, tfjs: tf.version.tfjs },
    rows: timed.rows,
    timingRuns: timed.runs,
    pytorch: server ? await pytorchSummary(pytorch.python!, server, timed.rows) : { skipped: pytorch.reason },
  };
}

/** Sections of the results file, each with its load average at start and end (loadAverage.<section>). */
type Section = 'timing' | 'quality' | 'digits' | 'conv';

/**
 * `base` with the keys of freshly run sections in place of its own and their load averages beside
 * its others': a full run (base: what it keeps of the run before) and --only-timing / --only-conv
 * (base: the file of the run before) write their results through this one merge.
 */
function withSections(base: Record<string, unknown>, fresh: Record<string, unknown>, loads: Partial<Record<Section, LoadSpan>>): Record<string, unknown> {
  return { ...base, ...fresh, loadAverage: { ...(base.loadAverage as object | undefined), ...loads } };
}

/**
 * The file of the run before without what a file from before the timing section existed said about
 * timing elsewhere (it would describe the old timing beside the new): its timing descriptions in
 * `setting`, timing options in `options`, the start load in `machine`.
 */
function withoutOldTiming(previous: Record<string, unknown>): Record<string, unknown> {
  const drop = (value: unknown, keys: string[]) => (value && typeof value === 'object' ? Object.fromEntries(Object.entries(value).filter(([k]) => !keys.includes(k))) : value);
  const { setting, options, ...rest } = previous;
  return {
    ...rest,
    ...(setting === undefined ? {} : { setting: drop(setting, ['iterationIncludes', 'timing', 'protonet', 'digitsSize', 'naiveLoop']) }),
    ...(options === undefined ? {} : { options: drop(options, ['timingIterations', 'warmUpMs', 'backends']) }),
  };
}

/** The results file of the run before, or nothing. */
function previousResults(): Record<string, unknown> {
  return existsSync(args.out) ? (JSON.parse(readFileSync(args.out, 'utf8')) as Record<string, unknown>) : {};
}

function writeResults(result: Record<string, unknown>): void {
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(args.out, `${JSON.stringify(result, null, 2)}\n`);
}

async function main(): Promise<void> {
  if (args['only-conv'] && args['only-timing']) throw new Error('--only-conv and --only-timing each re-run one section; run them one after the other');
  if (args['only-conv']) {
    // The conv section alone, into the last full run's file (its other sections keep their own run).
    const pytorch = await findPytorch(args.pytorch);
    const previous = previousResults();
    const { digitsConvDate: _undated, ...rest } = previous;
    const { result: conv, load } = await withLoad(() => convSection(pytorch.python, pytorch.reason, previous));
    writeResults(withSections(rest, conv, { conv: load }));
    console.log(`\nwrote the conv section into ${args.out}`);
    return;
  }
  if (args['only-timing']) {
    // The timing section alone, into the last full run's file (quality, digits and conv take hours).
    const pytorch = await findPytorch(args.pytorch);
    const { result: timed, load } = await withLoad(() => timingSection(pytorch));
    writeResults(withSections(withoutOldTiming(previousResults()), timed, { timing: load }));
    console.log(`\nwrote the timing section into ${args.out}`);
    return;
  }
  const iterations = positive('iterations', args.iterations);
  const digitsIterations = positive('digits-iterations', args['digits-iterations']);
  const seeds = positive('seeds', args.seeds);
  const started = performance.now();
  // Chosen first, as the service would choose it; timing then switches between the timed backends.
  const qualityBackend = await initBackend(args['quality-backend'] as BackendPreference);
  const pytorch = await findPytorch(args.pytorch);
  const loads: Partial<Record<Section, LoadSpan>> = {};
  const timed = await withLoad(() => timingSection(pytorch));
  loads.timing = timed.load;

  const result: Record<string, unknown> = {
    setting: {
      ...SETTING,
      architecture: '1-40-40-1',
      sinusoidTest:
        'as learn2learn / the MAML paper: 1-40-40-1 relu, nn.Linear init (weights and biases U(+-1/sqrt(fan_in))), per-task mean MSE averaged over 25 tasks, ' +
        'Adam 0.001, inner lr 0.01 (1 step in training; 1 and 10 steps at test), A~U[0.1,5], phase~U[0,pi], x~U[-5,5], K=10 at test; ' +
        'scored on 2000 held-out tasks x 100 query points (a 100-task mean varies by about +-0.1 between task draws); ' +
        'with several seeds, mse1Step / mse10Steps are means over seeds and standardError the spread between seeds; the PyTorch baseline is scored on the same tasks by the same code',
      reference: 'quoted, not measured here: PyTorch 1.13 CPU, 1 thread: 13.5 ms per MAML meta-iteration (learn2learn 17.5-20); learn2learn MSE 0.37 (1 step) / 0.08 (10 steps) after 20,000 iterations',
    },
    options: { iterations, seeds, digitsIterations },
    ...timed.result,
  };
  if (!args['skip-quality']) {
    // The backend picked before timing switched between the timed ones (a later 'auto' keeps the active one).
    await initBackend(qualityBackend);
    const { result: quality, load } = await withLoad(() => sinusoidQuality(iterations, seeds, pytorch.python));
    loads.quality = load;
    result.quality = { ...quality, backend: qualityBackend };
    const line = (q: { mse1Step: number; mse10Steps: number }) => `1 step ${q.mse1Step}, 10 steps ${q.mse10Steps}`;
    console.log(`\nsinusoid MSE on ${SINE_TEST.tasks} held-out test tasks: ${line(quality as never)}`);
    if (quality.pytorch) console.log(`  plain PyTorch, same tasks, same scoring: ${line(quality.pytorch as never)}`);
    if (!args['skip-digits']) {
      result.digitsSetting = { ...DIGITS, backend: qualityBackend, classes: 'test classes disjoint from meta-training classes (24/8/8 split of 10 digits x 4 rotations)' };
      const digitsRun = await withLoad(() => digitsQuality(digitsIterations));
      loads.digits = digitsRun.load;
      result.digits = digitsRun.result;
      if (!args['skip-conv']) {
        const conv = await withLoad(() => convSection(pytorch.python, pytorch.reason));
        loads.conv = conv.load;
        Object.assign(result, conv.result);
      }
    }
  }
  // One file keeps the sinusoid result of every iteration count run (e.g. the default and 20,000).
  const qualityByIterations = { ...(previousResults().qualityByIterations as Record<string, unknown> | undefined) };
  const runKey = seeds === 1 ? String(iterations) : `${iterations}, seeds 0-${seeds - 1}`;
  if (result.quality) qualityByIterations[runKey] = { ...(result.quality as object), date: new Date().toISOString().slice(0, 10) };
  result.qualityByIterations = qualityByIterations;
  result.totalSeconds = round((performance.now() - started) / 1000, 1);
  writeResults(withSections({}, result, loads));
  console.log(`\nwrote ${args.out} in ${result.totalSeconds} s`);
}

await main();
