/**
 * The benchmark scripts still run and still write the file shapes the README and the issues quote.
 * Tiny settings only: this checks that they work and what they report, never how fast anything is
 * (speeds are the benchmarks' business, on a quiet machine).
 *
 * bench:serve starts a worker process, whose reconciler would take other tests' unfinished jobs from
 * the shared test database, so it gets a private one.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALGORITHM_NAMES, getAlgorithm } from '../../src/meta/index.js';
import { defaultSearchSpace, defaultTrials, DEFAULT_STUDY_ITERATIONS, studySchedule } from '../../src/meta/study.js';
import { createPrivateDatabase, type PrivateDatabase } from '../integration/support/private-database.js';
import { SHARED_REDIS_URL } from '../integration/support/services.js';
import { allowMissing, requirement } from '../support/requirements.js';

let dir: string;
let database: PrivateDatabase;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fastadapt-bench-'));
  database = await createPrivateDatabase('bench');
});

afterAll(async () => {
  await database?.drop();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs a bench script to its end and returns the JSON it wrote (to `out`, default `<script>.json` in the test's folder). */
function bench(script: string, args: string[], env: Record<string, string> = {}, out = join(dir, `${script}.json`)): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', `bench/${script}.ts`, ...args, '--out', out], { env: { ...process.env, ...env }, maxBuffer: 16 << 20 }, (error, _stdout, stderr) =>
      error ? reject(new Error(`bench/${script}.ts failed: ${error.message}\n${stderr}`)) : resolve(JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>));
  });
}

