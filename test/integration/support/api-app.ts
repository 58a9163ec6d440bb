/** Test helpers for the resource routes: the real app on the test database and a queue prefix of its own. */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createDb, type Db } from '../../../src/db/client.js';
import { createApiKey } from '../../../src/db/repositories/api-keys.js';
import { buildApp, type App } from '../../../src/http/app.js';
import { CancelListener } from '../../../src/jobs/cancel.js';
import { createHandlers } from '../../../src/jobs/handlers/index.js';
import { closeQueues, createQueues, type Queues } from '../../../src/jobs/queues.js';
import { startWorkers, type HandlerTable } from '../../../src/jobs/worker.js';
import { SHARED_REDIS_URL, removePrefix, testConfig, uniquePrefix } from './services.js';

export interface TestApi {
  app: App;
  db: Db;
  redis: Redis;
  queues: Queues;
  prefix: string;
  redisUrl: string;
  close(): Promise<void>;
}

/**
 * Builds the app (not listening) against the test database (or `env.DATABASE_URL`: tests that start
 * worker processes use a private database, see private-database.ts) and `redisUrl` under a fresh prefix.
 */
export async function startApi(label: string, env: Record<string, string> = {}, redisUrl = SHARED_REDIS_URL): Promise<TestApi> {
  // A second API process of the same deployment passes the first one's QUEUE_PREFIX.
  const prefix = env.QUEUE_PREFIX ?? uniquePrefix(label);
  const config = testConfig({ QUEUE_PREFIX: prefix, REDIS_URL: redisUrl, ...env });
  const logger = pino({ level: 'silent' });
  const db = createDb(config.databaseUrl);
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queues = createQueues({ connection: redis, prefix, logger });
  const app = await buildApp({ config, db, queues, probes: { postgres: () => db.ping(), redis: () => redis.ping(), backend: () => 'cpu' } });
  await app.ready();
  return {
    app,
    db,
    redis,
    queues,
    prefix,
    redisUrl,
    async close() {
      await app.close();
      await closeQueues(queues);
      await redis.quit();
      await db.close();
      await removePrefix(redisUrl, prefix);
    },
  };
}

/** A new tenant with a key, and the header that uses it. */
export async function newTenant(db: Db) {
  const created = await createApiKey(db, `test-${randomUUID().slice(0, 8)}`);
  return { ...created, headers: { authorization: `Bearer ${created.key}` } };
}

/** A sinusoid generator family body. */
export const SINE = { name: 'sine', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid' } } as const;

/**
 * A worker pool in this process on the API's prefix, running the real handlers (`wrap` may wrap them,
 * e.g. to observe when each job runs).
 */
export async function startWorker(api: TestApi, options: { progressIntervalMs?: number; wrap?: (handlers: HandlerTable) => HandlerTable } = {}) {
  const logger = pino({ level: 'silent' });
  const redis = new Redis(api.redisUrl, { maxRetriesPerRequest: null });
  const cancels = await CancelListener.start(redis, api.prefix, logger);
  const handlers = createHandlers({ db: api.db, logger, redis, queuePrefix: api.prefix, cancels, progressIntervalMs: options.progressIntervalMs ?? 0, queues: api.queues, readaptDelayMs: api.app.config.readaptDelayMs });
  const pool = startWorkers(options.wrap ? options.wrap(handlers) : handlers, { connection: redis, prefix: api.prefix, logger, lockDuration: 5_000, stalledInterval: 2_000 });
  return {
    async close() {
      await pool.close();
      await cancels.close();
      await redis.quit();
    },
  };
}

/** Polls the job until `until` accepts it (or the time runs out). */
export async function waitForJob<T extends { status: string }>(
  api: TestApi,
  headers: Record<string, string>,
  id: string,
  until: (job: T) => boolean,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = (await api.app.inject({ method: 'GET', url: `/meta-train/${id}`, headers })).json() as T;
    if (until(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} did not get there in ${timeoutMs} ms; last seen ${JSON.stringify(job)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Hyper-parameters that meta-train in about a second on one core. */
export const QUICK = { iterations: 40, metaBatchSize: 4, shots: 5, queryShots: 5, evalEvery: 10, checkpointEvery: 10, seed: 3 };
