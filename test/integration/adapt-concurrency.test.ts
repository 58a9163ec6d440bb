/**
 * Adaptations running at the same time: many adaptations of one task, in two worker pools (as two
 * processes would) and in one process at once, get consecutive head versions with no gap and no
 * duplicate; an adaptation is served while a long meta-training job runs in the same worker process.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { createDb, type Db } from '../../src/db/client.js';
import { AdaptedSubscriber, type AdaptedMessage } from '../../src/jobs/adapted.js';
import { runAdaptation } from '../../src/jobs/adapt-processor.js';
import { CancelListener, publishCancel } from '../../src/jobs/cancel.js';
import { createHandlers } from '../../src/jobs/handlers/index.js';
import { MetaModelCache } from '../../src/db/meta-model-cache.js';
import { closeQueues, createQueues, enqueue, enqueueMetaTrain, type Queues } from '../../src/jobs/queues.js';
import { createRedis } from '../../src/jobs/redis.js';
import { startWorkers, type WorkerPool } from '../../src/jobs/worker.js';
import { initBackend } from '../../src/meta/index.js';
import { SHARED_REDIS_URL, TEST_DATABASE_URL, removePrefix, uniquePrefix } from './support/services.js';
import { seedJob, seedTenant, waitUntil } from './support/training-fixtures.js';
import { createAdaptation, createTask, sinusoidSupport, storeMetaModel } from './support/adaptation-fixtures.js';

const logger = pino({ level: 'silent' });
const prefix = uniquePrefix('adapt-conc');
let db: Db;
let redis: Redis;
let queues: Queues;
let cancels: CancelListener;
let subscriber: AdaptedSubscriber;
const messages: AdaptedMessage[] = [];
const tenants: string[] = [];
const pools: WorkerPool[] = [];

beforeAll(async () => {
  await initBackend('cpu');
  db = createDb(TEST_DATABASE_URL);
  redis = createRedis(SHARED_REDIS_URL, 'adapt-conc-test', logger);
  queues = createQueues({ connection: redis, prefix, logger });
  cancels = await CancelListener.start(redis, prefix, logger);
  subscriber = await AdaptedSubscriber.start(redis, prefix, logger);
  subscriber.on((message) => messages.push(message));
});

afterEach(async () => {
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
  await db.prisma.task.deleteMany({ where: { tenantId: { in: tenants } } });
  await db.prisma.metaModel.deleteMany({ where: { tenantId: { in: tenants } } });
  await db.prisma.tenant.deleteMany({ where: { id: { in: tenants.splice(0) } } });
  messages.splice(0);
});

afterAll(async () => {
  await subscriber.close();
  await cancels.close();
  await closeQueues(queues);
  await removePrefix(SHARED_REDIS_URL, prefix);
  await redis.quit();
  await db.close();
});

/** A worker pool on the test prefix with its own meta-model cache, as a separate process would have. */
function pool(adaptConcurrency: number): WorkerPool {
  const started = startWorkers(createHandlers({ db, logger, redis, queuePrefix: prefix, cancels, metaModels: new MetaModelCache(), progressIntervalMs: 0 }), {
    connection: redis,
    prefix,
    logger,
    adaptConcurrency,
  });
  pools.push(started);
  return started;
}

async function taskWithModel() {
  const tenantId = await seedTenant(db, 'adapt-conc');
  tenants.push(tenantId);
  const metaModelId = await storeMetaModel(db, { tenantId });
  return { tenantId, taskId: await createTask(db, tenantId, metaModelId) };
}

async function expectConsecutive(taskId: string, adaptationIds: string[]) {
  const rows = await db.prisma.adaptation.findMany({ where: { id: { in: adaptationIds } } });
  expect(rows.every((row) => row.status === 'succeeded')).toBe(true);
  const versions = rows.map((row) => row.headVersion!).sort((a, b) => a - b);
  expect(versions).toEqual(adaptationIds.map((_, i) => i + 1));
  const heads = await db.prisma.adaptedHead.findMany({ where: { taskId }, select: { version: true }, orderBy: { version: 'asc' } });
  expect(heads.map((h) => h.version)).toEqual(versions);
  expect((await db.prisma.task.findUniqueOrThrow({ where: { id: taskId } })).headVersion).toBe(adaptationIds.length);
}

describe('concurrent adaptations', () => {
  it('of one task through two worker pools get consecutive versions, none missing or repeated', async () => {
    const { tenantId, taskId } = await taskWithModel();
    pool(4);
    pool(4);
    const ids = await Promise.all(Array.from({ length: 12 }, (_, i) => createAdaptation(db, tenantId, taskId, sinusoidSupport(10, 1 + i / 4, i / 6))));
    await Promise.all(ids.map((adaptationId) => enqueue(queues, 'adapt', { taskId, adaptationId }, adaptationId, { priority: 1 })));
    await waitUntil(async () => messages.filter((m) => m.taskId === taskId).length === ids.length, 'every adapted message', 30_000, 10);
    await expectConsecutive(taskId, ids);
    const announced = messages.filter((m) => m.taskId === taskId).map((m) => m.headVersion);
    expect(new Set(announced).size).toBe(ids.length);
  });

  it('of one task at once in one process get consecutive versions', async () => {
    const { tenantId, taskId } = await taskWithModel();
    const ids = await Promise.all(Array.from({ length: 10 }, (_, i) => createAdaptation(db, tenantId, taskId, sinusoidSupport(10, 2, i / 3))));
    const deps = { db, redis, prefix, logger, metaModels: new MetaModelCache() };
    const outcomes = await Promise.all(ids.map((id) => runAdaptation(deps, id)));
    expect(outcomes.every((o) => o.outcome === 'succeeded')).toBe(true);
    await expectConsecutive(taskId, ids);
    // One decode served all ten, though they all missed the cache at the same moment.
    expect(deps.metaModels.misses).toBe(1);
  });

  it('are served while a long meta-training job runs in the same worker process', async () => {
    const { tenantId, taskId } = await taskWithModel();
    const { jobId } = await seedJob(db, { tenantId, hyper: { iterations: 100_000 } });
    pool(4);
    await enqueueMetaTrain(queues, jobId);
    const iterationNow = async () => (await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: jobId } })).iteration;
    await waitUntil(async () => (await iterationNow()) >= 20, 'meta-training to be under way', 30_000, 10);

    const latencies: number[] = [];
    for (let i = 0; i < 3; i++) {
      const adaptationId = await createAdaptation(db, tenantId, taskId, sinusoidSupport(10, 3, i));
      const sent = performance.now();
      await enqueue(queues, 'adapt', { taskId, adaptationId }, adaptationId, { priority: 1 });
      await waitUntil(async () => messages.find((m) => m.adaptationId === adaptationId), 'the adapted message', 20_000, 2);
      latencies.push(performance.now() - sent);
    }
    const row = await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: jobId } });
    expect(row.status).toBe('running');
    // A meta-training iteration of this model takes a few ms: waiting for the whole job (minutes)
    // or a stuck event loop would show as seconds here. The bound is loose for a loaded machine.
    expect(Math.min(...latencies)).toBeLessThan(1_000);
    expect((await db.prisma.task.findUniqueOrThrow({ where: { id: taskId } })).headVersion).toBe(3);

    await publishCancel(redis, prefix, jobId);
    await waitUntil(async () => (await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: jobId } })).status === 'cancelled', 'the cancel', 20_000);
  });
});
