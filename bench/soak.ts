/**
 * Soak benchmark: `npm run bench:soak [-- --minutes N]` runs mixed traffic against the service for N
 * minutes (default 10) and writes bench/results/soak.json.
 *
 * The service runs as one `--role all` process (API and worker pool), so one /metrics scrape shows
 * everything it holds. Traffic, all through HTTP with one tenant's key:
 * - meta-training: a short MAML job (30 iterations) started whenever none of ours is running;
 * - adaptations: `--adapters` clients, each POSTing /tasks/:id/adapt (K=10) on tasks of their own;
 * - predictions: `--predictors` clients GETting /predict over the adapted tasks;
 * - event streams: one opened every second on the newest job and dropped after 0.2-2 s.
 * Every `--sample-seconds` (default 60) the traffic pauses, in-flight requests and meta-training
 * jobs finish, and a sample is taken: RSS, heap used, tfjs tensors and bytes (the process's
 * /metrics), Redis used memory and the count of keys under the run's prefix, and Postgres
 * connections to the database. The first interval is warm-up: drifts are the last sample minus the
 * sample after it. `errors` counts answers nobody intended (anything but 200/201/202, and a 429 of
 * the event-stream cap, which is intended); each is kept in `errorSamples` (first 20).
 * Uses DATABASE_URL and REDIS_URL like the service; everything it creates is removed at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { loadConfig } from '../src/config.js';
import { createDb } from '../src/db/client.js';
import { createApiKey } from '../src/db/repositories/api-keys.js';
import { Rng } from '../src/meta/index.js';
import { storeMetaModel, trainSineMaml } from '../test/integration/support/adapt-fixtures.js';
import { freePort, removePrefix } from '../test/integration/support/services.js';
import { client, type Reply } from './support/http.js';

const { values: opts } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    'sample-seconds': { type: 'string', default: '60' },
    adapters: { type: 'string', default: '2' },
    predictors: { type: 'string', default: '4' },
    out: { type: 'string', default: 'bench/results/soak.json' },
  },
});

const K = 10;
const SINE = { name: 'sine', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid' } };
const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Metric values by name (unlabelled series) from a Prometheus text scrape. */
function gauges(text: string, names: string[]): Record<string, number> {
  return Object.fromEntries(names.map((name) => [name, Number(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN)]));
}

function supportSet(rng: Rng) {
  const amplitude = rng.uniform(0.1, 5);
  const phase = rng.uniform(0, Math.PI);
  const x = Array.from({ length: K }, () => [rng.uniform(-5, 5)]);
  return { x, y: x.map(([v]) => amplitude * Math.sin(v - phase)) };
}

