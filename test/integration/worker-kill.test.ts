/**
 * Workers as real processes, on a private redis-server and a private database: a worker SIGKILLed
 * mid-run is detected by BullMQ's stalled-job check in another worker, which resumes the job from
 * its last checkpoint to the full iteration count; a worker stopped with SIGTERM checkpoints, hands
 * the job back and exits 0, and the next worker finishes it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createDb, type Db } from '../../src/db/client.js';
import { closeQueues, createQueues, enqueue, type Queues } from '../../src/jobs/queues.js';
import { createRedis } from '../../src/jobs/redis.js';
import { PrivateRedis, freePort, uniquePrefix } from './support/services.js';
import { createPrivateDatabase, type PrivateDatabase } from './support/private-database.js';
import { seedJob, waitUntil } from './support/training-fixtures.js';
import { WorkerProcess } from './support/worker-process.js';

const logger = pino({ level: 'silent' });
const prefix = uniquePrefix('kill');
let redisServer: PrivateRedis;
let database: PrivateDatabase;
let db: Db;
let queues: Queues;
let redis: ReturnType<typeof createRedis>;
const workers: WorkerProcess[] = [];

/** ~1500 iterations take several seconds on a busy 2-core machine: long enough to kill mid-run. */
const HYPER = { iterations: 1500, checkpointEvery: 100, evalEvery: 250 };

beforeAll(async () => {
  redisServer = new PrivateRedis(await freePort());
  await redisServer.start();
  database = await createPrivateDatabase('kill');
  db = createDb(database.url);
  redis = createRedis(redisServer.url, 'kill-test', logger);
  queues = createQueues({ connection: redis, prefix, logger });
});

afterEach(async () => {
  for (const worker of workers.splice(0)) {
    worker.kill('SIGKILL');
    await worker.exited;
  }
});

afterAll(async () => {
  await closeQueues(queues);
  await redis.quit();
  await db.close();
  await redisServer.stop();
  await database.drop();
});

function startWorker(): WorkerProcess {
  const worker = new WorkerProcess({
    DATABASE_URL: database.url,
    REDIS_URL: redisServer.url,
    QUEUE_PREFIX: prefix,
    LOCK_DURATION_MS: '2000',
    STALLED_INTERVAL_MS: '1000',
    // Recovery here must come from BullMQ's stalled-job check, not the reconciler.
    RECONCILE_INTERVAL_MS: '600000',
    PROGRESS_INTERVAL_MS: '100',
  });
  workers.push(worker);
  return worker;
}

const jobRow = (jobId: string) => db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: jobId } });
const checkpointOf = (jobId: string) => db.prisma.checkpoint.findFirst({ where: { jobId }, select: { iteration: true } });

async function expectFinished(jobId: string, timeoutMs: number) {
  const row = await waitUntil(async () => {
    const job = await jobRow(jobId);
    return job.status === 'running' || job.status === 'queued' ? undefined : job;
  }, `job ${jobId} to end`, timeoutMs, 200);
  expect(row).toMatchObject({ status: 'succeeded', iteration: HYPER.iterations, error: null });
  const metrics = await db.prisma.jobMetric.findMany({ where: { jobId }, orderBy: { iteration: 'asc' } });
  expect(metrics.map((m) => m.iteration)).toEqual([250, 500, 750, 1000, 1250, 1500]);
  expect(await db.prisma.metaModel.findUnique({ where: { jobId } })).toMatchObject({ version: 1 });
  expect(await db.prisma.checkpoint.count({ where: { jobId } })).toBe(0);
  return row;
}

describe('worker processes', () => {
  it('a worker killed with SIGKILL mid-run: another worker detects the stalled job and resumes it from the checkpoint', async () => {
    const { jobId } = await seedJob(db, { name: 'killed', hyper: HYPER });
    const first = startWorker();
    await first.waitForLog('started');
    await enqueue(queues, 'meta-train', { jobId }, jobId);
    const checkpoint = await waitUntil(() => checkpointOf(jobId).then((c) => c ?? undefined), 'a checkpoint', 60_000, 20);
    first.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    const atKill = await jobRow(jobId);
    expect(atKill).toMatchObject({ status: 'running', attempts: 1 });
    expect(atKill.iteration).toBeLessThan(HYPER.iterations);
    expect((await queues['meta-train'].getJob(jobId))?.finishedOn).toBeUndefined();

    const second = startWorker();
    const row = await expectFinished(jobId, 120_000);
    expect(row.attempts).toBe(2);
    expect(second.logs('job stalled (its worker stopped renewing the lock): back in the queue').map((l) => l.jobId)).toContain(jobId);
    const resumed = second.logs('meta-train run started').find((l) => l.jobId === jobId);
    expect(resumed?.resumeFrom).toBeGreaterThanOrEqual(checkpoint.iteration);
    expect(first.logs('meta-train run succeeded')).toEqual([]);
  });

  it('a worker stopped with SIGTERM checkpoints, hands the job back and exits 0; the next worker finishes it', async () => {
    const { jobId } = await seedJob(db, { name: 'handed-back', hyper: HYPER });
    const first = startWorker();
    await first.waitForLog('started');
    await enqueue(queues, 'meta-train', { jobId }, jobId);
    await waitUntil(() => checkpointOf(jobId).then((c) => c ?? undefined), 'a checkpoint', 60_000, 20);
    first.child.kill('SIGTERM');
    expect((await first.exited).code).toBe(0);
    const handedBack = first.logs('meta-train run handed back')[0];
    expect(handedBack).toMatchObject({ jobId });
    expect(first.logs('job handed back to the queue for shutdown').map((l) => l.jobId)).toContain(jobId);
    expect(await jobRow(jobId)).toMatchObject({ status: 'running', attempts: 1 });
    expect(await (await queues['meta-train'].getJob(jobId))?.getState()).toBe('waiting');
    // The last periodic checkpoint, or (when the engine hands over its state at the abort) where it stopped.
    const saved = await checkpointOf(jobId);
    expect(saved?.iteration).toBeGreaterThanOrEqual(HYPER.checkpointEvery);
    expect([saved?.iteration, null]).toContain(handedBack.checkpointed);

    const second = startWorker();
    const row = await expectFinished(jobId, 120_000);
    expect(row.attempts).toBe(2);
    expect(second.logs('meta-train run started').find((l) => l.jobId === jobId)?.resumeFrom).toBe(saved?.iteration);
  });
});
