/**
 * Serving benchmark: `npm run bench:serve [-- options]` prints a table and writes
 * bench/results/serve.json.
 *
 * It starts the service as child processes (an API process and a worker process, or one
 * `--role all`), has it meta-train a small MAML sinusoid model (1-40-40-1) through POST /meta-train,
 * and measures through HTTP:
 * - adaptation: POST /tasks/:id/adapt (K=10, 5 steps, wait) from 8 concurrent clients, each on its own
 *   task: p50/p99 latency and adaptations per second (and, first, one client alone); the worker's own
 *   timings (queue wait, load, inner loop, write) arrive on the adapted channel and show where the
 *   time went, and the CPU time of each service process per adaptation shows what it costs;
 * - prediction: GET /predict at 64 connections with autocannon, next to a bare Fastify route (in a
 *   process of its own) answering a JSON body of the same size, in the same run.
 *   GET /predict with `coverage=0.9&novelty=true` (issue 25) against plain GET /predict: three
 *   alternating rounds after a warm-up, medians compared, by throughput and by the API process's
 *   CPU time per request (which other load on a shared machine does not move).
 * Targets: adapt p50 <= 15 ms and p99 <= 40 ms; predict throughput >= half of the bare route's;
 * predict with coverage and novelty >= 0.65 of plain predict's.
 *
 * Options: --adapts N (measured adaptations, default 2000), --warmup N (unmeasured adaptations per
 * client first, default 100: a fresh process needs a few hundred to reach steady speed), --clients N (8), --connections N (64),
 * --seconds N (each autocannon run, 5), --topology split|all (split), --backend wasm|cpu (wasm),
 * --iterations N (meta-training, 300), --adapt-concurrency N (the worker's ADAPT_CONCURRENCY), --out PATH, --cpu-prof DIR (the service
 * processes write V8 CPU profiles there when they exit; timings then include the profiler's cost). Uses DATABASE_URL and REDIS_URL like the service
 * (defaults: the local fastadapt database, Redis on 6379); everything it creates is removed at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { Queue } from 'bullmq';
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { createDb } from '../src/db/client.js';
import { createApiKey } from '../src/db/repositories/api-keys.js';
import { AdaptedSubscriber, type AdaptedMessage } from '../src/jobs/adapted.js';
import { Rng, type BackendPreference, type FamilySpec } from '../src/meta/index.js';
import { freePort, removePrefix } from '../test/integration/support/services.js';
import { startProcess, stopProcess } from './support/processes.js';
import { client, type Reply } from './support/http.js';

const { values: opts } = parseArgs({
  options: {
    adapts: { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '100' },
    clients: { type: 'string', default: '8' },
    connections: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '5' },
    topology: { type: 'string', default: 'split' },
    backend: { type: 'string', default: 'wasm' },
    iterations: { type: 'string', default: '300' },
    'adapt-concurrency': { type: 'string' },
    out: { type: 'string', default: 'bench/results/serve.json' },
    'bare-server': { type: 'string' },
    'cpu-prof': { type: 'string' },
  },
});

const SINE: FamilySpec = { name: 'sine', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid' } };
const MODEL = { hidden: [40, 40], activation: 'relu' as const };
const K = 10;
const STEPS = 5;

// ---------------------------------------------------------------------------------------------------
// Small helpers

/** CPU time (user + system) a child process has used so far, in ms, from /proc (Linux). */
function cpuMs(child: ChildProcess): number {
  const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // Fields 14 and 15 of stat (utime, stime), counted after the command name: indexes 11 and 12.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}
const CLOCK_TICKS = 100;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 50);
const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;
const load = () => loadavg().map((v) => round(v));

function expectStatus(reply: Reply, status: number, what: string): unknown {
  if (reply.status !== status) throw new Error(`${what}: expected ${status}, got ${reply.status} ${reply.body.slice(0, 300)}`);
  return JSON.parse(reply.body);
}

/** Node flags of the service processes: a CPU profile each when asked for. */
const nodeFlags = opts['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', opts['cpu-prof']] : [];

// ---------------------------------------------------------------------------------------------------
// The bare route: Fastify answering a fixed JSON body of the predict reply's size

