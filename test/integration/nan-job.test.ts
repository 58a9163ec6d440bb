/**
 * A diverging configuration (outer-loop step size far too large) makes the meta-loss overflow part
 * way through training. Run through the real worker pool, the job ends `failed` with the engine's
 * reason, is not retried, and leaves no NaN or infinity anywhere: no meta-model, no checkpoint, and
 * only the finite metrics recorded before it diverged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { createDb, type Db } from '../../src/db/client.js';
import { CancelListener } from '../../src/jobs/cancel.js';
import { createHandlers } from '../../src/jobs/handlers/index.js';
import { closeQueues, createQueues, enqueue, type Queues } from '../../src/jobs/queues.js';
import { createRedis } from '../../src/jobs/redis.js';
import { startWorkers, type WorkerPool } from '../../src/jobs/worker.js';
import { initBackend } from '../../src/meta/index.js';
import { SHARED_REDIS_URL, TEST_DATABASE_URL, removePrefix, uniquePrefix } from './support/services.js';
import { finalJobEvent, seedJob, waitUntil } from './support/training-fixtures.js';

const logger = pino({ level: 'silent' });
const prefix = uniquePrefix('nan');
let db: Db;
let redis: Redis;
let queues: Queues;
let cancels: CancelListener;
let pool: WorkerPool;
let tenantId: string | undefined;

beforeAll(async () => {
  await initBackend('cpu');
  db = createDb(TEST_DATABASE_URL);
  redis = createRedis(SHARED_REDIS_URL, 'nan-test', logger);
  queues = createQueues({ connection: redis, prefix, logger });
  cancels = await CancelListener.start(redis, prefix, logger);
  pool = startWorkers(createHandlers({ db, logger, redis, queuePrefix: prefix, cancels, progressIntervalMs: 50 }), { connection: redis, prefix, logger });
});

afterAll(async () => {
  await pool.close();
  await cancels.close();
  await closeQueues(queues);
  if (tenantId) await db.prisma.tenant.deleteMany({ where: { id: tenantId } });
  await removePrefix(SHARED_REDIS_URL, prefix);
  await redis.quit();
  await db.close();
});

describe('a diverging meta-training job', () => {
  // metaLr 10 on the sinusoid family: Adam's second moment overflows float32 within a few
  // iterations. The engine refuses the step in the same iteration (nothing is updated) and stops.
  // (The params codec refuses non-finite values too, a second line the engine no longer lets a
  // divergence reach: see test/unit/meta/codec.test.ts.)
  it('ends `failed` with a readable reason, without retries, storing no NaN', async () => {
    const seeded = await seedJob(db, { tenantId, name: 'diverging', hyper: { iterations: 500, metaLr: 10, seed: 0, evalEvery: 1, checkpointEvery: 1 } });
    tenantId = seeded.tenantId;
    const { jobId } = seeded;
    const job = await enqueue(queues, 'meta-train', { jobId }, jobId);
    await waitUntil(async () => ['failed', 'completed'].includes(await job.getState()), 'the BullMQ job to end', 60_000);

    const row = await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: jobId } });
    expect(row.status).toBe('failed');
    expect(row.error).toMatch(/^iteration \d+: (meta-loss|optimiser state) is not finite/);
    expect(row.error).toMatch(/lower innerLr or metaLr, or set clipNorm/);
    expect(row.iteration).toBeLessThan(500);
    expect(row.finishedAt).toBeInstanceOf(Date);
    const bull = await queues['meta-train'].getJob(jobId);
    expect(await bull?.getState()).toBe('failed');
    expect(bull?.attemptsMade).toBe(1);
    expect(bull?.failedReason).toBe(row.error);
    expect(await db.prisma.metaModel.count({ where: { jobId } })).toBe(0);
    // A failed job keeps no checkpoint (the finite ones written before it diverged are dropped).
    expect(await db.prisma.checkpoint.count({ where: { jobId } })).toBe(0);

    // Postgres can hold NaN and Infinity in double precision columns: make sure none got there.
    const [{ nonFinite }] = await db.prisma.$queryRaw<{ nonFinite: number }[]>`
      SELECT count(*)::int AS "nonFinite" FROM job_metrics
       WHERE job_id = ${jobId}
         AND (train_loss IN ('NaN', 'Infinity', '-Infinity') OR val_loss IN ('NaN', 'Infinity', '-Infinity')
              OR val_accuracy IN ('NaN', 'Infinity', '-Infinity'))`;
    expect(nonFinite).toBe(0);
    const metrics = await db.prisma.jobMetric.findMany({ where: { jobId } });
    // It diverged part way: the evaluations before it are kept, none after the failure.
    expect(metrics.length).toBeGreaterThan(0);
    expect(metrics.every((m) => m.iteration <= row.iteration)).toBe(true);
    expect(JSON.stringify(row.lastMetrics ?? {})).not.toMatch(/NaN|Infinity|null/);

    expect(await finalJobEvent(redis, prefix, jobId)).toMatchObject({ type: 'status', data: { status: 'failed', error: row.error } });
  });
});
