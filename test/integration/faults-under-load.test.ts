/**
 * Faults under load: an API process and a worker process on a private redis-server and a private
 * Postgres, with clients adapting and predicting all the while. Redis is killed (its data lost with
 * it) and started again, then Postgres is stopped and started again. During each outage clients see
 * 503 problem+json, never a 500 and never a request past its bound; after it, full service again
 * without restarting anything; every adaptation row reaches an end (the reconciler re-enqueues those
 * whose BullMQ job was lost) and a meta-training job running across the outage still succeeds.
 * (The same faults without load, request by request: faults-redis.test.ts, faults-postgres.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../../src/db/client.js';
import { createApiKey } from '../../src/db/repositories/api-keys.js';
import { QUICK, SINE } from './support/api-app.js';
import { sinusoidSupport, storeMetaModel } from './support/adaptation-fixtures.js';
import { adaptToEnd, call, startApiProcess, type Answer } from './support/http-client.js';
import { PrivatePostgres } from './support/private-postgres.js';
import { PrivateRedis, freePort, uniquePrefix } from './support/services.js';
import { waitUntil } from './support/training-fixtures.js';
import { WorkerProcess } from './support/worker-process.js';

/** No request may take longer than this, outage or not (ADAPT_WAIT_MS below is 3 s). */
const BOUND_MS = 15_000;
/** Meta-training iterations: a few seconds unloaded, so the job is still running when the fault comes. */
const ITERATIONS = 10_000;

const prefix = uniquePrefix('faults-load');
let redisServer: PrivateRedis;
let postgres: PrivatePostgres;
let db: Db;
let api: string;
const processes: WorkerProcess[] = [];
let headers: Record<string, string>;
let familyId: string;
let taskId: string;

beforeAll(async () => {
  redisServer = new PrivateRedis(await freePort());
  postgres = new PrivatePostgres(await freePort());
  await Promise.all([redisServer.start(), postgres.start()]);
  postgres.migrate();
  db = createDb(postgres.url);
  const env = {
    DATABASE_URL: postgres.url,
    REDIS_URL: redisServer.url,
    QUEUE_PREFIX: prefix,
    // The limiter counts in Redis: kept on (it must let requests through while Redis is down), never reached.
    RATE_LIMIT_MAX: '1000000',
    ADAPT_WAIT_MS: '3000',
    // Adaptations and jobs Redis lost are re-enqueued within a few seconds of its return.
    RECONCILE_INTERVAL_MS: '2000',
    LOCK_DURATION_MS: '2000',
    STALLED_INTERVAL_MS: '1000',
    PROGRESS_INTERVAL_MS: '100',
  };
  const started = await startApiProcess(env);
  processes.push(started.process);
  api = started.base;
  const worker = new WorkerProcess(env);
  processes.push(worker);
  await worker.waitForLog('started', () => true, 90_000);

  const key = await createApiKey(db, 'faults-load');
  headers = { authorization: `Bearer ${key.key}` };
  const metaModelId = await storeMetaModel(db, { tenantId: key.tenantId });
  const task = await call(api, 'POST', '/tasks', { headers, body: { metaModelId } });
  expect(task.status).toBe(201);
  taskId = (task.body as { id: string }).id;
  const family = await call(api, 'POST', '/task-families', { headers, body: SINE });
  expect(family.status).toBe(201);
  familyId = (family.body as { id: string }).id;
  // A head to predict with from the start.
  await adaptToEnd([api], headers, taskId, sinusoidSupport(10, 2, 0));
}, 180_000);

afterAll(async () => {
  for (const child of processes) {
    child.kill('SIGKILL');
    await child.exited;
  }
  await db?.close();
  await redisServer?.stop();
  await postgres?.destroy();
});

interface Seen extends Answer {
  route: 'adapt' | 'predict';
  at: number;
}

/** Clients adapting (one POST each, not retried: the test wants to see every answer) and predicting until stop(). */
function load(clients: number) {
  const seen: Seen[] = [];
  let running = true;
  const loops = Array.from({ length: clients }, async (_, c) => {
    for (let i = 0; running; i++) {
      const adapted = await call(api, 'POST', `/tasks/${taskId}/adapt`, { headers, body: { support: sinusoidSupport(10, 1 + (i % 7) / 3, c) }, timeoutMs: BOUND_MS });
      seen.push({ ...adapted, route: 'adapt', at: Date.now() });
      const predicted = await call(api, 'GET', `/predict?taskId=${taskId}&x=0.5`, { headers, timeoutMs: BOUND_MS });
      seen.push({ ...predicted, route: 'predict', at: Date.now() });
      // A refused request is retried after a pause, as Retry-After asks (shortened here).
      if (adapted.status === 503 || predicted.status === 503) await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });
  const count = (from: number, route: Seen['route'], status: number) => seen.filter((s) => s.at >= from && s.route === route && s.status === status).length;
  return { seen, count, stop: async () => { running = false; await Promise.all(loops); } };
}

/** A long-enough meta-training job, running when the fault comes. */
async function runningJob(): Promise<string> {
  const posted = await call(api, 'POST', '/meta-train', {
    headers,
    body: { familyIds: [familyId], algorithm: 'fomaml', hyper: { ...QUICK, iterations: ITERATIONS, checkpointEvery: 100, evalEvery: 500 } },
  });
  expect(posted.status, JSON.stringify(posted.body)).toBe(202);
  const jobId = (posted.body as { id: string }).id;
  await waitUntil(async () => (await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: jobId } })).iteration >= 50, 'the job to make progress', 60_000, 50);
  return jobId;
}