async function main(): Promise<void> {
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent' }, []);
  const minutes = Number(opts.minutes);
  const sampleMs = Number(opts['sample-seconds']) * 1000;
  const prefix = `fastadapt-bench-soak-${randomUUID().slice(0, 8)}`;
  const db = createDb(config.databaseUrl);
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const loadAtStart = loadavg().map((v) => round(v));
  let tenantId: string | undefined;
  let service: ChildProcess | undefined;
  try {
    const key = await createApiKey(db, `bench-soak-${prefix}`);
    tenantId = key.tenantId;
    const stored = await storeMetaModel(db, key.tenantId, { params: trainSineMaml(100), inner: { steps: 5, lr: 0.01 } });
    const port = await freePort();
    const env = { PORT: String(port), HOST: '127.0.0.1', QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn', TFJS_BACKEND: 'cpu', RATE_LIMIT_MAX: '1000000000', PROGRESS_INTERVAL_MS: '100' };
    service = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--role', 'all'], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] });
    const deadline = Date.now() + 60_000;
    while (!(await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false))) {
      if (service.exitCode !== null || Date.now() > deadline) throw new Error('the service did not start');
      await sleep(200);
    }
    const call = client(port, key.key, 32);
    const family = JSON.parse((await call('POST', '/task-families', SINE)).body) as { id: string };
    const taskIds: string[] = [];
    for (let i = 0; i < Number(opts.adapters) * 5; i++) taskIds.push((JSON.parse((await call('POST', '/tasks', { metaModelId: stored.metaModelId })).body) as { id: string }).id);

    let errors = 0;
    const errorSamples: string[] = [];
    const intended = { streamsRefused: 0 };
    const counts = { metaTrain: 0, adapt: 0, predict: 0, streams: 0 };
    const check = (what: string, reply: Reply, ok: number[]) => {
      if (ok.includes(reply.status)) return true;
      errors++;
      if (errorSamples.length < 20) errorSamples.push(`${what}: ${reply.status} ${reply.body.slice(0, 200)}`);
      return false;
    };
    const fail = (what: string, err: unknown) => {
      errors++;
      if (errorSamples.length < 20) errorSamples.push(`${what}: ${(err as Error).message}`);
    };

    // Traffic loops wait at this gate while a sample is taken.
    let paused = false;
    let stopped = false;
    const inFlight = new Set<Promise<unknown>>();
    const track = <T>(work: Promise<T>) => {
      inFlight.add(work);
      void work.finally(() => inFlight.delete(work)).catch(() => {});
      return work;
    };
    const loop = async (step: () => Promise<unknown>) => {
      while (!stopped) {
        if (paused) {
          await sleep(50);
          continue;
        }
        await track(step().catch((err: unknown) => fail('request', err)));
      }
    };

    let currentJob: string | null = null;
    const jobs: string[] = [];
    const metaTrain = async () => {
      if (currentJob) {
        const state = JSON.parse((await call('GET', `/meta-train/${currentJob}`)).body) as { status: string };
        if (!['succeeded', 'failed', 'cancelled'].includes(state.status)) return sleep(500);
        if (state.status !== 'succeeded') fail('meta-train', new Error(`job ended ${state.status}`));
      }
      const body = { familyIds: [family.id], algorithm: 'maml', model: { hidden: [16, 16] }, hyper: { iterations: 30, metaBatchSize: 4, shots: 5, queryShots: 5, evalEvery: 10, checkpointEvery: 10, seed: counts.metaTrain } };
      const reply = await call('POST', '/meta-train', body);
      if (check('meta-train', reply, [202])) {
        currentJob = (JSON.parse(reply.body) as { id: string }).id;
        jobs.push(currentJob);
        counts.metaTrain++;
      }
      await sleep(500);
    };
    const adapter = (index: number) => {
      const rng = new Rng(100 + index);
      const mine = taskIds.filter((_, i) => i % Number(opts.adapters) === index);
      let n = 0;
      return async () => {
        const reply = await call('POST', `/tasks/${mine[n++ % mine.length]}/adapt`, { support: supportSet(rng) });
        if (check('adapt', reply, [200, 202])) counts.adapt++;
      };
    };
    const predictor = (index: number) => {
      let n = index;
      return async () => {
        const reply = await call('GET', `/predict?taskId=${taskIds[n++ % taskIds.length]}&x=0.5`);
        // 409 (not adapted yet) is expected before a task's first adaptation only.
        if (reply.status === 409 && counts.adapt < taskIds.length * 2) return sleep(20);
        if (check('predict', reply, [200])) counts.predict++;
      };
    };
    const streamer = async () => {
      await sleep(1000);
      const jobId = jobs.at(-1);
      if (!jobId) return;
      const aborter = new AbortController();
      const response = await fetch(`http://127.0.0.1:${port}/meta-train/${jobId}/events`, { headers: { authorization: `Bearer ${key.key}` }, signal: aborter.signal }).catch((err: unknown) => err as Error);
      if (response instanceof Error) return fail('events', response);
      if (response.status === 429) {
        intended.streamsRefused++;
        await response.body?.cancel();
        return;
      }
      if (!check('events', { status: response.status, body: '' }, [200])) return;
      counts.streams++;
      // Dropped while open, as a browser tab closing.
      setTimeout(() => aborter.abort(), 200 + Math.random() * 1800);
      await response.body?.pipeTo(new WritableStream()).catch(() => {});
    };

    const sample = async (at: number) => {
      paused = true;
      await Promise.allSettled([...inFlight]);
      // Let our meta-training job end, so its learner's tensors are not counted.
      for (let waited = 0; currentJob && waited < 60_000; waited += 250) {
        const state = JSON.parse((await call('GET', `/meta-train/${currentJob}`)).body) as { status: string };
        if (['succeeded', 'failed', 'cancelled'].includes(state.status)) break;
        await sleep(250);
      }
      await sleep(300);
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const m = gauges(text, ['process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'fastadapt_tfjs_tensors', 'fastadapt_tfjs_bytes']);
      const info = await redis.info('memory');
      // Keys under the run's prefix, by their first segment (queue names, events, rate-limit, ...), so growth has a name.
      const byKind: Record<string, number> = {};
      let keys = 0;
      let cursor = '0';
      do {
        const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        keys += batch.length;
        for (const k of batch) {
          const kind = k.slice(prefix.length + 1).split(':')[0];
          byKind[kind] = (byKind[kind] ?? 0) + 1;
        }
      } while (cursor !== '0');
      const { rows } = await db.sql.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()');
      paused = false;
      return {
        minute: round(at / 60_000, 2),
        rssMiB: round(m.process_resident_memory_bytes / 2 ** 20, 1),
        heapUsedMiB: round(m.nodejs_heap_size_used_bytes / 2 ** 20, 1),
        tensors: m.fastadapt_tfjs_tensors,
        tensorBytes: m.fastadapt_tfjs_bytes,
        redisUsedMemoryMiB: round(Number(/used_memory:(\d+)/.exec(info)?.[1]) / 2 ** 20, 2),
        redisKeys: keys,
        redisKeysByKind: byKind,
        postgresConnections: Number(rows[0].n),
        ...counts,
        errors,
      };
    };

    const started = Date.now();
    const samples = [await sample(0)];
    const loops = [
      loop(metaTrain),
      ...Array.from({ length: Number(opts.adapters) }, (_, i) => loop(adapter(i))),
      ...Array.from({ length: Number(opts.predictors) }, (_, i) => loop(predictor(i))),
      loop(streamer),
    ];
    const end = started + minutes * 60_000;
    while (Date.now() < end) {
      await sleep(Math.min(sampleMs, end - Date.now()));
      samples.push(await sample(Date.now() - started));
      console.log(JSON.stringify(samples.at(-1)));
    }
    stopped = true;
    await Promise.all(loops);

    // Warm-up is the first interval: drifts from the sample after it (or the first, with only two).
    const base = samples.length > 2 ? samples[1] : samples[0];
    const last = samples.at(-1)!;
    const out = {
      minutes,
      tensorDrift: last.tensors - base.tensors,
      rssGrowthMiB: round(last.rssMiB - base.rssMiB, 1),
      redisKeyGrowth: last.redisKeys - base.redisKeys,
      // BullMQ keeps finished jobs up to its retention (src/jobs/queues.ts: count and age per queue)
      // and each job's event stream lives 24 h after its end: growth by kind says which one it is.
      redisKeyGrowthByKind: Object.fromEntries(
        [...new Set([...Object.keys(base.redisKeysByKind), ...Object.keys(last.redisKeysByKind)])].map((kind) => [kind, (last.redisKeysByKind[kind] ?? 0) - (base.redisKeysByKind[kind] ?? 0)]),
      ),
      errors,
      errorSamples,
      intended,
      samples,
      settings: {
        topology: 'one --role all process (API and worker pool), TFJS_BACKEND=cpu',
        adapters: Number(opts.adapters),
        predictors: Number(opts.predictors),
        sampleSeconds: sampleMs / 1000,
        metaTraining: 'MAML 1-16-16-1, 30 iterations, one job at a time',
        streams: 'one GET /meta-train/:id/events a second, dropped after 0.2-2 s',
        baseline: samples.length > 2 ? 'the sample after the first (warm-up) interval' : 'the first sample (run too short for a warm-up interval)',
      },
      machine: { cpus: cpus().length, node: process.version, loadAverageAtStart: loadAtStart, loadAverageAtEnd: loadavg().map((v) => round(v)) },
      at: new Date().toISOString(),
    };
    mkdirSync(dirname(opts.out), { recursive: true });
    writeFileSync(opts.out, `${JSON.stringify(out, null, 2)}\n`);
    console.table(samples.map(({ redisKeysByKind: _kinds, ...flat }) => flat));
    console.log('Redis keys by kind, last sample:', last.redisKeysByKind);
    console.log(`tensor drift ${out.tensorDrift}, RSS growth ${out.rssGrowthMiB} MiB, Redis key growth ${out.redisKeyGrowth}, errors ${errors}`);
    console.log(`wrote ${opts.out}`);
  } finally {
    if (service && service.exitCode === null) {
      const exited = new Promise((resolve) => service!.once('exit', resolve));
      service.kill('SIGTERM');
      await Promise.race([exited, sleep(15_000)]);
      if (service.exitCode === null) service.kill('SIGKILL');
    }
    if (tenantId) await db.prisma.tenant.delete({ where: { id: tenantId } }).catch((err: unknown) => console.error('could not remove the bench tenant', err));
    await removePrefix(config.redisUrl, prefix);
    await redis.quit();
    await db.close();
  }
}

await main();
