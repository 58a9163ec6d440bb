/**
 * Soak benchmark: `npm run bench:soak [-- --minutes N]` runs mixed traffic against the service for N
 * minutes (default 10) and writes bench/results/soak.json (`--out PATH` elsewhere).
 *
 * The service runs as one `--role all` process (API and worker pool in one process) on the tfjs
 * `--backend` (default wasm: TFJS_BACKEND), started through bench/support/soak-service.ts, which adds
 * a count of the tensors it has created. Every engine path therefore runs in the process whose
 * /metrics the samples read. Traffic, all through HTTP with one tenant's key:
 * - meta-training, one job at a time in each of three loops: MAML 1-16-16-1 on sinusoids (30
 *   iterations; the fused engine), a conv body (two 4-channel blocks, 14x14 digits, MAML and
 *   ProtoNets in turn, a few iterations; always tfjs), and a multitask 1-16-16-1 MLP on sinusoids
 *   (the service runs MLP bodies on the fused engine except for algorithms it has no fused version
 *   of, multitask among them: chooseEngine, src/meta/engine.ts; the HTTP API has no engine switch);
 * - adaptations: `--adapters` clients, each POSTing /tasks/:id/adapt (K=10) on sine tasks of their
 *   own, and one client re-adapting conv tasks (5-way 2-shot digits; tfjs);
 * - predictions: `--predictors` clients GETting /predict over the sine tasks, and `--conv-predictors`
 *   clients POSTing 10 digits to /tasks/:id/predict over the conv tasks (on wasm, a conv body is
 *   served by the engine's tfjs forward pass: convServing in src/meta/predict-arrays.ts);
 * - event streams: one opened every second on the newest job and dropped after 0.2-2 s.
 * Every second while traffic runs, /metrics is scraped for the live tensor count (its maximum per
 * interval is `tensorsLiveMaxWhileRunning`). Every `--sample-seconds` (default 60) the traffic
 * pauses, in-flight requests and every meta-training job of the run finish, and a sample is taken
 * at rest: RSS, heap used, live tfjs tensors and bytes, tensors created since the last sample (the
 * process's /metrics), Redis used memory and the count of keys under the run's prefix, and Postgres
 * connections to the database. Before the traffic starts, one request of each kind is sent alone
 * and the tensors it created are kept (`tensorsPerRequest`). The first interval is warm-up: drifts are the last sample minus the
 * sample after it; `tensorDriftMaxAbs` is the largest distance of any later sample from it.
 * `errors` counts answers nobody intended (anything but 200/201/202, and a 429 of the event-stream
 * cap, which is intended); each is kept in `errorSamples` (first 20).
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
import { digits } from '../src/meta/families/index.js';
import { Rng, type Examples } from '../src/meta/index.js';
import { storeMetaModel, trainSineMaml } from '../test/integration/support/adapt-fixtures.js';
import { freePort, removePrefix } from '../test/integration/support/services.js';
import { client, type Reply } from './support/http.js';

const { values: opts } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    'sample-seconds': { type: 'string', default: '60' },
    backend: { type: 'string', default: 'wasm' },
    adapters: { type: 'string', default: '2' },
    predictors: { type: 'string', default: '4' },
    'conv-predictors': { type: 'string', default: '1' },
    'conv-tasks': { type: 'string', default: '4' },
    out: { type: 'string', default: 'bench/results/soak.json' },
  },
});

const K = 10;
const SINE = { name: 'sine', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid' } };
const DIGITS = { name: 'digits', kind: 'classification', inputDim: 196, nWay: 5, generator: { type: 'digits' } };
/** Small enough that a conv job ends within seconds, so a sample never waits long for one. */
const CONV_MODEL = { body: 'conv', channels: [4, 4] };
const CONV_HYPER = { iterations: 6, metaBatchSize: 2, shots: 1, queryShots: 1, innerSteps: 1, evalEvery: 3, checkpointEvery: 3 };
const CONV_ALGORITHMS = ['maml', 'protonet'] as const;
const ENDED = ['succeeded', 'failed', 'cancelled'];
const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** This process's own (unlabelled) series by name from a Prometheus text scrape; the API also merges workers' series, with a `worker` label. */
function gauges(text: string, names: string[]): Record<string, number> {
  return Object.fromEntries(names.map((name) => [name, Number(new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN)]));
}

function supportSet(rng: Rng) {
  const amplitude = rng.uniform(0.1, 5);
  const phase = rng.uniform(0, Math.PI);
  const x = Array.from({ length: K }, () => [rng.uniform(-5, 5)]);
  return { x, y: x.map(([v]) => amplitude * Math.sin(v - phase)) };
}