async function bareServer(port: number): Promise<void> {
  const body = JSON.parse(process.env.BARE_BODY ?? '{}') as Record<string, unknown>;
  const app = Fastify({ logger: false });
  app.get('/bare', async () => body);
  await app.listen({ host: '127.0.0.1', port });
}

// ---------------------------------------------------------------------------------------------------
// Set-up: the model is meta-trained by the service itself, as a client would have it trained

async function trainThroughService(call: Call, iterations: number): Promise<{ id: string; trainMs: number }> {
  const started = performance.now();
  const family = expectStatus(await call('POST', '/task-families', SINE), 201, 'create family') as { id: string };
  const hyper = { iterations, metaBatchSize: 10, shots: K, queryShots: K, innerSteps: 1, innerLr: 0.01, metaLr: 0.001, evalEvery: iterations, checkpointEvery: iterations, seed: 0 };
  const body = { name: 'bench-sine-maml', familyIds: [family.id], algorithm: 'maml', model: MODEL, hyper };
  const job = expectStatus(await call('POST', '/meta-train', body), 202, 'meta-train') as { id: string };
  for (;;) {
    const state = expectStatus(await call('GET', `/meta-train/${job.id}`), 200, 'meta-train job') as { status: string; metaModelId: string | null; error: string | null };
    if (state.status === 'succeeded' && state.metaModelId) return { id: state.metaModelId, trainMs: performance.now() - started };
    if (state.status === 'failed' || state.status === 'cancelled') throw new Error(`meta-training ${state.status}: ${state.error}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** K points of a random sinusoid task (amplitude 0.1-5, phase 0-pi, x in [-5, 5]). */
function supportSet(rng: Rng) {
  const amplitude = rng.uniform(0.1, 5);
  const phase = rng.uniform(0, Math.PI);
  const x = Array.from({ length: K }, () => [rng.uniform(-5, 5)]);
  return { x, y: x.map(([v]) => amplitude * Math.sin(v - phase)) };
}

// ---------------------------------------------------------------------------------------------------
// The measurements

type Call = ReturnType<typeof client>;

async function measureAdapt(call: Call, taskIds: string[], total: number) {
  const rng = new Rng(42);
  const run = async (perClient: number, latencies: number[]) => {
    await Promise.all(
      taskIds.map(async (taskId) => {
        for (let i = 0; i < perClient; i++) {
          const body = { support: supportSet(rng), steps: STEPS, innerLr: 0.01 };
          const sent = performance.now();
          const reply = await call('POST', `/tasks/${taskId}/adapt`, body);
          latencies.push(performance.now() - sent);
          expectStatus(reply, 200, 'adapt');
        }
      }),
    );
  };
  const latencies: number[] = [];
  const started = performance.now();
  await run(Math.ceil(total / taskIds.length), latencies);
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { latencies, perSecond: latencies.length / seconds };
}

async function cannon(url: string, connections: number, seconds: number, headers: Record<string, string> = {}) {
  const result = await autocannon({ url, connections, duration: seconds, headers });
  if (result.non2xx > 0 || result.errors > 0) {
    throw new Error(`${url}: ${result.non2xx} non-2xx replies (${JSON.stringify(result.statusCodeStats)}) and ${result.errors} errors`);
  }
  return { perSecond: result.requests.average, p99Ms: result.latency.p99, p50Ms: result.latency.p50, requests: result.requests.total };
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent' }, []);
  const adapts = Number(opts.adapts);
  const clients = Number(opts.clients);
  const connections = Number(opts.connections);
  const seconds = Number(opts.seconds);
  const topology = opts.topology === 'all' ? 'all' : 'split';
  const backend = opts.backend as BackendPreference;
  const loadAtStart = load();
  const prefix = `fastadapt-bench-${randomUUID().slice(0, 8)}`;
  const logger = pino({ level: 'warn' });
  const db = createDb(config.databaseUrl);
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const children: ChildProcess[] = [];
  let tenantId: string | undefined;
  let subscriber: AdaptedSubscriber | undefined;
  try {
    const key = await createApiKey(db, `bench-serve-${prefix}`);
    tenantId = key.tenantId;

    const [apiPort, barePort] = [await freePort(), await freePort()];
    // Rate limiting stays on, as deployed (every request counted in Redis), with a budget the bench never reaches.
    const env = { PORT: String(apiPort), HOST: '127.0.0.1', QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn', TFJS_BACKEND: backend, RECONCILE_INTERVAL_MS: '3600000', RATE_LIMIT_MAX: '1000000000', ...(opts['adapt-concurrency'] ? { ADAPT_CONCURRENCY: opts['adapt-concurrency'] } : {}) };
    const ready = async () => (await fetch(`http://127.0.0.1:${apiPort}/readyz`)).ok;
    if (topology === 'split') {
      children.push(await startProcess('api', ['src/main.ts', '--role', 'api'], env, ready, nodeFlags));
      children.push(spawn(process.execPath, [...nodeFlags, '--import', 'tsx', 'src/main.ts', '--role', 'worker'], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] }));
    } else {
      children.push(await startProcess('service', ['src/main.ts', '--role', 'all'], env, ready, nodeFlags));
    }
    const call = client(apiPort, key.key, Math.max(clients, 4));
    const metaModel = await trainThroughService(call, Number(opts.iterations));
    console.log(`meta-trained MAML 1-40-40-1 on sinusoids through the service (${opts.iterations} iterations, ${round(metaModel.trainMs / 1000, 1)} s)`);
    subscriber = await AdaptedSubscriber.start(redis, prefix, logger, 'bench');
    const messages: AdaptedMessage[] = [];
    subscriber.on((m) => messages.push(m));

    const taskIds: string[] = [];
    for (let i = 0; i < clients; i++) taskIds.push((expectStatus(await call('POST', '/tasks', { metaModelId: metaModel.id, name: `bench-${i}` }), 201, 'create task') as { id: string }).id);
    // The worker process starts on its own: wait until it listens on the adapt queue (start-up only).
    const adaptQueue = new Queue('adapt', { connection: redis, prefix });
    const deadline = Date.now() + 60_000;
    while ((await adaptQueue.getWorkersCount()) === 0) {
      if (Date.now() > deadline) throw new Error('no worker on the adapt queue after 60 s');
      if (children.some((child) => child.exitCode !== null)) throw new Error('a service process exited during start-up');
      await new Promise((r) => setTimeout(r, 200));
    }
    await adaptQueue.close();
    // The first adaptation also has the worker decode the meta-model.
    expectStatus(await call('POST', `/tasks/${taskIds[0]}/adapt`, { support: supportSet(new Rng(1)), steps: STEPS }), 200, 'first adapt');

    // Warm-up, unmeasured: a fresh process needs a few hundred adaptations before V8 and the wasm
    // kernels reach steady speed (as the engine needs 100-200 iterations); a service runs warm.
    const warmup = Number(opts.warmup);
    await measureAdapt(call, taskIds, warmup * taskIds.length);
    // One client alone: the round trip without queueing behind other clients' adaptations.
    const single = await measureAdapt(call, taskIds.slice(0, 1), Math.min(200, adapts));
    const before = messages.length;
    const cpu = { before: children.map(cpuMs), after: [] as number[] };
    const adapt = await measureAdapt(call, taskIds, adapts);
    cpu.after = children.map(cpuMs);
    const cpuPerAdapt = children.map((_, i) => round((cpu.after[i] - cpu.before[i]) / adapt.latencies.length, 3));
    const measured = messages.slice(before);
    const worker = {
      queuedMs: median(measured.map((m) => m.timings?.queuedMs ?? NaN)),
      loadMs: median(measured.map((m) => m.timings?.loadMs ?? NaN)),
      adaptMs: median(measured.map((m) => m.timings?.adaptMs ?? NaN)),
      writeMs: median(measured.map((m) => m.timings?.writeMs ?? NaN)),
      durationMs: median(measured.map((m) => m.durationMs)),
    };

    const predictPath = `/predict?taskId=${taskIds[0]}&x=0.5`;
    const sample = await call('GET', predictPath);
    expectStatus(sample, 200, 'predict');
    const bare = await startProcess('bare route', ['bench/serve.ts', '--bare-server', String(barePort)], { BARE_BODY: sample.body }, async () => (await fetch(`http://127.0.0.1:${barePort}/bare`)).ok, nodeFlags);
    children.push(bare);
    const bareBody = await (await fetch(`http://127.0.0.1:${barePort}/bare`)).text();
    const bareRun = await cannon(`http://127.0.0.1:${barePort}/bare`, connections, seconds);
    const predictRun = await cannon(`http://127.0.0.1:${apiPort}${predictPath}`, connections, seconds, { authorization: `Bearer ${key.key}` });
    // The same request with coverage and novelty (issue 25), against plain predict: both warmed up,
    // then three alternating rounds, medians compared, so a drift of the shared machine's load
    // favours neither.
    const uncertainPath = `${predictPath}&coverage=0.9&novelty=true`;
    expectStatus(await call('GET', uncertainPath), 200, 'predict with coverage and novelty');
    const auth = { authorization: `Bearer ${key.key}` };
    for (const path of [predictPath, uncertainPath]) await cannon(`http://127.0.0.1:${apiPort}${path}`, connections, 2, auth);
    // Also the API process's CPU time per request, which the other processes on a shared machine do
    // not move (throughput does): the cost of the two requests to the process that serves them.
    const measuredRun = async (path: string) => {
      const before = cpuMs(children[0]);
      const run = await cannon(`http://127.0.0.1:${apiPort}${path}`, connections, seconds, auth);
      return { perSecond: run.perSecond, cpuMsPerRequest: (cpuMs(children[0]) - before) / run.requests };
    };
    const rounds: { plain: number; uncertain: number; plainCpuMs: number; uncertainCpuMs: number }[] = [];
    for (let round = 0; round < 3; round++) {
      const plain = await measuredRun(predictPath);
      const uncertain = await measuredRun(uncertainPath);
      rounds.push({ plain: plain.perSecond, uncertain: uncertain.perSecond, plainCpuMs: plain.cpuMsPerRequest, uncertainCpuMs: uncertain.cpuMsPerRequest });
    }
    const plainMedian = median(rounds.map((r) => r.plain));
    const uncertainMedian = median(rounds.map((r) => r.uncertain));
    const [plainCpu, uncertainCpu] = [median(rounds.map((r) => r.plainCpuMs)), median(rounds.map((r) => r.uncertainCpuMs))];

    const results = {
      adapt: {
        p50Ms: round(percentile(adapt.latencies, 50)),
        p99Ms: round(percentile(adapt.latencies, 99)),
        perSecond: round(adapt.perSecond, 1),
        requests: adapt.latencies.length,
        meanMs: round(adapt.latencies.reduce((a, b) => a + b, 0) / adapt.latencies.length),
        maxMs: round(adapt.latencies.at(-1)!),
        singleClient: { p50Ms: round(percentile(single.latencies, 50)), p99Ms: round(percentile(single.latencies, 99)), requests: single.latencies.length },
        workerMedianMs: Object.fromEntries(Object.entries(worker).map(([k, v]) => [k, round(v, 3)])),
        // CPU time per measured adaptation of each service process: independent of how
        // busy the machine is, unlike the latencies.
        cpuMsPerAdapt: (topology === 'split' ? { api: cpuPerAdapt[0], worker: cpuPerAdapt[1] } : { all: cpuPerAdapt[0] }) as Record<string, number>,
      },
      predict: {
        perSecond: round(predictRun.perSecond),
        p99Ms: predictRun.p99Ms,
        p50Ms: predictRun.p50Ms,
        bareRoutePerSecond: round(bareRun.perSecond),
        bareRouteP99Ms: bareRun.p99Ms,
        ratioToBare: round(predictRun.perSecond / bareRun.perSecond, 3),
        bodyBytes: { predict: Buffer.byteLength(sample.body), bare: Buffer.byteLength(bareBody) },
      },
      predictWithCoverageAndNovelty: {
        perSecond: round(uncertainMedian),
        plainPerSecond: round(plainMedian),
        ratioToPlain: round(uncertainMedian / plainMedian, 3),
        apiCpuMsPerRequest: { plain: round(plainCpu, 4), uncertain: round(uncertainCpu, 4) },
        // Throughput a CPU-bound API process would reach with the richer request, relative to plain.
        cpuRatioToPlain: round(plainCpu / uncertainCpu, 3),
        rounds: rounds.map((r) => ({ plain: round(r.plain), uncertain: round(r.uncertain), plainCpuMs: round(r.plainCpuMs, 4), uncertainCpuMs: round(r.uncertainCpuMs, 4) })),
      },
      targets: { adaptP50Ms: 15, adaptP99Ms: 40, predictRatioToBare: 0.5, coverageNoveltyRatioToPlain: 0.65 },
      settings: {
        topology,
        backend,
        rateLimit: 'on: every request counted (leased counts in Redis), budget 1e9 per window',
        clients,
        k: K,
        steps: STEPS,
        model: '1-40-40-1 MAML',
        metaTrainIterations: Number(opts.iterations),
        adaptWarmupPerClient: warmup,
        connections,
        seconds,
        adaptConcurrency: Number(opts['adapt-concurrency'] ?? config.adaptConcurrency),
      },
      machine: { cpus: cpus().length, node: process.version, loadAverageAtStart: loadAtStart, loadAverageAtEnd: load() },
      at: new Date().toISOString(),
    };
    mkdirSync(dirname(opts.out), { recursive: true });
    writeFileSync(opts.out, `${JSON.stringify(results, null, 2)}\n`);
    printTable(results);
    console.log(`wrote ${opts.out}`);
  } finally {
    await subscriber?.close();
    await Promise.all(children.map(stopProcess));
    if (tenantId) await db.prisma.tenant.delete({ where: { id: tenantId } }).catch((err: unknown) => console.error('could not remove the bench tenant', err));
    await removePrefix(config.redisUrl, prefix);
    await redis.quit();
    await db.close();
  }
}