/** Waits for load to flow, takes the dependency away until clients are refused, brings it back and waits for full service. */
async function outage(traffic: ReturnType<typeof load>, jobId: string, stop: () => Promise<void>, start: () => Promise<void>) {
  await waitUntil(async () => traffic.count(0, 'adapt', 200) >= 4, 'adaptations to flow', 60_000, 20);

  // The job is mid-run when the fault comes (it has thousands of iterations left).
  expect((await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: jobId } })).status).toBe('running');
  const down = Date.now();
  await stop();
  try {
    await waitUntil(async () => traffic.count(down, 'adapt', 503) >= 4, 'clients to be refused during the outage', 30_000, 20);
  } catch (error) {
    const since = traffic.seen.filter((s) => s.at >= down).map((s) => `${s.route} ${s.status} ${Math.round(s.ms)}ms ${s.error ?? ''}`);
    throw new Error(`${(error as Error).message}; answers since the outage began: ${JSON.stringify(since.slice(0, 20))}`);
  } finally {
    // Whatever happened, the next test finds the dependency up.
    await start();
  }
  const up = Date.now();
  // Full service again: the API is ready and adaptations and predictions succeed, with no restart.
  await waitUntil(async () => (await call(api, 'GET', '/readyz')).status === 200, 'ready again', 30_000, 100);
  await waitUntil(async () => traffic.count(up, 'adapt', 200) >= 4 && traffic.count(up, 'predict', 200) >= 4, 'adaptations and predictions to succeed again', 60_000, 50);
  const recovered = Date.now();
  await waitUntil(async () => traffic.count(recovered, 'adapt', 200) >= 4, 'more adaptations after recovery', 60_000, 50);

  await traffic.stop();
  return { seen: traffic.seen, recovered };
}

/**
 * Runs load across `outage` (stop the dependency, wait until clients were refused, start it again),
 * then checks what clients saw and that nothing was left behind.
 */
async function underLoad(dependency: 'redis' | 'postgres', stop: () => Promise<void>, start: () => Promise<void>) {
  const jobId = await runningJob();
  const traffic = load(4);
  const { seen, recovered } = await outage(traffic, jobId, stop, start).finally(() => traffic.stop());
  // Never a 500, a dropped connection or a request past the bound; every refusal is a 503 problem+json.
  for (const s of seen) expect([200, 202, 503], `${s.route}: ${s.status} ${s.error ?? JSON.stringify(s.body)}`).toContain(s.status);
  const refused = seen.filter((s) => s.status === 503);
  expect(refused.length).toBeGreaterThan(0);
  for (const s of refused) {
    expect(s.contentType).toMatch(/^application\/problem\+json/);
    expect(s.body).toMatchObject({ status: 503 });
  }
  expect(refused.some((s) => (s.body as { dependency?: string }).dependency === dependency), JSON.stringify(refused.slice(0, 3).map((s) => s.body))).toBe(true);
  // After recovery nothing is refused any more.
  expect(seen.filter((s) => s.at >= recovered && s.status !== 200 && s.status !== 202)).toEqual([]);

  // No adaptation stuck: every row ends (those whose BullMQ job died with Redis are re-enqueued).
  await waitUntil(async () => (await db.prisma.adaptation.count({ where: { status: { in: ['queued', 'running'] } } })) === 0, 'every adaptation to end', 90_000, 200);
  const heads = await db.prisma.adaptedHead.findMany({ where: { taskId }, select: { version: true }, orderBy: { version: 'asc' } });
  expect(heads.map((h) => h.version)).toEqual(heads.map((_, i) => i + 1));
  expect(await db.prisma.adaptation.count({ where: { taskId, status: 'succeeded' } })).toBe(heads.length);
  // Every adaptation a client was told succeeded (200) is stored as succeeded.
  const answered = seen.filter((s) => s.route === 'adapt' && s.status === 200).map((s) => (s.body as { adaptationId: string }).adaptationId);
  expect(await db.prisma.adaptation.count({ where: { id: { in: answered }, status: 'succeeded' } })).toBe(answered.length);

  // No job lost: the one running across the outage ends succeeded.
  const job = await waitUntil(async () => {
    const row = await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: jobId } });
    return row.status === 'queued' || row.status === 'running' ? undefined : row;
  }, 'the meta-training job to end', 150_000, 200);
  expect(job).toMatchObject({ status: 'succeeded', iteration: ITERATIONS });
}

describe('faults under load', () => {
  it('Redis killed and started again: 503 problem+json during the outage, then full service, nothing stuck or lost', async () => {
    await underLoad('redis', () => redisServer.stop(), () => redisServer.start());
  }, 300_000);

  it('Postgres stopped and started again: 503 problem+json during the outage, then full service, nothing stuck or lost', async () => {
    await underLoad('postgres', () => postgres.stop(), () => postgres.start());
  }, 300_000);
});
