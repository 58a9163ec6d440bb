/**
 * Studies benchmark (issue 23 item 5): `npm run bench:studies [-- options]` prints a table and writes
 * bench/results/studies.json.
 *
 * It starts the service as child processes (one API process, and worker processes: first one, then
 * two), as deployed, and for each family runs the same study (POST /studies, default search space,
 * `promote: production`) once with one worker process and once with two: wall seconds of each
 * (the study's createdAt to finishedAt), its winner, the winner's test metric with ci95 and the `raw`
 * baseline (the study's own evaluation of the winner), the decision, and the meta-iterations spent
 * (settings.cost, and the sum over its trial jobs of the iterations each ran). Then, with two workers,
 * every single algorithm that suits the family's kind is meta-trained through POST /meta-train with
 * default hyper-parameters at the study's top-rung iterations, and evaluated with the study
 * evaluation's settings (shots, tasks, queryShots, seed): the rows the winner is compared with.
 *
 * Families: sinusoid (10 shots), gaussian-blobs (3-way 2-d, 5 shots), digits MLP and digits Conv-4
 * (5-way 5-shot; `--conv-channels`), and csv: a regression family this bench writes and uploads
 * through the API (the TypeScript client's uploadFamily): tasks y = w_task . tanh(A x + b) with one
 * random A, b shared by every task and w_task per task, so a body that learns the shared features
 * needs only a linear head, and ridge regression on the raw x cannot fit.
 *
 * Targets (issue 23), in `targets`: the winner's test metric within the best single row's interval or
 * better; above `raw` wherever any single algorithm is; no study promotes a model that a baseline
 * ties or beats; two workers' wall time at most 0.65x one worker's; a default study at most 4x the
 * meta-iterations of one default training run (meaningful at the default `--budget`).
 *
 * Options: --families sinusoid,blobs,digits-mlp,digits-conv,csv; --budget N (budget.iterations of
 * each study; default the service's default, 4 default runs); --trials N (budget.trials: the first
 * N candidates of the default space; default the service's choice, defaultTrials: 14 at the default
 * budget); --conv-channels C (channels of each of the 4 conv blocks, default 64); --tasks N (test tasks of every evaluation; default the study's own, 100: at
 * another size the winner is evaluated again at it); --workers 1,2; --skip-singles (only the studies:
 * their wall times and winners, for a quick re-measure of the worker ratio); --out PATH. Uses DATABASE_URL and
 * REDIS_URL like the service, but the service it starts gets a database of its own on DATABASE_URL's
 * server (migrated from prisma/migrations), dropped at the end with the queues.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createReadStream, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createFastadaptClient, uploadFamily } from '../clients/typescript/src/index.js';
import { loadConfig } from '../src/config.js';
import { createDb } from '../src/db/client.js';
import { createApiKey } from '../src/db/repositories/api-keys.js';
import { ALGORITHM_NAMES, getAlgorithm } from '../src/meta/algorithms/index.js';
import { DEFAULT_HYPER } from '../src/meta/hyper.js';
import { Rng } from '../src/meta/index.js';
import { DEFAULT_STUDY_COST_FACTOR, DEFAULT_STUDY_ITERATIONS } from '../src/meta/study.js';
import { createPrivateDatabase } from '../test/integration/support/private-database.js';
import { freePort, removePrefix } from '../test/integration/support/services.js';
import { client, type Reply } from './support/http.js';
import { readyz, startProcess, stopProcess } from './support/processes.js';

const { values: opts } = parseArgs({
  options: {
    families: { type: 'string', default: 'sinusoid,blobs,digits-mlp,digits-conv,csv' },
    budget: { type: 'string' },
    trials: { type: 'string' },
    'conv-channels': { type: 'string', default: '64' },
    'skip-singles': { type: 'boolean', default: false },
    tasks: { type: 'string' },
    workers: { type: 'string', default: '1,2' },
    out: { type: 'string', default: 'bench/results/studies.json' },
  },
});

const round = (value: number, digits = 4) => Math.round(value * 10 ** digits) / 10 ** digits;
const load = () => loadavg().map((v) => round(v, 2));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Call = (method: string, path: string, body?: unknown) => Promise<Reply>;
type Metric = 'accuracy' | 'loss';
interface Interval {
  mean: number;
  ci95: number;
}
interface EvaluationRow {
  method: string;
  shots: number;
  steps: number;
  loss: Interval;
  accuracy?: Interval;
}
interface Evaluation {
  id: string;
  status: string;
  error: string | null;
  settings: { shots: number[]; steps: number[]; tasks: number; queryShots: number; seed: number };
  rows: EvaluationRow[];
  startedAt: string | null;
  finishedAt: string | null;
}
interface StudyView {
  id: string;
  status: string;
  error: string | null;
  settings: { kind: string; shots: number; rungs: { trials: number; iterations: number }[]; cost: number; budget: { iterations: number; trials: number }; evaluation: { tasks: number; queryShots: number; seed: number } };
  trials: { candidate: number; jobId: string | null; algorithm: string; hyper: Record<string, unknown>; rung: number; iterations: number; status: string; validation: (Interval & { metric: Metric }) | null }[];
  winner: { jobId: string; metaModelId: string; algorithm: string; hyper: Record<string, unknown> } | null;
  evaluationId: string | null;
  decision: { promoted: boolean; alias: string | null; reason: string; baselines: (Interval & { method: string; outcome: string })[] } | null;
  createdAt: string;
  finishedAt: string | null;
}
interface Job {
  id: string;
  status: string;
  error: string | null;
  metaModelId: string | null;
  progress: { iteration: number; iterations: number };
  startedAt: string | null;
  finishedAt: string | null;
}

function expectStatus(reply: Reply, status: number, what: string): unknown {
  if (reply.status !== status) throw new Error(`${what}: ${reply.status} ${reply.body.slice(0, 500)}`);
  return JSON.parse(reply.body);
}

/** Polls `read` every `ms` until it returns a value (start-up and completion polling, off the measured clock). */
async function until<T>(read: () => Promise<T | undefined>, what: string, timeoutMs: number, ms = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not finish within ${timeoutMs / 1000} s`);
    await sleep(ms);
  }
}

/** One family of the bench: how it is created, the body its learners use, and the study's shots. */
interface FamilyCase {
  name: string;
  kind: 'regression' | 'classification';
  model: Record<string, unknown>;
  shots: number;
  create: (call: Call, upload: (file: string) => Promise<string>) => Promise<string>;
}

const CSV = { features: 8, sharedFeatures: 16, tasks: 300, rowsPerTask: 40 };

/** The csv family's file: y = w_task . tanh(A x + b) + noise, A and b shared by every task. */
function writeCsv(file: string): void {
  const rng = new Rng(23);
  const { features, sharedFeatures, tasks, rowsPerTask } = CSV;
  const a = Array.from({ length: sharedFeatures }, () => Array.from({ length: features }, () => rng.normal() * 1.5));
  const b = Array.from({ length: sharedFeatures }, () => rng.uniform(-1, 1));
  const lines = [['task', 'y', ...Array.from({ length: features }, (_, i) => `x${i + 1}`)].join(',')];
  for (let t = 0; t < tasks; t++) {
    const w = Array.from({ length: sharedFeatures }, () => rng.normal() / Math.sqrt(sharedFeatures / 4));
    for (let r = 0; r < rowsPerTask; r++) {
      const x = Array.from({ length: features }, () => rng.uniform(-1, 1));
      const phi = a.map((row, j) => Math.tanh(row.reduce((s, v, i) => s + v * x[i], b[j])));
      const y = phi.reduce((s, v, j) => s + v * w[j], 0) + 0.05 * rng.normal();
      lines.push(`t${t},${y.toFixed(5)},${x.map((v) => v.toFixed(5)).join(',')}`);
    }
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
}

function familyCases(convChannels: number): Record<string, FamilyCase> {
  const builtIn = (payload: Record<string, unknown>) => async (call: Call) => (expectStatus(await call('POST', '/task-families', payload), 201, `create family ${String(payload.name)}`) as { id: string }).id;
  const digits = { kind: 'classification', inputDim: 196, nWay: 5, generator: { type: 'digits' } };
  return {
    sinusoid: { name: 'sinusoid', kind: 'regression', model: { hidden: [40, 40] }, shots: 10, create: builtIn({ name: 'sinusoid', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid' } }) },
    blobs: { name: 'gaussian-blobs', kind: 'classification', model: { hidden: [40, 40] }, shots: 5, create: builtIn({ name: 'blobs', kind: 'classification', inputDim: 2, nWay: 3, generator: { type: 'gaussian-blobs' } }) },
    'digits-mlp': { name: 'digits MLP', kind: 'classification', model: { hidden: [64, 64] }, shots: 5, create: builtIn({ name: 'digits', ...digits }) },
    'digits-conv': { name: `digits Conv-4 (${convChannels} channels)`, kind: 'classification', model: { body: 'conv', channels: [convChannels, convChannels, convChannels, convChannels] }, shots: 5, create: builtIn({ name: 'digits-conv', ...digits }) },
    csv: { name: 'csv (uploaded)', kind: 'regression', model: { hidden: [40, 40] }, shots: 10, create: (_call, upload) => upload('csv') },
  };
}

/** The service: one API process and `workers` worker processes, with the queues under `prefix`. */
async function startService(workers: number, prefix: string, redis: Redis, databaseUrl: string) {
  const port = await freePort();
  const env = { DATABASE_URL: databaseUrl, PORT: String(port), HOST: '127.0.0.1', QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn', RATE_LIMIT_MAX: '1000000000', RECONCILE_INTERVAL_MS: '3600000', STUDY_INTERVAL_MS: String(STUDY_INTERVAL_MS) };
  const children: ChildProcess[] = [await startProcess('the API', ['src/main.ts', '--role', 'api'], env, readyz(port))];
  for (let i = 0; i < workers; i++) children.push(spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--role', 'worker'], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] }));
  // Worker processes start on their own: wait until every one listens on the meta-train queue.
  const queue = new Queue('meta-train', { connection: redis, prefix });
  try {
    await until(async () => {
      if (children.some((c) => c.exitCode !== null)) throw new Error('a service process exited during start-up');
      return (await queue.getWorkersCount()) >= workers ? true : undefined;
    }, `${workers} worker processes`, 60_000, 200);
  } finally {
    await queue.close();
  }
  return { port, children };
}

/** The scheduler's pass interval: a rung is decided within this of its last trial's end. */
const STUDY_INTERVAL_MS = 500;

const metricOf = (kind: string): Metric => (kind === 'classification' ? 'accuracy' : 'loss');
const better = (metric: Metric, a: number, b: number) => (metric === 'accuracy' ? a > b : a < b);
const score = (row: EvaluationRow | undefined, metric: Metric): Interval | null => {
  const value = row && (metric === 'accuracy' ? row.accuracy : row.loss);
  return value ? { mean: round(value.mean), ci95: round(value.ci95) } : null;
};

async function evaluate(call: Call, metaModelId: string, settings: { shots: number; tasks: number; queryShots: number; seed: number }, baselines: string[]): Promise<Evaluation> {
  const created = expectStatus(await call('POST', `/meta-models/${metaModelId}/evaluations`, { shots: [settings.shots], tasks: settings.tasks, queryShots: settings.queryShots, seed: settings.seed, baselines }), 202, 'evaluation') as { id: string };
  const done = await until(async () => {
    const e = expectStatus(await call('GET', `/meta-models/${metaModelId}/evaluations/${created.id}`), 200, 'evaluation') as Evaluation;
    return e.status === 'succeeded' || e.status === 'failed' ? e : undefined;
  }, 'an evaluation', 1_800_000);
  if (done.status !== 'succeeded') throw new Error(`evaluation ${done.id} failed: ${done.error}`);
  return done;
}

/** Runs one study to its end; what the row needs of it. */
async function runStudy(call: Call, c: FamilyCase, familyId: string, name: string, evalTasks: number | undefined) {
  const budget = { ...(opts.budget ? { iterations: Number(opts.budget) } : {}), ...(opts.trials ? { trials: Number(opts.trials) } : {}) };
  const body = { name, familyIds: [familyId], model: c.model, shots: c.shots, budget, promote: 'production' };
  const loadAtStart = load();
  const created = expectStatus(await call('POST', '/studies', body), 202, `study ${name}`) as StudyView;
  const study = await until(async () => {
    const s = expectStatus(await call('GET', `/studies/${created.id}`), 200, 'study') as StudyView;
    return s.status === 'running' ? undefined : s;
  }, `study ${name}`, 6 * 3_600_000, 250);
  if (study.status !== 'succeeded' || !study.winner || !study.evaluationId) throw new Error(`study ${name} ended ${study.status}: ${study.error}`);
  const metric = metricOf(study.settings.kind);
  // Meta-iterations its trial jobs ran: a promoted trial's job resumes at the previous rung's milestone.
  const jobs: Job[] = [];
  for (let cursor: string | null = ''; cursor !== null; ) {
    const page = expectStatus(await call('GET', `/meta-train?studyId=${study.id}&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`), 200, 'trial jobs') as { items: Job[]; nextCursor: string | null };
    jobs.push(...page.items);
    cursor = page.nextCursor ?? null;
  }
  const rungs = study.settings.rungs;
  const ran = study.trials.reduce((sum, t) => {
    const job = jobs.find((j) => j.id === t.jobId);
    return sum + (job ? job.progress.iteration - (t.rung === 0 ? 0 : rungs[t.rung - 1].iterations) : 0);
  }, 0);
  if (jobs.length < study.trials.filter((t) => t.jobId).length) throw new Error(`study ${name}: ${jobs.length} trial jobs listed for ${study.trials.length} trials`);
  // Where the wall time went: each rung's span and busy seconds (the sum of its jobs' run times), the
  // final evaluation's span, and the workers' utilisation (busy seconds over workers x wall).
  const at = (iso: string | null) => (iso ? (Date.parse(iso) - Date.parse(study.createdAt)) / 1000 : NaN);
  const timeline = rungs.map((_, rung) => {
    const inRung = study.trials.filter((t) => t.rung === rung).map((t) => jobs.find((j) => j.id === t.jobId)).filter((j): j is Job => j !== undefined && j.startedAt !== null && j.finishedAt !== null);
    return { rung, from: round(Math.min(...inRung.map((j) => at(j.startedAt))), 1), to: round(Math.max(...inRung.map((j) => at(j.finishedAt))), 1), busySeconds: round(inRung.reduce((sum, j) => sum + at(j.finishedAt) - at(j.startedAt), 0), 1) };
  });
  const studyEvaluation = expectStatus(await call('GET', `/meta-models/${study.winner.metaModelId}/evaluations/${study.evaluationId}`), 200, 'study evaluation') as Evaluation;
  const evaluation = evalTasks === undefined || evalTasks === studyEvaluation.settings.tasks ? studyEvaluation : await evaluate(call, study.winner.metaModelId, { shots: c.shots, tasks: evalTasks, queryShots: studyEvaluation.settings.queryShots, seed: studyEvaluation.settings.seed }, ['raw']);
  const rows = evaluation.rows.filter((r) => r.shots === c.shots);
  return {
    id: study.id,
    wallSeconds: round((Date.parse(study.finishedAt!) - Date.parse(study.createdAt)) / 1000, 1),
    winner: { algorithm: study.winner.algorithm, hyper: study.winner.hyper },
    test: score(rows.find((r) => r.method === 'adapted'), metric),
    raw: score(rows.find((r) => r.method === 'raw'), metric),
    evaluation: { id: evaluation.id, ...evaluation.settings, ownEvaluation: evaluation === studyEvaluation },
    decision: study.decision && { promoted: study.decision.promoted, reason: study.decision.reason, baselines: study.decision.baselines.map((b) => ({ method: b.method, mean: round(b.mean), ci95: round(b.ci95), outcome: b.outcome })) },
    rungs,
    budget: study.settings.budget,
    cost: study.settings.cost,
    iterationsRan: ran,
    trials: study.trials.length,
    loadAverage: { atStart: loadAtStart, atEnd: load() },
    timeline: { rungs: timeline, evaluation: { from: round(at(studyEvaluation.startedAt), 1), to: round(at(studyEvaluation.finishedAt), 1) } },
    topValidation: study.trials.filter((t) => t.status === 'winner').map((t) => t.validation)[0] ?? null,
    // Who reached the later rungs, and with what validation: why the winner won (or a late bloomer lost).
    finalists: study.trials
      .filter((t) => t.rung >= rungs.length - 3)
      .map((t) => ({ rung: t.rung, status: t.status, algorithm: t.algorithm, innerLr: t.hyper.innerLr, innerSteps: t.hyper.innerSteps, zeroHead: t.hyper.zeroHead, validation: t.validation && round(t.validation.mean) }))
      .sort((a, b) => b.rung - a.rung),
  };
}
type StudyRun = Awaited<ReturnType<typeof runStudy>>;

/** Every algorithm that suits `kind`, meta-trained with defaults at `iterations` (all at once: the workers take them in turn), each evaluated as the winner was. */
async function singles(call: Call, c: FamilyCase, familyId: string, iterations: number, evaluation: { tasks: number; queryShots: number; seed: number }) {
  const algorithms = ALGORITHM_NAMES.filter((name) => (getAlgorithm(name).kinds as readonly string[]).includes(c.kind));
  const started = await Promise.all(
    algorithms.map(async (algorithm) => {
      const job = expectStatus(await call('POST', '/meta-train', { name: `single-${c.name}-${algorithm}`.replace(/[^A-Za-z0-9_-]/g, '-'), familyIds: [familyId], algorithm, model: c.model, hyper: { shots: c.shots, iterations } }), 202, `meta-train ${algorithm}`) as Job;
      return { algorithm, id: job.id };
    }),
  );
  const rows = [];
  for (const { algorithm, id } of started) {
    const job = await until(async () => {
      const j = expectStatus(await call('GET', `/meta-train/${id}`), 200, 'job') as Job;
      return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : undefined;
    }, `${algorithm} on ${c.name}`, 6 * 3_600_000, 500);
    if (job.status !== 'succeeded' || !job.metaModelId) {
      rows.push({ algorithm, test: null, error: `${job.status}: ${job.error}` });
      continue;
    }
    const e = await evaluate(call, job.metaModelId, { shots: c.shots, ...evaluation }, []);
    rows.push({ algorithm, test: score(e.rows.find((r) => r.method === 'adapted' && r.shots === c.shots), metricOf(c.kind)), steps: e.settings.steps[0] });
  }
  return rows;
}

async function main(): Promise<void> {
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent' }, []);
  const cases = familyCases(Number(opts['conv-channels']));
  const chosen = opts.families.split(',').map((name) => {
    const c = cases[name];
    if (!c) throw new Error(`--families: unknown ${name} (known: ${Object.keys(cases).join(', ')})`);
    return c;
  });
  const workerCounts = opts.workers.split(',').map(Number);
  if (workerCounts.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--workers must be positive integers, got ${opts.workers}`);
  const evalTasks = opts.tasks ? Number(opts.tasks) : undefined;
  const loadAtStart = load();
  const prefix = `fastadapt-bench-studies-${randomUUID().slice(0, 8)}`;
  // A database of its own (migrated like the service's), dropped at the end: the workers' reconciler
  // and study scheduler take every unfinished job and running study of their database, so on a shared
  // one they would run other users' (or tests') work beside the bench's and skew its times.
  const database = await createPrivateDatabase('bench_studies', config.databaseUrl);
  const db = createDb(database.url);
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const dir = join(tmpdir(), `fastadapt-bench-studies-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  let children: ChildProcess[] = [];
  try {
    const key = await createApiKey(db, `bench-studies-${prefix}`);
    const familyIds = new Map<FamilyCase, string>();
    const runs = new Map<FamilyCase, Map<number, StudyRun>>(chosen.map((c) => [c, new Map()]));
    const singleRows = new Map<FamilyCase, Awaited<ReturnType<typeof singles>>>();
    for (const [w, workers] of workerCounts.entries()) {
      const service = await startService(workers, prefix, redis, database.url);
      children = service.children;
      const call = client(service.port, key.key, 8);
      const upload = async (name: string) => {
        const file = join(dir, `${name}.csv`);
        writeCsv(file);
        const family = await uploadFamily(createFastadaptClient({ baseUrl: `http://127.0.0.1:${service.port}`, apiKey: key.key }), createReadStream(file), { name, kind: 'regression', format: 'csv' });
        if (family.status !== 'ready') throw new Error(`the upload ended ${family.status}`);
        return family.id;
      };
      for (const c of chosen) {
        if (!familyIds.has(c)) familyIds.set(c, await c.create(call, upload));
        const run = await runStudy(call, c, familyIds.get(c)!, `study-${workers}w-${chosen.indexOf(c)}`, evalTasks);
        runs.get(c)!.set(workers, run);
        console.log(`${c.name}, ${workers} worker process(es): ${run.wallSeconds} s, winner ${run.winner.algorithm} ${JSON.stringify(run.winner.hyper)}, test ${JSON.stringify(run.test)}, raw ${JSON.stringify(run.raw)}, promoted ${run.decision?.promoted}`);
      }
      // The single-algorithm rows once, on the last (largest) pool.
      if (w === workerCounts.length - 1 && !opts['skip-singles']) {
        for (const c of chosen) {
          const run = runs.get(c)!.get(workers)!;
          singleRows.set(c, await singles(call, c, familyIds.get(c)!, run.rungs.at(-1)!.iterations, { tasks: run.evaluation.tasks, queryShots: run.evaluation.queryShots, seed: run.evaluation.seed }));
          console.log(`${c.name}: single algorithms ${JSON.stringify(singleRows.get(c))}`);
        }
      }
      await Promise.all(children.map(stopProcess));
      children = [];
    }

    const [fewest, most] = [Math.min(...workerCounts), Math.max(...workerCounts)];
    const rows = chosen.map((c) => {
      const metric = metricOf(c.kind);
      const byWorkers = runs.get(c)!;
      const main = byWorkers.get(most)!;
      const single = singleRows.get(c) ?? [];
      const scored = single.filter((s): s is typeof s & { test: Interval } => s.test !== null);
      const best = scored.reduce<(typeof scored)[number] | undefined>((a, s) => (!a || better(metric, s.test.mean, a.test.mean) ? s : a), undefined);
      const winner = main.test!;
      const raw = main.raw;
      const anyAboveRaw = raw !== null && scored.some((s) => better(metric, s.test.mean, raw.mean));
      return {
        family: c.name,
        kind: c.kind,
        metric,
        model: c.model,
        shots: c.shots,
        winner: { ...main.winner, test: winner, validation: main.topValidation },
        raw,
        singles: single,
        bestSingle: best ? { algorithm: best.algorithm, test: best.test } : null,
        decision: main.decision,
        metaIterations: { cost: main.cost, ran: main.iterationsRan, budget: main.budget, oneDefaultRun: DEFAULT_HYPER.iterations, topRung: main.rungs.at(-1)!.iterations, rungs: main.rungs, trials: main.trials },
        wallSeconds: Object.fromEntries([...byWorkers].map(([n, r]) => [`${n}worker${n === 1 ? '' : 's'}`, r.wallSeconds])),
        runs: [...byWorkers].map(([workers, r]) => ({ workers, studyId: r.id, wallSeconds: r.wallSeconds, winner: r.winner, test: r.test, raw: r.raw, promoted: r.decision?.promoted ?? null, iterationsRan: r.iterationsRan, loadAverage: r.loadAverage, timeline: r.timeline, finalists: r.finalists })),
        checks: {
          winnerWithinBestSingle: best ? (metric === 'accuracy' ? winner.mean >= best.test.mean - best.test.ci95 : winner.mean <= best.test.mean + best.test.ci95) : null,
          winnerAboveRawWhereAnyIs: anyAboveRaw ? better(metric, winner.mean, raw.mean) : null,
          noPromotionThatLosesToABaseline: [...byWorkers.values()].every((r) => !r.decision?.promoted || r.decision.baselines.every((b) => b.outcome === 'beaten')),
          wallRatio: byWorkers.has(fewest) && fewest !== most ? round(main.wallSeconds / byWorkers.get(fewest)!.wallSeconds, 3) : null,
        },
      };
    });
    const defaultBudget = !opts.budget && !opts.trials;
    const sum = (f: (r: (typeof rows)[number]) => number) => rows.reduce((s, r) => s + f(r), 0);
    const wallFewest = sum((r) => r.runs.find((x) => x.workers === fewest)!.wallSeconds);
    const wallMost = sum((r) => r.runs.find((x) => x.workers === most)!.wallSeconds);
    const costRatio = Math.max(...rows.map((r) => Math.max(r.metaIterations.cost, r.metaIterations.ran) / DEFAULT_HYPER.iterations));
    // null where nothing was measured (no single beat raw; --skip-singles): neither met nor missed.
    const all = (values: (boolean | null)[]) => (values.every((v) => v === null) ? null : values.every((v) => v !== false));
    const targets = {
      winnerWithinBestSingleInterval: { measured: Object.fromEntries(rows.map((r) => [r.family, r.checks.winnerWithinBestSingle])), met: all(rows.map((r) => r.checks.winnerWithinBestSingle)) },
      winnerAboveRawWhereAnyAlgorithmIs: { measured: Object.fromEntries(rows.map((r) => [r.family, r.checks.winnerAboveRawWhereAnyIs])), met: all(rows.map((r) => r.checks.winnerAboveRawWhereAnyIs)), note: 'null: no single algorithm beat raw on that family' },
      noPromotionOfAModelThatLosesToABaseline: { measured: Object.fromEntries(rows.map((r) => [r.family, r.checks.noPromotionThatLosesToABaseline])), met: rows.every((r) => r.checks.noPromotionThatLosesToABaseline) },
      wallTwoWorkersOverOne: fewest === most ? null : { target: 0.65, measured: round(wallMost / wallFewest, 3), perFamily: Object.fromEntries(rows.map((r) => [r.family, r.checks.wallRatio])), met: wallMost / wallFewest <= 0.65 },
      studyMetaIterationsOverOneDefaultRun: { target: DEFAULT_STUDY_COST_FACTOR, measured: round(costRatio, 3), met: costRatio <= DEFAULT_STUDY_COST_FACTOR, defaultStudy: defaultBudget, note: defaultBudget ? 'default budget: the target applies as stated' : 'a scaled budget (--budget/--trials): the ratio of this run, not of a default study' },
    };
    const out = {
      families: rows,
      targets,
      settings: {
        families: opts.families,
        budget: opts.budget ? Number(opts.budget) : `default (${DEFAULT_STUDY_ITERATIONS})`,
        trials: opts.trials ? Number(opts.trials) : "default (the service's: the first defaultTrials of the default search space)",
        convChannels: Number(opts['conv-channels']),
        evaluationTasks: evalTasks ?? 'the study evaluation\'s (100)',
        workers: workerCounts,
        workerConcurrency: 'WORKER_CONCURRENCY default (1 job per worker process)',
        studyIntervalMs: STUDY_INTERVAL_MS,
        topology: 'one API process (--role api) and N worker processes (--role worker), restarted for each N; one tenant; the studies run one at a time',
        singles: opts['skip-singles'] ? 'skipped (--skip-singles): the targets that compare with them are null' : `every algorithm suiting the kind, POST /meta-train with default hyper-parameters (shots as the study's) at the study's top-rung iterations, run after the studies on the ${most}-worker pool, evaluated with the study evaluation's tasks, queryShots and seed, at the steps each was trained with`,
        wallSeconds: "the study's createdAt to finishedAt (server clock), every rung and the winner's evaluation included",
        csv: `${CSV.tasks} tasks x ${CSV.rowsPerTask} rows, ${CSV.features} features; y = w_task . tanh(A x + b) + N(0, 0.05^2), A (${CSV.sharedFeatures}x${CSV.features}) and b shared; uploaded through the API (client uploadFamily), the service's seeded 70/15/15 split by task`,
      },
      machine: { cpus: cpus().length, node: process.version, loadAverageAtStart: loadAtStart, loadAverageAtEnd: load() },
      at: new Date().toISOString(),
    };
    mkdirSync(dirname(opts.out), { recursive: true });
    writeFileSync(opts.out, `${JSON.stringify(out, null, 2)}\n`);
    console.table(
      rows.map((r) => ({
        family: r.family,
        winner: `${r.winner.algorithm}`,
        [`test`]: r.winner.test && `${r.winner.test.mean} ± ${r.winner.test.ci95}`,
        'best single': r.bestSingle && `${r.bestSingle.algorithm} ${r.bestSingle.test.mean} ± ${r.bestSingle.test.ci95}`,
        raw: r.raw && `${r.raw.mean} ± ${r.raw.ci95}`,
        promoted: r.decision?.promoted,
        'meta-it': r.metaIterations.ran,
        wall: Object.values(r.wallSeconds).join(' / '),
      })),
    );
    console.log(`targets: ${JSON.stringify(targets)}`);
    console.log(`wrote ${opts.out}`);
  } finally {
    await Promise.all(children.map(stopProcess));
    await removePrefix(config.redisUrl, prefix);
    redis.disconnect();
    await db.close();
    await database.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
