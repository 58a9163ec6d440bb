/**
 * Many-tasks benchmark: `npm run bench:scale [-- options]` prints a table and writes
 * bench/results/scale.json.
 *
 * For each level (default 10^2, 10^4, 10^5 adapted tasks of one meta-model) it writes the tasks and
 * one adapted head each **in bulk** (Prisma createMany, 1000 rows a statement; the heads are real
 * adaptations of the meta-model made in this process by the engine, a few hundred distinct ones
 * reused), starts a fresh API process (`--role api`) with PREDICT_CACHE_SIZE a tenth of the task
 * count, and measures through HTTP:
 * - the miss path: GET /predict once for each of `--miss-requests` distinct tasks, one at a time, on
 *   the fresh process (each is a cache miss): p50/p99;
 * - the mix: GET /predict with autocannon at `--connections` over a Zipf(s) mix of the task ids
 *   (rank r drawn with probability proportional to 1/r^s): throughput, p50/p99, and the cache hit
 *   rate from the process's own `fastadapt_predict_cache_lookups_total`;
 * - Postgres bytes per stored head (growth of adapted_heads' total size over the heads written), and
 *   the plan of the miss path's statement at that size (EXPLAIN ANALYZE).
 * Target (issue 17): predict p99 at 10^5 tasks within 1.5x of its value at 10^2. At a few hundred
 * rows Postgres rightly prefers a sequential scan, so `missPathPlan.indexedOnly` is meaningful at
 * the larger levels (test/integration/latest-head.test.ts checks the indexes serve at any size).
 *
 * Options: --levels 100,10000,100000, --seconds N (each mix run, 10), --connections N (32),
 * --zipf S (1.0), --cache-ratio R (0.1), --miss-requests N (300), --out PATH. Uses DATABASE_URL and
 * REDIS_URL like the service; everything it creates is removed at the end.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, loadavg } from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { loadConfig } from '../src/config.js';
import { createDb, type Db } from '../src/db/client.js';
import { createApiKey } from '../src/db/repositories/api-keys.js';
import { LATEST_HEAD_SQL } from '../src/db/repositories/tasks.js';
import { adapt, encodeParams, initBackend, Rng, type MetaModel } from '../src/meta/index.js';
import { storeMetaModel, trainSineMaml } from '../test/integration/support/adapt-fixtures.js';
import { freePort, removePrefix } from '../test/integration/support/services.js';
import { readyz, startProcess, stopProcess } from './support/processes.js';

const { values: opts } = parseArgs({
  options: {
    levels: { type: 'string', default: '100,10000,100000' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
    zipf: { type: 'string', default: '1.0' },
    'cache-ratio': { type: 'string', default: '0.1' },
    'miss-requests': { type: 'string', default: '300' },
    out: { type: 'string', default: 'bench/results/scale.json' },
  },
});

/** Distinct adapted heads written (each task gets one of them): adapting 10^5 in-process would only time the engine. */
const DISTINCT_HEADS = 256;
const CHUNK = 1000;
const K = 10;

const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];