function printTable(r: { adapt: { p50Ms: number; p99Ms: number; perSecond: number; singleClient: { p50Ms: number; p99Ms: number }; workerMedianMs: Record<string, number>; cpuMsPerAdapt: Record<string, number> }; predict: { perSecond: number; p99Ms: number; bareRoutePerSecond: number; ratioToBare: number }; machine: { loadAverageAtStart: number[]; loadAverageAtEnd: number[] } }) {
  const ok = (pass: boolean) => (pass ? 'ok' : 'MISSED');
  console.table([
    { measure: 'adapt p50 (ms)', value: r.adapt.p50Ms, target: '<= 15', result: ok(r.adapt.p50Ms <= 15) },
    { measure: 'adapt p99 (ms)', value: r.adapt.p99Ms, target: '<= 40', result: ok(r.adapt.p99Ms <= 40) },
    { measure: 'adapt / s', value: r.adapt.perSecond, target: '', result: '' },
    { measure: '  1 client: p50 / p99 (ms)', value: `${r.adapt.singleClient.p50Ms} / ${r.adapt.singleClient.p99Ms}`, target: '', result: '' },
    ...Object.entries(r.adapt.workerMedianMs).map(([k, v]) => ({ measure: `  worker median ${k}`, value: v, target: '', result: '' })),
    ...Object.entries(r.adapt.cpuMsPerAdapt).map(([k, v]) => ({ measure: `  cpu ms per adapt, ${k}`, value: v, target: '', result: '' })),
    { measure: 'predict / s', value: r.predict.perSecond, target: `>= ${round(r.predict.bareRoutePerSecond / 2)}`, result: ok(r.predict.ratioToBare >= 0.5) },
    { measure: 'predict p99 (ms)', value: r.predict.p99Ms, target: '', result: '' },
    { measure: 'bare route / s', value: r.predict.bareRoutePerSecond, target: '', result: '' },
  ]);
  console.log(`load average (1, 5, 15 min): start ${r.machine.loadAverageAtStart.join(', ')}; end ${r.machine.loadAverageAtEnd.join(', ')}`);
}

if (opts['bare-server'] !== undefined) {
  await bareServer(Number(opts['bare-server']));
} else {
  await main();
}