const today = () => new Date().toISOString().slice(0, 10);
/** A row's date: the day the run started or the day it ended (a run may cross midnight). */
const dateOfRun = (started: string) => expect.toSatisfy((d: unknown) => d === started || d === today());
const positive = () => expect.toSatisfy((v: unknown) => typeof v === 'number' && Number.isFinite(v) && v > 0);
const probability = () => expect.toSatisfy((v: unknown) => typeof v === 'number' && v >= 0 && v <= 1);
const positiveOrZero = () => expect.toSatisfy((v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0);
/** os.loadavg() at a section's start and end: 1, 5 and 15 minutes. */
const loadSpan = () => ({ start: [positiveOrZero(), positiveOrZero(), positiveOrZero()], end: [positiveOrZero(), positiveOrZero(), positiveOrZero()] });
const FORMS = ['batched', 'functorch', 'loop'] as const;
const medianOf = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

type RunRow = {
  algorithm: string;
  backend: string;
  task: string;
  msPerIteration: number;
  msPerIterationIqr: [number, number];
  speedupVsPytorch?: number;
  speedupVsPytorchIqr?: [number, number];
  pytorchMsPerIteration?: Record<string, number>;
  pytorchFastestForm?: string;
  pytorchFastestRounds?: Record<string, number>;
  roundsMs: { engine: Record<'batched' | 'loop', number[]>; pytorch?: Record<(typeof FORMS)[number], number[]> };
};

/**
 * A timing section as bench:meta writes it: every run's rows computed from their own rounds (each
 * round's ratio against the fastest PyTorch form of that round), the rows over runs their median and
 * range, and the load average of every run.
 */
function expectTimingSection(result: Record<string, unknown>, runs: number, withPytorch: boolean) {
  const timingRuns = result.timingRuns as { run: number; loadAverage: unknown; rows: RunRow[] }[];
  expect(timingRuns.map((r) => r.run)).toEqual(Array.from({ length: runs }, (_, i) => i + 1));
  for (const run of timingRuns) {
    expect(run.loadAverage).toEqual(loadSpan());
    for (const row of run.rows) {
      const { batched } = row.roundsMs.engine;
      expect(batched).toHaveLength(9);
      expect(row.msPerIteration).toBeCloseTo(medianOf(batched), 2);
      expect(row.msPerIterationIqr[0]).toBeLessThanOrEqual(row.msPerIteration);
      expect(row.msPerIterationIqr[1]).toBeGreaterThanOrEqual(row.msPerIteration);
      if (!withPytorch || !row.roundsMs.pytorch) continue;
      const pt = row.roundsMs.pytorch;
      const fastest = batched.map((_, r) => FORMS.reduce((a, b) => (pt[b][r] < pt[a][r] ? b : a)));
      expect(row.speedupVsPytorch).toBeCloseTo(medianOf(fastest.map((f, r) => pt[f][r] / batched[r])), 1);
      expect(row.pytorchFastestRounds).toEqual(Object.fromEntries(FORMS.map((f) => [f, fastest.filter((x) => x === f).length])));
      for (const f of FORMS) expect(row.pytorchMsPerIteration![f]).toBeCloseTo(medianOf(pt[f]), 2);
      expect(row.speedupVsPytorchIqr![0]).toBeLessThanOrEqual(row.speedupVsPytorch!);
      expect(row.speedupVsPytorchIqr![1]).toBeGreaterThanOrEqual(row.speedupVsPytorch!);
    }
  }
  const key = (r: { algorithm: string; backend: string; task: string }) => `${r.algorithm}|${r.backend}|${r.task}`;
  const rows = result.rows as (RunRow & { runs: number; msPerIterationRange: [number, number]; speedupVsPytorchRange?: [number, number] })[];
  expect(rows.map(key).sort()).toEqual(timingRuns[0].rows.map(key).sort());
  for (const row of rows) {
    const perRun = timingRuns.map((run) => run.rows.find((r) => key(r) === key(row))!);
    expect(row.runs).toBe(runs);
    expect(row.msPerIteration).toBeCloseTo(medianOf(perRun.map((r) => r.msPerIteration)), 2);
    expect(row.msPerIterationRange).toEqual([Math.min(...perRun.map((r) => r.msPerIteration)), Math.max(...perRun.map((r) => r.msPerIteration))]);
    if (!withPytorch || row.speedupVsPytorch === undefined) {
      expect(row).not.toHaveProperty('pytorchMsPerIteration');
      continue;
    }
    expect(row.speedupVsPytorch).toBeCloseTo(medianOf(perRun.map((r) => r.speedupVsPytorch!)), 1);
    expect(row.speedupVsPytorchRange).toEqual([Math.min(...perRun.map((r) => r.speedupVsPytorch!)), Math.max(...perRun.map((r) => r.speedupVsPytorch!))]);
    // The form fastest in most rounds over all runs.
    const counts = Object.fromEntries(FORMS.map((f) => [f, perRun.reduce((n, r) => n + r.pytorchFastestRounds![f], 0)]));
    expect(row.pytorchFastestRounds).toEqual(counts);
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(9 * runs);
    expect(counts[row.pytorchFastestForm!]).toBe(Math.max(...Object.values(counts)));
  }
}

describe('the benchmarks', () => {
  it('bench:meta times every algorithm against its per-task loop and PyTorch, and reports sinusoid MSE and digits accuracy', async () => {
    const started = today();
    const result = await bench('meta', [
      ...['--iterations', '20', '--digits-iterations', '2', '--runs', '2', '--block-ms', '5', '--warmup-ms', '100', '--backends', 'wasm', '--quality-backend', 'cpu'],
      ...['--conv-iterations', '2', '--conv-adapting-iterations', '1', '--conv-zero-head-iterations', '2', '--conv-test-episodes', '3', '--conv-channels', '4,4'],
    ]);
    // Quality runs on the backend asked for (default TFJS_BACKEND, else auto), not on one the bench picks, and says which.
    expect(result.setting).toMatchObject({ metaBatchSize: 25, shots: 10, innerSteps: 1, innerLr: 0.01 });
    const rows = result.rows as Record<string, unknown>[];
    // Every algorithm at sinusoid size (ProtoNets on blobs), MAML and ProtoNets at digits size, named in `task`.
    const setting = (task: unknown) => (String(task).startsWith('digits-size MLP 196-128-64-5') ? 'digits' : task === 'sinusoid' ? 'sinusoid' : String(task).split(' ')[0]);
    // Regression algorithms run on sinusoids, classification-only ones on blobs.
    const sinusoidRows = ALGORITHM_NAMES.map((a) => `${a} ${getAlgorithm(a).kinds.includes('regression') ? 'sinusoid' : 'gaussian-blobs'}`);
    expect(rows.map((r) => `${String(r.algorithm)} ${setting(r.task)}`).sort()).toEqual([...sinusoidRows, 'maml digits', 'protonet digits'].sort());
    for (const row of rows) expect(row).toMatchObject({ backend: 'wasm', msPerIteration: positive(), naiveLoopMsPerIteration: positive(), speedup: positive() });
    expect(result.timingSetting).toMatchObject({ runs: 2, rounds: 9, blockMs: 5, warmUpMs: 100, backends: ['wasm'] });
    // Every section's load average, at its start and its end.
    expect(result.loadAverage).toEqual({ timing: loadSpan(), quality: loadSpan(), digits: loadSpan(), conv: loadSpan() });
    expect(result.quality).toMatchObject({ iterations: 20, mse1Step: positive(), mse10Steps: positive(), backend: 'cpu' });
    expect(result.quality).toMatchObject({ multitask: { iterations: 20, mse5Shots: positive(), mse10Shots: positive() } });
    expect(result.digitsSetting).toMatchObject({ backend: 'cpu' });
    // The PyTorch baselines run where a Python with torch is found and say why not elsewhere.
    const pytorch = result.pytorch as { skipped?: string; gradientCheck?: { maxAbsDiff: number } };
    expectTimingSection(result, 2, pytorch.skipped === undefined);
    if (pytorch.skipped === undefined) {
      // bench/pytorch implements the episodic algorithms only (not multitask's pool minibatches), each in every form.
      for (const row of rows) {
        const episodic = getAlgorithm(String(row.algorithm)).trainsOn === 'episodes';
        if (!episodic) expect(row).not.toHaveProperty('pytorchMsPerIteration');
        else expect(row).toMatchObject({ pytorchMsPerIteration: { batched: positive(), functorch: positive(), loop: positive() }, pytorchFastestForm: expect.toBeOneOf([...FORMS]), speedupVsPytorch: positive() });
      }
      const maml = rows.find((r) => r.algorithm === 'maml' && r.task === 'sinusoid')!;
      expect(pytorch).toMatchObject({
        threads: 1,
        mamlSinusoid: { wasm: { speedupVsPytorch: maml.speedupVsPytorch, speedupVsPytorchRange: maml.speedupVsPytorchRange, pytorchFastestForm: maml.pytorchFastestForm, runs: 2 } },
        gradientCheck: { checks: 34, forms: ['batched', 'functorch'] },
      });
      expect(pytorch.gradientCheck!.maxAbsDiff).toBeLessThan(1e-5);
      expect(result.quality).toMatchObject({ pytorch: { mse1Step: positive(), mse10Steps: positive() } });
    } else {
      allowMissing(requirement('torch', pytorch.skipped)); // fails under CI=true
      expect(pytorch.skipped).toMatch(/torch/);
      for (const row of rows) expect(row).not.toHaveProperty('pytorchMsPerIteration');
    }
    const digits = result.digits as { algorithm: string; ways: number; shots: number; accuracy: number }[];
    expect(digits.map((d) => `${d.algorithm} ${d.ways}-way ${d.shots}-shot`).sort()).toEqual(
      ['anil', 'maml', 'multitask', 'protonet'].flatMap((a) => [`${a} 5-way 1-shot`, `${a} 5-way 5-shot`]));
    for (const d of digits) expect(d).toMatchObject({ body: 'mlp', accuracy: probability() });
    // The conv section: per shot count the raw-pixel floor, ProtoNets on both bodies in the engine (and
    // in PyTorch where there is torch), MAML and ANIL on the conv body with a learned and a zero head,
    // each with a 95% interval.
    const conv = result.digitsConv as { source: string; algorithm: string; zeroHead?: boolean; body: string; shots: number; accuracy: number; ci95: number }[];
    const adapting = ['maml', 'anil'].flatMap((a) => [`${a} conv`, `${a} conv zero head`]);
    const engineRows = ['raw-pixels none', 'protonet conv', 'protonet mlp', ...adapting];
    const expected = [...engineRows, ...(pytorch.skipped === undefined ? ['protonet conv', 'protonet mlp'] : [])];
    for (const shots of [1, 5]) {
      expect(conv.filter((r) => r.shots === shots).map((r) => `${r.algorithm} ${r.body}${r.zeroHead ? ' zero head' : ''}`).sort()).toEqual(expected.sort());
    }
    for (const row of conv) expect(row).toMatchObject({ accuracy: probability(), ci95: expect.any(Number), date: dateOfRun(started) });
    for (const row of conv.filter((r) => r.algorithm === 'maml' || r.algorithm === 'anil')) expect(row).toMatchObject({ iterations: row.zeroHead ? 2 : 1 });
    expect(result.digitsConvSetting).toMatchObject({ testEpisodes: 3, iterations: 2, adaptingIterations: 1, zeroHeadIterations: 2, channels: [4, 4] });
  }, 240_000);

  it('bench:meta --only-conv --conv-rows re-runs those rows and keeps the rest of the results file', async () => {
    const out = join(dir, 'meta-conv-rows.json');
    const row = (algorithm: string, shots: number, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ source: 'engine', algorithm, body: 'conv', shots, accuracy: 0.5, ci95: 0.01, ...extra });
    // A file from before rows were dated: the section carries the date.
    const previous = {
      setting: { from: 'the full run before' },
      digitsConvDate: '2026-01-02',
      digitsConv: [1, 5].flatMap((shots) => [
        row('raw-pixels', shots, { source: 'none', body: 'none' }),
        row('protonet', shots),
        row('protonet', shots, { source: 'pytorch' }),
        row('anil', shots, { zeroHead: false }),
        row('anil', shots, { zeroHead: true }),
      ]),
    };
    writeFileSync(out, JSON.stringify(previous));
    const args = ['--only-conv', '--conv-test-episodes', '3', '--conv-zero-head-iterations', '1', '--conv-channels', '4', '--quality-backend', 'cpu', '--pytorch', 'off'];
    const started = today();
    const result = await bench('meta', [...args, '--conv-rows', 'raw-pixels,anil-zero-head'], {}, out);
    expect(result.setting).toEqual(previous.setting);
    expect(result).not.toHaveProperty('digitsConvDate');
    expect(result.loadAverage).toEqual({ conv: loadSpan() });
    const conv = result.digitsConv as Record<string, unknown>[];
    // Same rows in the same order (shots, then group); the re-run ones measured today, the others as they were.
    const key = (r: Record<string, unknown>) => `${String(r.source)} ${String(r.algorithm)}${r.zeroHead ? ' zero head' : ''} ${String(r.shots)}`;
    expect(conv.map(key)).toEqual(previous.digitsConv.map(key));
    conv.forEach((r, i) => {
      const rerun = r.algorithm === 'raw-pixels' || r.zeroHead === true;
      if (rerun) expect(r).toMatchObject({ date: dateOfRun(started), accuracy: probability(), ci95: expect.any(Number) });
      else expect(r).toEqual({ ...previous.digitsConv[i], date: '2026-01-02' });
    });
    expect(conv.find((r) => r.zeroHead === true)).toMatchObject({ iterations: 1 });
    await expect(bench('meta', [...args, '--conv-rows', 'raw-pixels,reptile'], {}, out)).rejects.toThrow(/--conv-rows: 'reptile' is not one of/);
    // Refused before any training: the results file is as the run before left it.
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(result);
  }, 120_000);

  it('bench:meta --only-timing re-runs the timing section and keeps the other sections of the results file', async () => {
    const out = join(dir, 'meta-only-timing.json');
    // A file from before the timing section: its timing was described in setting and options.
    const previous = {
      setting: { metaBatchSize: 25, sinusoidTest: 'as the MAML paper', timing: 'the old timing', naiveLoop: 'the old loop' },
      options: { iterations: 8000, seeds: 1, digitsIterations: 500, timingIterations: 40, warmUpMs: 1500, backends: ['fused'] },
      machine: { cpus: 2, loadAverageAtStart: 2.56 },
      rows: [{ algorithm: 'maml', backend: 'fused-wasm', task: 'sinusoid', msPerIteration: 0.7 }],
      pytorch: { mamlMsPerIteration: 13.5 },
      quality: { iterations: 8000, mse1Step: 0.5 },
      digits: [{ algorithm: 'maml', accuracy: 0.6 }],
      digitsConv: [{ source: 'engine', algorithm: 'protonet', shots: 1, accuracy: 0.8, date: '2026-01-02' }],
      qualityByIterations: { 8000: { mse1Step: 0.5 } },
      loadAverage: { quality: { start: [1, 1, 1], end: [2, 2, 2] } },
    };
    writeFileSync(out, JSON.stringify(previous));
    const result = await bench('meta', ['--only-timing', '--runs', '1', '--block-ms', '2', '--warmup-ms', '1', '--backends', 'wasm', '--pytorch', 'off'], {}, out);
    for (const kept of ['quality', 'digits', 'digitsConv', 'qualityByIterations'] as const) expect(result[kept]).toEqual(previous[kept]);
    // What described the old timing is gone; the rest of setting and options stays.
    expect(result.setting).toEqual({ metaBatchSize: 25, sinusoidTest: 'as the MAML paper' });
    expect(result.options).toEqual({ iterations: 8000, seeds: 1, digitsIterations: 500 });
    expect(result.loadAverage).toEqual({ quality: previous.loadAverage.quality, timing: loadSpan() });
    expect(result.timingSetting).toMatchObject({ runs: 1, rounds: 9, blockMs: 2, backends: ['wasm'] });
    expect(result.machine).not.toHaveProperty('loadAverageAtStart');
    expect(result.pytorch).toEqual({ skipped: '--pytorch off' });
    expectTimingSection(result, 1, false);
    expect((result.rows as Record<string, unknown>[]).every((r) => r.backend === 'wasm')).toBe(true);
  }, 120_000);

  it('bench:conv-engine times Conv-4 on ONNX Runtime against tfjs-wasm (and PyTorch): training, prediction, evaluation', async () => {
    const result = await bench('conv-engine', ['--iterations', '1', '--tfjs-iterations', '1', '--rounds', '1', '--ms', '5', '--pytorch', 'off']);
    type Row = { case: string; msPerIteration: Record<string, number>; cpuMsPerIteration: Record<string, number>; speedupVsTfjsWasm: number };
    const training = result.training as Row[];
    expect(training.map((r) => r.case)).toEqual(['protonet 1-shot', 'protonet 5-shot', 'anil 1-shot', 'anil zero head 1-shot', 'fomaml 1-shot', 'reptile 1-shot']);
    for (const row of training) {
      expect(row.msPerIteration).toEqual({ onnxruntime: positive(), 'tfjs-wasm': positive() });
      expect(row.cpuMsPerIteration).toEqual({ onnxruntime: positive(), 'tfjs-wasm': positive() });
      expect(row.speedupVsTfjsWasm).toBeCloseTo(row.msPerIteration['tfjs-wasm'] / row.msPerIteration.onnxruntime, 1);
    }
    expect((result.prediction as { images: number }[]).map((p) => p.images)).toEqual([1, 16]);
    expect(result.evaluation).toMatchObject({ episodes: 20, ms: { onnxruntime: positive(), 'tfjs-wasm': positive() } });
    expect(result.machine).toMatchObject({ onnxruntime: '1.30.0', ortThreads: 1, loadAverageAtStart: expect.any(Array) });
  }, 300_000);

  it('bench:conv-ceiling sets the wasm floor of a Conv-4 pass against the engine and PyTorch', async () => {
    const result = await bench('conv-ceiling', ['--rounds', '1', '--ms', '5']);
    type Setting = { setting: string; images: number; conv: { shape: number[]; wasmMs: number; pytorchMs?: number }[]; wasmFloorMs: number; engineBodyMs: number; pytorchBodyMs?: number; floorVsPytorch?: number };
    const settings = result.settings as Setting[];
    expect(settings.map((s) => [s.setting, s.images])).toEqual([['1-shot', 80], ['5-shot', 100]]);
    for (const s of settings) {
      // Conv-4 on 14x14x1: each block convolves the map the block before it pooled.
      expect(s.conv.map((c) => c.shape)).toEqual([[s.images, 14, 14, 1, 64], [s.images, 7, 7, 64, 64], [s.images, 4, 4, 64, 64], [s.images, 2, 2, 64, 64]]);
      expect(s.wasmFloorMs).toBeCloseTo(3 * s.conv.reduce((a, c) => a + c.wasmMs, 0), 1);
      expect(s).toMatchObject({ engineBodyMs: positive() });
      if (result.pytorch === undefined) {
        expect(s).toMatchObject({ pytorchBodyMs: positive() });
        for (const c of s.conv) expect(c).toMatchObject({ pytorchMs: positive() });
        expect(s.floorVsPytorch).toBeCloseTo(s.wasmFloorMs / s.pytorchBodyMs!, 1);
      } else {
        allowMissing(requirement('torch', String(result.pytorch)));
        expect(result.pytorch).toMatch(/torch/);
      }
    }
  }, 120_000);

  it('bench:meta says why it skips the PyTorch baselines where there is no torch', async () => {
    const result = await bench('meta', ['--skip-quality', '--runs', '1', '--block-ms', '1', '--warmup-ms', '1', '--backends', 'wasm', '--pytorch', process.execPath]);
    expect(result.pytorch).toEqual({ skipped: expect.stringMatching(/no Python with torch/) });
    for (const row of result.rows as Record<string, unknown>[]) {
      expect(row).toMatchObject({ msPerIteration: positive() });
      expect(row).not.toHaveProperty('pytorchMsPerIteration');
    }
  }, 120_000);

  it('bench:serve measures adaptation and prediction through HTTP next to a bare route', async () => {
    const result = await bench('serve', ['--adapts', '16', '--warmup', '1', '--clients', '2', '--connections', '4', '--seconds', '1', '--iterations', '5'],
      { DATABASE_URL: database.url, REDIS_URL: SHARED_REDIS_URL });
    expect(result.adapt).toMatchObject({ p50Ms: positive(), p99Ms: positive(), perSecond: positive() });
    expect(result.predict).toMatchObject({ perSecond: positive(), p99Ms: expect.any(Number), bareRoutePerSecond: positive() });
    const adapt = result.adapt as { p50Ms: number; p99Ms: number };
    expect(adapt.p99Ms).toBeGreaterThanOrEqual(adapt.p50Ms);
  }, 240_000);

  it('bench:study-curves writes each candidate\'s validation curve and the ranking a rung would make at each evaluation', async () => {
    const result = (await bench('study-curves', ['--families', 'sinusoid', '--iterations', '8', '--every', '4'])) as {
      setting: string;
      families: { family: string; metric: string; curves: { candidate: string; points: { iteration: number; validation: number }[] }[]; ranking: { iteration: number; bestFirst: string[] }[] }[];
    };
    // The top rung it names is the default study's, as the service computes it.
    const { rungs } = studySchedule(defaultTrials(defaultSearchSpace('classification'), DEFAULT_STUDY_ITERATIONS), DEFAULT_STUDY_ITERATIONS);
    expect(result.setting).toContain(`top rung is ${rungs[rungs.length - 1].iterations}`);
    const [sine] = result.families;
    expect(sine).toMatchObject({ family: 'sinusoid', metric: 'loss' });
    expect(sine.curves.length).toBeGreaterThan(1);
    for (const curve of sine.curves) {
      expect(curve.points.map((p) => p.iteration)).toEqual([4, 8]);
      for (const point of curve.points) expect(point.validation).toSatisfy((v: number) => Number.isFinite(v) && v > 0);
    }
    // Each ranking orders every candidate by its validation loss at that iteration, lowest first.
    sine.ranking.forEach(({ iteration, bestFirst }, k) => {
      expect(iteration).toBe(sine.curves[0].points[k].iteration);
      const loss = (name: string) => sine.curves.find((c) => c.candidate === name)!.points[k].validation;
      expect([...bestFirst].sort()).toEqual(sine.curves.map((c) => c.candidate).sort());
      bestFirst.slice(1).forEach((name, j) => expect(loss(name)).toBeGreaterThanOrEqual(loss(bestFirst[j])));
    });
  }, 120_000);

  it('bench:studies runs a study with one and two worker processes beside every single algorithm, and judges the targets from its rows', async () => {
    // Two regression families (a built-in one and the CSV the bench uploads), three candidates, a few iterations.
    const result = (await bench('studies', ['--families', 'sinusoid,csv', '--budget', '12', '--trials', '3', '--tasks', '10'], { DATABASE_URL: database.url, REDIS_URL: SHARED_REDIS_URL })) as {
      families: { family: string; metric: string; winner: { algorithm: string; test: { mean: number; ci95: number } }; raw: { mean: number; ci95: number }; singles: { algorithm: string; test: { mean: number; ci95: number } | null }[]; bestSingle: { test: { mean: number; ci95: number } }; metaIterations: { cost: number; ran: number; budget: { iterations: number; trials: number } }; runs: { workers: number; wallSeconds: number }[]; decision: { promoted: boolean; baselines: { outcome: string }[] } }[];
      targets: Record<string, { met: boolean; measured: unknown } | null>;
    };
    const regression = ALGORITHM_NAMES.filter((name) => getAlgorithm(name).kinds.includes('regression'));
    expect(result.families.map((r) => r.family)).toEqual(['sinusoid', 'csv (uploaded)']);
    for (const row of result.families) {
      expect(row.metric).toBe('loss');
      expect(row.winner.test).toMatchObject({ mean: positive(), ci95: positiveOrZero() });
      expect(row.raw).toMatchObject({ mean: positive(), ci95: positiveOrZero() });
      expect(row.singles.map((s) => s.algorithm)).toEqual(regression);
      for (const single of row.singles) expect(single.test).toMatchObject({ mean: positive(), ci95: positiveOrZero() });
      // The best single row is the lowest loss among them.
      expect(row.bestSingle.test.mean).toBe(Math.min(...row.singles.map((s) => s.test!.mean)));
      // Three candidates, 12 meta-iterations: what the trial jobs ran is the schedule's cost, within the budget.
      expect(row.metaIterations.budget).toEqual({ iterations: 12, trials: 3 });
      expect(row.metaIterations.ran).toBe(row.metaIterations.cost);
      expect(row.metaIterations.cost).toBeLessThanOrEqual(12);
      expect(row.runs.map((r) => r.workers)).toEqual([1, 2]);
      for (const run of row.runs) expect(run.wallSeconds).toSatisfy((v: number) => v > 0);
      if (row.decision.promoted) expect(row.decision.baselines.every((b) => b.outcome === 'beaten')).toBe(true);
    }
    // Each target's verdict follows from its measured values.
    const wall = result.targets.wallTwoWorkersOverOne as { met: boolean; measured: number };
    expect(wall.met).toBe(wall.measured <= 0.65);
    const within = result.families.map((r) => r.winner.test.mean <= r.bestSingle.test.mean + r.bestSingle.test.ci95);
    expect(result.targets.winnerWithinBestSingleInterval!.met).toBe(within.every(Boolean));
    expect(result.targets.studyMetaIterationsOverOneDefaultRun).toMatchObject({ defaultStudy: false, met: true });
  }, 240_000);
});