/** Samples ranks 0..n-1 with probability proportional to 1/(rank+1)^s (inverse CDF by binary search). */
function zipfSampler(n: number, s: number, rng: Rng): () => number {
  const cdf = new Float64Array(n);
  let total = 0;
  for (let r = 0; r < n; r++) cdf[r] = total += 1 / (r + 1) ** s;
  return () => {
    const u = rng.uniform(0, total);
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** Real heads: the meta-model adapted to random sine tasks, encoded as the worker stores them. */
function adaptedHeads(model: MetaModel): Uint8Array<ArrayBuffer>[] {
  const rng = new Rng(7);
  return Array.from({ length: DISTINCT_HEADS }, () => {
    const amplitude = rng.uniform(0.1, 5);
    const phase = rng.uniform(0, Math.PI);
    const x = Float32Array.from({ length: K }, () => rng.uniform(-5, 5));
    const result = adapt(model, { x, y: x.map((v) => amplitude * Math.sin(v - phase)), n: K });
    return new Uint8Array(encodeParams(result.params));
  });
}

async function headsBytes(db: Db): Promise<number> {
  const { rows } = await db.sql.query<{ bytes: string }>(`SELECT pg_total_relation_size('adapted_heads') AS bytes`);
  return Number(rows[0].bytes);
}

/** Writes `count` tasks of the meta-model with one head each, in chunks; returns their ids. */
async function writeTasks(db: Db, tenantId: string, metaModelId: string, count: number, heads: Uint8Array<ArrayBuffer>[]): Promise<string[]> {
  const ids: string[] = [];
  for (let start = 0; start < count; start += CHUNK) {
    const size = Math.min(CHUNK, count - start);
    const chunk = Array.from({ length: size }, () => randomUUID());
    await db.prisma.task.createMany({ data: chunk.map((id) => ({ id, tenantId, metaModelId, kind: 'regression' as const, inputDim: 1, headVersion: 1 })) });
    await db.prisma.adaptedHead.createMany({
      data: chunk.map((taskId, i) => ({ taskId, version: 1, params: heads[(start + i) % heads.length], supportLossBefore: 1, supportLossAfter: 0.1, supportLossTrace: [], bestStep: 5, diverged: false, steps: 5, innerLr: 0.01, durationMs: 1 })),
    });
    ids.push(...chunk);
  }
  await db.sql.query('ANALYZE tasks; ANALYZE adapted_heads');
  return ids;
}

/** The plan Postgres picks for the miss path's statement at this size, run once. */
async function missPlan(db: Db, taskId: string, tenantId: string) {
  const { rows } = await db.sql.query<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ${LATEST_HEAD_SQL}`, [taskId, tenantId]);
  const plan = rows.map((r) => r['QUERY PLAN']);
  const text = plan.join('\n');
  return { plan, indexedOnly: !/Seq Scan/.test(text) && /tasks_pkey/.test(text) && /adapted_heads_pkey/.test(text) };
}

/** The process's predict cache lookups so far, from /metrics (loopback needs no key). */
async function cacheLookups(port: number): Promise<{ hit: number; miss: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const read = (result: string) => Number(new RegExp(`fastadapt_predict_cache_lookups_total\\{result="${result}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  return { hit: read('hit'), miss: read('miss') };
}

/** GETs `path` on a keep-alive socket; resolves the latency in ms. */
function timedGet(agent: Agent, port: number, path: string, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const sent = performance.now();
    const req = request({ host: '127.0.0.1', port, path, agent, headers: { authorization: `Bearer ${key}` } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - sent) : reject(new Error(`GET ${path}: ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

async function measureLevel(db: Db, key: { key: string; tenantId: string }, ids: string[], prefix: string) {
  const tasks = ids.length;
  const cacheSize = Math.max(1, Math.floor(tasks * Number(opts['cache-ratio'])));
  const port = await freePort();
  const api = await startProcess('the API', ['src/main.ts', '--role', 'api'], { PORT: String(port), HOST: '127.0.0.1', QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn', PREDICT_CACHE_SIZE: String(cacheSize), RATE_LIMIT_MAX: '1000000000' }, readyz(port));
  try {
    const path = (taskId: string) => `/predict?taskId=${taskId}&x=0.5`;
    // Zipf ranks over a shuffle of the tasks, so rank and insertion order differ.
    const rng = new Rng(tasks);
    const order = [...ids];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rng.uniform(0, i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    // Miss path: distinct tasks of the coldest ranks on the fresh process, one at a time (each a miss).
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    // Warm the fresh process's code paths first on the hottest task, so a miss is not a first call.
    for (let i = 0; i < 50; i++) await timedGet(agent, port, path(order[0]), key.key);
    const missLatencies: number[] = [];
    for (const id of order.slice(-Math.min(Number(opts['miss-requests']), tasks))) missLatencies.push(await timedGet(agent, port, path(id), key.key));
    agent.destroy();
    missLatencies.sort((a, b) => a - b);
    const next = zipfSampler(tasks, Number(opts.zipf), rng);
    const before = await cacheLookups(port);
    const result = await autocannon({
      url: `http://127.0.0.1:${port}`,
      connections: Number(opts.connections),
      duration: Number(opts.seconds),
      headers: { authorization: `Bearer ${key.key}` },
      requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: path(order[next()]) }) }],
    });
    if (result.non2xx > 0 || result.errors > 0) throw new Error(`predict mix: ${result.non2xx} non-2xx (${JSON.stringify(result.statusCodeStats)}), ${result.errors} errors`);
    const after = await cacheLookups(port);
    const hits = after.hit - before.hit;
    const misses = after.miss - before.miss;
    return {
      tasks,
      predictP50Ms: result.latency.p50,
      predictP99Ms: result.latency.p99,
      cacheHitRate: round(hits / Math.max(1, hits + misses), 4),
      perSecond: round(result.requests.average, 1),
      requests: result.requests.total,
      cacheSize,
      missPath: { requests: missLatencies.length, p50Ms: round(percentile(missLatencies, 50)), p99Ms: round(percentile(missLatencies, 99)) },
    };
  } finally {
    await stopProcess(api);
  }
}