/** Rows of a digits episode's inputs as the API takes them. */
const imageRows = (examples: Examples) => Array.from({ length: examples.n }, (_, i) => Array.from(examples.x.subarray(i * 196, (i + 1) * 196)));

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
    const env = { PORT: String(port), HOST: '127.0.0.1', QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn', TFJS_BACKEND: opts.backend, RATE_LIMIT_MAX: '1000000000', PROGRESS_INTERVAL_MS: '100' };
    service = spawn(process.execPath, ['--import', 'tsx', 'bench/support/soak-service.ts', '--role', 'all'], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] });
    const deadline = Date.now() + 60_000;
    while (!(await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false))) {
      if (service.exitCode !== null || Date.now() > deadline) throw new Error('the service did not start');
      await sleep(200);
    }
    // What the service itself says it runs on, not what was asked for.
    const ready = (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as { backend: string; engine: string };
    const call = client(port, key.key, 32);
    const post = async (path: string, body: unknown) => {
      const reply = await call('POST', path, body);
      if (reply.status >= 300) throw new Error(`POST ${path}: ${reply.status} ${reply.body.slice(0, 300)}`);
      return JSON.parse(reply.body) as { id: string; metaModelId?: string | null; status?: string };
    };
    const sine = await post('/task-families', SINE);
    const digitsFamily = await post('/task-families', DIGITS);
    const taskIds: string[] = [];
    for (let i = 0; i < Number(opts.adapters) * 5; i++) taskIds.push((await post('/tasks', { metaModelId: stored.metaModelId })).id);

    // The conv meta-model the conv tasks adapt on: one short conv job through the service, before the clock starts.
    const convJob = await post('/meta-train', { name: 'soak-conv', familyIds: [digitsFamily.id], algorithm: 'maml', model: CONV_MODEL, hyper: { ...CONV_HYPER, seed: 0 } });
    let convModel = convJob;
    for (const until = Date.now() + 180_000; !ENDED.includes(convModel.status ?? ''); await sleep(250)) {
      if (Date.now() > until) throw new Error('the conv meta-training job did not end within 180 s');
      convModel = JSON.parse((await call('GET', `/meta-train/${convJob.id}`)).body) as typeof convModel;
    }
    if (convModel.status !== 'succeeded' || !convModel.metaModelId) throw new Error(`the conv meta-training job ended ${convModel.status}`);
    // Held-out digit classes: each conv task a 5-way episode, 2 labelled images a class to adapt on, 10 to predict.
    const family = digits({}, { ways: 5 });
    const convTasks: { id: string; support: { x: number[][]; y: number[] }; query: number[][] }[] = [];
    for (let i = 0; i < Number(opts['conv-tasks']); i++) {
      const episode = family.sampleEpisode(new Rng(1000 + i), 'test', { shots: 2, queryShots: 2, ways: 5 });
      const task = { id: (await post('/tasks', { metaModelId: convModel.metaModelId })).id, support: { x: imageRows(episode.support), y: Array.from(episode.support.y) }, query: imageRows(episode.query) };
      await post(`/tasks/${task.id}/adapt`, { support: task.support });
      convTasks.push(task);
    }

    let errors = 0;
    const errorSamples: string[] = [];
    const intended = { streamsRefused: 0 };
    const counts = { metaTrainFused: 0, metaTrainConv: 0, metaTrainTfjsMlp: 0, adapt: 0, convAdapt: 0, predict: 0, convPredict: 0, streams: 0 };
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

    /** Each meta-training loop's running job, if any: a sample waits for all of them to end. */
    const running = new Map<string, string>();
    const jobs: string[] = [];
    /** One job at a time: when the loop's last job has ended, start the next (`body(n)` for its n-th). */
    const metaTrainer = (name: 'metaTrainFused' | 'metaTrainConv' | 'metaTrainTfjsMlp', body: (n: number) => object) => async () => {
      const current = running.get(name);
      if (current) {
        const state = JSON.parse((await call('GET', `/meta-train/${current}`)).body) as { status: string };
        if (!ENDED.includes(state.status)) return sleep(250);
        if (state.status !== 'succeeded') fail(name, new Error(`job ${current} ended ${state.status}`));
        running.delete(name);
      }
      const reply = await call('POST', '/meta-train', body(counts[name]));
      if (check(name, reply, [202])) {
        const id = (JSON.parse(reply.body) as { id: string }).id;
        running.set(name, id);
        jobs.push(id);
        counts[name]++;
      }
      await sleep(250);
    };
    const fusedJob = (n: number) => ({ familyIds: [sine.id], algorithm: 'maml', model: { hidden: [16, 16] }, hyper: { iterations: 30, metaBatchSize: 4, shots: 5, queryShots: 5, evalEvery: 10, checkpointEvery: 10, seed: n } });
    const convJobBody = (n: number) => ({ familyIds: [digitsFamily.id], algorithm: CONV_ALGORITHMS[n % CONV_ALGORITHMS.length], model: CONV_MODEL, hyper: { ...CONV_HYPER, seed: n } });
    const tfjsMlpJob = (n: number) => ({ familyIds: [sine.id], algorithm: 'multitask', model: { hidden: [16, 16] }, hyper: { iterations: 30, metaBatchSize: 4, shots: 5, queryShots: 5, tasks: 50, evalEvery: 10, checkpointEvery: 10, seed: n } });

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
    const convAdapter = () => {
      let n = 0;
      return async () => {
        const task = convTasks[n++ % convTasks.length];
        const reply = await call('POST', `/tasks/${task.id}/adapt`, { support: task.support });
        if (check('conv adapt', reply, [200, 202])) counts.convAdapt++;
      };
    };
    const convPredictor = (index: number) => {
      let n = index;
      return async () => {
        const task = convTasks[n++ % convTasks.length];
        const reply = await call('POST', `/tasks/${task.id}/predict`, { x: task.query });
        if (check('conv predict', reply, [200])) counts.convPredict++;
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

    const scrape = async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return gauges(text, ['process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'fastadapt_tfjs_tensors', 'fastadapt_tfjs_bytes', 'fastadapt_bench_tfjs_tensors_created']);
    };
    // Live tensors while traffic runs, once a second: the tensors that live across awaits (a
    // meta-training job's variables and optimiser state between iterations) show here.
    let liveMax = 0;
    let liveScrapes = 0;
    const watcher = async () => {
      await sleep(1000);
      if (paused) return;
      const m = await scrape();
      liveMax = Math.max(liveMax, m.fastadapt_tfjs_tensors);
      liveScrapes++;
    };

    // Which requests allocate tensors, one of each at rest (nothing else running): the conv ones
    // should (tfjs on this backend), the MLP ones not (fused kernels, plain-JS serving).
    const createdNow = async () => (await scrape()).fastadapt_bench_tfjs_tensors_created;
    const tensorsPerRequest: Record<string, number> = {};
    for (const [name, request] of [
      ['convPredict', () => call('POST', `/tasks/${convTasks[0].id}/predict`, { x: convTasks[0].query })],
      ['convAdapt', () => call('POST', `/tasks/${convTasks[0].id}/adapt`, { support: convTasks[0].support })],
      ['adapt', () => call('POST', `/tasks/${taskIds[0]}/adapt`, { support: supportSet(new Rng(1)) })],
      ['predict', () => call('GET', `/predict?taskId=${taskIds[0]}&x=0.5`)],
    ] as const) {
      const before = await createdNow();
      const reply = await request();
      if (reply.status !== 200) throw new Error(`${name} probe: ${reply.status} ${reply.body.slice(0, 300)}`);
      tensorsPerRequest[name] = (await createdNow()) - before;
    }

    let createdBefore = 0;
    const sample = async (at: number) => {
      paused = true;
      await Promise.allSettled([...inFlight]);
      // At rest: every meta-training job of ours has ended, so no learner's tensors are alive.
      for (const [name, jobId] of running) {
        for (let waited = 0; ; waited += 250) {
          const state = JSON.parse((await call('GET', `/meta-train/${jobId}`)).body) as { status: string };
          if (ENDED.includes(state.status)) break;
          if (waited > 120_000) {
            fail(name, new Error(`job ${jobId} still ${state.status} after 120 s: sampled while it runs`));
            break;
          }
          await sleep(250);
        }
      }
      await sleep(300);
      const m = await scrape();
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
      const result = {
        minute: round(at / 60_000, 2),
        rssMiB: round(m.process_resident_memory_bytes / 2 ** 20, 1),
        heapUsedMiB: round(m.nodejs_heap_size_used_bytes / 2 ** 20, 1),
        tensors: m.fastadapt_tfjs_tensors,
        tensorBytes: m.fastadapt_tfjs_bytes,
        tensorsCreated: m.fastadapt_bench_tfjs_tensors_created - createdBefore,
        tensorsLiveMaxWhileRunning: liveMax,
        liveScrapes,
        redisUsedMemoryMiB: round(Number(/used_memory:(\d+)/.exec(info)?.[1]) / 2 ** 20, 2),
        redisKeys: keys,
        redisKeysByKind: byKind,
        postgresConnections: Number(rows[0].n),
        ...counts,
        errors,
      };
      createdBefore = m.fastadapt_bench_tfjs_tensors_created;
      liveMax = 0;
      liveScrapes = 0;
      paused = false;
      return result;
    };

    const started = Date.now();
    const samples = [await sample(0)];
    const loops = [
      loop(metaTrainer('metaTrainFused', fusedJob)),
      loop(metaTrainer('metaTrainConv', convJobBody)),
      loop(metaTrainer('metaTrainTfjsMlp', tfjsMlpJob)),
      ...Array.from({ length: Number(opts.adapters) }, (_, i) => loop(adapter(i))),
      ...Array.from({ length: Number(opts.predictors) }, (_, i) => loop(predictor(i))),
      loop(convAdapter()),
      ...Array.from({ length: Number(opts['conv-predictors']) }, (_, i) => loop(convPredictor(i))),
      loop(streamer),
      loop(watcher),
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
    const baseIndex = samples.length > 2 ? 1 : 0;
    const base = samples[baseIndex];
    const last = samples.at(-1)!;
    const later = samples.slice(baseIndex + 1);
    const out = {
      minutes,
      backend: ready.backend,
      tensorDrift: last.tensors - base.tensors,
      tensorDriftMaxAbs: Math.max(0, ...later.map((s) => Math.abs(s.tensors - base.tensors))),
      tensorsCreated: later.reduce((sum, s) => sum + s.tensorsCreated, 0),
      tensorsLiveMaxWhileRunning: Math.max(0, ...later.map((s) => s.tensorsLiveMaxWhileRunning)),
      tensorsPerRequest,
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
        topology: `one --role all process (API and worker pool): every engine path runs in the process whose /metrics is sampled; TFJS_BACKEND=${opts.backend}, the service reports backend ${ready.backend}, default engine ${ready.engine}`,
        tensorDrift:
          'tensors alive in the service process (tf.memory().numTensors via fastadapt_tfjs_tensors) at rest: traffic paused, no request in flight, every meta-training job of the run ended; tensorDrift is the last such sample minus the baseline, tensorDriftMaxAbs the largest distance of any later sample from the baseline (target 0 for both)',
        tensorsCreated:
          'tensors the service process created between samples (tfjs Engine.nextTensorId, bench/support/soak-service.ts): non-zero proves the sampled process ran paths that allocate tensors. Adaptations and conv predictions create and free theirs within one synchronous call, so only a meta-training job\'s tensors (alive across iterations) appear in tensorsLiveMaxWhileRunning (live count scraped once a second while traffic runs). tensorsPerRequest: tensors created by one request of each kind, sent alone at rest before the traffic starts',
        adapters: Number(opts.adapters),
        predictors: Number(opts.predictors),
        convPredictors: Number(opts['conv-predictors']),
        convTasks: convTasks.length,
        sampleSeconds: sampleMs / 1000,
        metaTraining: {
          metaTrainFused: 'MAML 1-16-16-1 on sinusoids, 30 iterations, metaBatchSize 4 (fused engine)',
          metaTrainConv: `conv body channels ${JSON.stringify(CONV_MODEL.channels)} on 14x14x1 digits, 5-way, ${CONV_ALGORITHMS.join(' and ')} in turn, ${JSON.stringify(CONV_HYPER)} (tfjs engine)`,
          metaTrainTfjsMlp: 'multitask 1-16-16-1 on sinusoids, 30 iterations, 50 pool tasks (tfjs engine: multitask has no fused version)',
          each: 'one job at a time per loop, the next started when it ends',
        },
        conv: 'tasks of one conv MAML meta-model (trained by the service at start-up), each a 5-way 2-shot held-out digits episode: one client re-adapting them in turn, conv predictors POSTing 10 images each to /tasks/:id/predict',
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
    console.log('tensors created by one request at rest:', tensorsPerRequest);
    console.log(`backend ${out.backend}: tensor drift ${out.tensorDrift} (max ${out.tensorDriftMaxAbs}), ${out.tensorsCreated} tensors created, up to ${out.tensorsLiveMaxWhileRunning} live while running; RSS growth ${out.rssGrowthMiB} MiB, Redis key growth ${out.redisKeyGrowth}, errors ${errors}`);
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
