/**
 * Redis goes away under a running API (a private redis-server, killed, so its data is lost too):
 * /readyz says 503 naming redis; routes that need Redis (start a job, cancel one) answer 503
 * problem+json with Retry-After at once and write nothing; routes that only read Postgres keep
 * working (the rate limiter lets them through). When Redis is back, the same API enqueues again, and
 * the job that was queued before the outage (lost with Redis' data) is re-enqueued from Postgres by
 * the reconciler and runs to the end on a worker.
 * (SIGTERM on a worker mid-training is worker-kill.test.ts: checkpoint, hand back, exit 0, finished
 * by the next worker.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createDb, type Db } from '../../src/db/client.js';
import { createApiKey } from '../../src/db/repositories/api-keys.js';
import { buildApp, type App } from '../../src/http/app.js';
import { CancelListener } from '../../src/jobs/cancel.js';
import { createHandlers } from '../../src/jobs/handlers/index.js';
import { closeQueues, createQueues, type Queues } from '../../src/jobs/queues.js';
import { Reconciler } from '../../src/jobs/reconciler.js';
import { createProbeRedis, createRedis } from '../../src/jobs/redis.js';
import { startWorkers } from '../../src/jobs/worker.js';
import { QUICK, SINE } from './support/api-app.js';
import { createPrivateDatabase, type PrivateDatabase } from './support/private-database.js';
import { PrivateRedis, freePort, testConfig, uniquePrefix } from './support/services.js';

const logger = pino({ level: 'silent' });
const prefix = uniquePrefix('faults-redis');
let redisServer: PrivateRedis;
let database: PrivateDatabase;
let db: Db;
let redis: ReturnType<typeof createRedis>;
let probe: ReturnType<typeof createProbeRedis>;
let queues: Queues;
let app: App;
let headers: Record<string, string>;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  redisServer = new PrivateRedis(await freePort());
  await redisServer.start();
  database = await createPrivateDatabase('faults_redis');
  db = createDb(database.url);
  // The connections main.ts gives the API: queues wait through reconnects, the probe fails fast.
  redis = createRedis(redisServer.url, 'api', logger);
  probe = createProbeRedis(redisServer.url, logger);
  queues = createQueues({ connection: redis, prefix, logger });
  app = await buildApp({
    config: testConfig({ DATABASE_URL: database.url, REDIS_URL: redisServer.url, QUEUE_PREFIX: prefix, RATE_LIMIT_MAX: '1000' }),
    db,
    queues,
    probes: { postgres: () => db.ping(), redis: () => probe.ping(), backend: () => 'cpu' },
  });
  await app.ready();
  headers = { authorization: `Bearer ${(await createApiKey(db, 'faults-redis')).key}` };
});

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await app?.close();
  await closeQueues(queues);
  redis?.disconnect();
  probe?.disconnect();
  await db?.close();
  await redisServer?.stop();
  await database?.drop();
});

/** A worker process's job side, as main.ts starts it: handlers, pool and reconciler. */
async function startWorkerSide() {
  const connection = createRedis(redisServer.url, 'worker', logger);
  const workerQueues = createQueues({ connection, prefix, logger });
  const cancels = await CancelListener.start(connection, prefix, logger);
  const handlers = createHandlers({ db, logger, redis: connection, queuePrefix: prefix, cancels, progressIntervalMs: 0 });
  const pool = startWorkers(handlers, { connection, prefix, logger, lockDuration: 5_000, stalledInterval: 2_000 });
  const reconciler = new Reconciler({ db, queues: workerQueues, redis: connection, prefix, logger, intervalMs: 500 }).start();
  closers.push(async () => {
    await reconciler.stop();
    await pool.close();
    await cancels.close();
    await closeQueues(workerQueues);
    connection.disconnect();
  });
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string, timeoutMs = 45_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms; last ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const getJob = async (id: string) => (await app.inject({ method: 'GET', url: `/meta-train/${id}`, headers })).json() as { id: string; status: string; progress: { iteration: number } };

describe('Redis stopped and started again', () => {
  it('answers 503 where Redis is needed, keeps serving reads, and runs the queued job once it is back', async () => {
    const familyId = ((await app.inject({ method: 'POST', url: '/task-families', headers, payload: SINE })).json() as { id: string }).id;
    const body = { familyIds: [familyId], algorithm: 'fomaml', hyper: QUICK };
    const queued = await app.inject({ method: 'POST', url: '/meta-train', headers, payload: body });
    expect(queued.statusCode).toBe(202);
    const jobId = (queued.json() as { id: string }).id;
    expect(await queues['meta-train'].getJob(jobId)).toBeTruthy();

    await redisServer.stop();
    await until(() => Promise.resolve(redis.status), (status) => status !== 'ready', 'the API to notice Redis is gone', 5_000);

    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toMatchObject({ checks: { postgres: { status: 'up' }, redis: { status: 'down' } } });

    for (const request of [
      { method: 'POST' as const, url: '/meta-train', payload: body },
      { method: 'POST' as const, url: `/meta-train/${jobId}/cancel` },
    ]) {
      const started = performance.now();
      const response = await app.inject({ ...request, headers });
      expect(response.statusCode, `${request.url}: ${response.body}`).toBe(503);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.headers['retry-after']).toBe('5');
      expect(response.json()).toMatchObject({ status: 503, dependency: 'redis' });
      expect(performance.now() - started).toBeLessThan(3_000);
    }
    // Nothing was written: still one job, still queued (the cancel did not half-happen).
    expect(await db.prisma.metaTrainJob.count()).toBe(1);
    expect((await getJob(jobId)).status).toBe('queued');
    // Reads need only Postgres.
    expect((await app.inject({ method: 'GET', url: '/task-families', headers })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/meta-train', headers })).statusCode).toBe(200);

    // Redis returns empty (the job's BullMQ entry died with it); a worker comes up.
    await redisServer.start();
    await until(async () => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode, (s) => s === 200, 'ready again', 15_000);
    await startWorkerSide();

    const first = await until(() => getJob(jobId), (job) => job.status !== 'queued' && job.status !== 'running', 'the queued job to end');
    expect(first).toMatchObject({ status: 'succeeded', progress: { iteration: QUICK.iterations } });

    const again = await until(
      () => app.inject({ method: 'POST', url: '/meta-train', headers, payload: { ...body, hyper: { ...QUICK, seed: 4 } } }),
      (response) => response.statusCode !== 503,
      'the API to enqueue again',
      10_000,
    );
    expect(again.statusCode).toBe(202);
    const second = await until(() => getJob((again.json() as { id: string }).id), (job) => job.status === 'succeeded' || job.status === 'failed', 'the new job to end');
    expect(second.status).toBe('succeeded');
  });
});