async function main(): Promise<void> {
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent' }, []);
  const levels = opts.levels.split(',').map(Number);
  if (levels.some((n) => !Number.isSafeInteger(n) || n < 1)) throw new Error(`--levels must be positive integers, got ${opts.levels}`);
  const loadAtStart = loadavg().map((v) => round(v));
  const prefix = `fastadapt-bench-scale-${randomUUID().slice(0, 8)}`;
  const db = createDb(config.databaseUrl);
  let tenantId: string | undefined;
  try {
    await initBackend('cpu');
    const key = await createApiKey(db, `bench-scale-${prefix}`);
    tenantId = key.tenantId;
    // The meta-model as the worker would store it (the adapt tests' fixture), briefly meta-trained.
    const stored = await storeMetaModel(db, key.tenantId, { params: trainSineMaml(100), inner: { steps: 5, lr: 0.01 } });
    const heads = adaptedHeads({ algorithm: stored.algorithm, spec: stored.spec, inner: stored.inner, params: stored.params });
    const results = [];
    for (const tasks of levels) {
      const sizeBefore = await headsBytes(db);
      const written = performance.now();
      const ids = await writeTasks(db, key.tenantId, stored.metaModelId, tasks, heads);
      const writeSeconds = (performance.now() - written) / 1000;
      const bytesPerHead = ((await headsBytes(db)) - sizeBefore) / tasks;
      const plan = await missPlan(db, ids[Math.floor(tasks / 2)], key.tenantId);
      const level = await measureLevel(db, key, ids, prefix);
      results.push({ ...level, postgresBytesPerHead: Math.round(bytesPerHead), headParamBytes: heads[0].byteLength, writeSeconds: round(writeSeconds, 1), missPathPlan: plan });
      console.log(`${tasks} tasks: predict p50 ${level.predictP50Ms} ms, p99 ${level.predictP99Ms} ms, ${level.perSecond}/s, hit rate ${level.cacheHitRate}; miss p50 ${level.missPath.p50Ms} ms; ${Math.round(bytesPerHead)} B/head; single indexed read: ${plan.indexedOnly}`);
      // Each level stands alone: drop its tasks (heads cascade) before the next.
      await db.prisma.task.deleteMany({ where: { tenantId: key.tenantId } });
    }
    const first = results[0];
    const last = results.at(-1)!;
    const out = {
      levels: results,
      target: { predictP99RatioLastToFirst: 1.5, measured: round(last.predictP99Ms / Math.max(first.predictP99Ms, 1e-9), 2) },
      settings: {
        written: `in bulk: tasks and one head each by Prisma createMany (${CHUNK} rows a statement), bypassing the API; the heads are ${DISTINCT_HEADS} real adaptations (K=${K}, 5 steps) of one MAML 1-40-40-1 sinusoid meta-model, reused round-robin; the meta-model is stored as the worker stores one`,
        topology: 'one API process (--role api), no worker',
        zipfExponent: Number(opts.zipf),
        cacheRatio: Number(opts['cache-ratio']),
        connections: Number(opts.connections),
        seconds: Number(opts.seconds),
        rateLimit: 'on, budget 1e9 per window',
      },
      machine: { cpus: cpus().length, node: process.version, loadAverageAtStart: loadAtStart, loadAverageAtEnd: loadavg().map((v) => round(v)) },
      at: new Date().toISOString(),
    };
    mkdirSync(dirname(opts.out), { recursive: true });
    writeFileSync(opts.out, `${JSON.stringify(out, null, 2)}\n`);
    console.table(results.map((r) => ({ tasks: r.tasks, cache: r.cacheSize, 'p50 ms': r.predictP50Ms, 'p99 ms': r.predictP99Ms, '/s': r.perSecond, 'hit rate': r.cacheHitRate, 'miss p50 ms': r.missPath.p50Ms, 'miss p99 ms': r.missPath.p99Ms, 'B/head': r.postgresBytesPerHead, indexed: r.missPathPlan.indexedOnly })));
    console.log(`p99 at ${last.tasks} tasks / at ${first.tasks}: ${out.target.measured} (target <= 1.5)`);
    console.log(`wrote ${opts.out}`);
  } finally {
    if (tenantId) await db.prisma.tenant.delete({ where: { id: tenantId } }).catch((err: unknown) => console.error('could not remove the bench tenant', err));
    await removePrefix(config.redisUrl, prefix);
    await db.close();
  }
}

await main();
