/**
 * Cancel reaches a run in another process: the job runs in a worker process (private redis-server
 * and database); this process publishes the cancel on Redis and the run ends `cancelled` promptly.
 * With the message lost (only the row says so) the worker notices at its next progress write.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createDb, type Db } from '../../src/db/client.js';
import { publishCancel } from '../../src/jobs/cancel.js';
import { closeQueues, createQueues, enqueue, type Queues } from '../../src/jobs/queues.js';
import { createRedis } from '../../src/jobs/redis.js';
import { PrivateRedis, freePort, uniquePrefix } from './support/services.js';
import { createPrivateDatabase, type PrivateDatabase } from './support/private-database.js';
import { finalJobEvent, seedJob, waitUntil } from './support/training-fixtures.js';
import { WorkerProcess } from './support/worker-process.js';

const logger = pino({ level: 'silent' });
const prefix = uniquePrefix('cancel');
let redisServer: PrivateRedis;
let database: PrivateDatabase;
let db: Db;
let redis: ReturnType<typeof createRedis>;
let queues: Queues;
let worker: WorkerProcess;

beforeAll(async () => {
  redisServer = new PrivateRedis(await freePort());
  await redisServer.start();
  database = await createPrivateDatabase('cancel');
  db = createDb(database.url);
  redis = createRedis(redisServer.url, 'cancel-test', logger);
  queues = createQueues({ connection: redis, prefix, logger });
  worker = new WorkerProcess({ DATABASE_URL: database.url, REDIS_URL: redisServer.url, QUEUE_PREFIX: prefix, PROGRESS_INTERVAL_MS: '100' });
  await worker.waitForLog('started');
});

afterEach(async () => {
  await db.prisma.metaTrainJob.updateMany({ where: { status: { in: ['queued', 'running'] } }, data: { cancelRequestedAt: new Date() } });
});

afterAll(async () => {
  worker.kill('SIGKILL');
  await worker.exited;
  await closeQueues(queues);
  await redis.quit();
  await db.close();
  await redisServer.stop();
  await database.drop();
});

const jobRow = (jobId: string) => db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: jobId } });

/** Starts a job too long to finish by itself, and resolves once it has made some progress. */
async function runningJob(name: string) {
  const { jobId } = await seedJob(db, { name, hyper: { iterations: 1_000_000, checkpointEvery: 1_000, evalEvery: 1_000 } });
  await enqueue(queues, 'meta-train', { jobId }, jobId);
  await waitUntil(async () => (await jobRow(jobId)).iteration >= 20, `${name} to make progress`, 60_000, 20);
  return jobId;
}

async function ended(jobId: string) {
  return waitUntil(async () => {
    const row = await jobRow(jobId);
    return row.status === 'running' ? undefined : row;
  }, `job ${jobId} to end`, 30_000, 10);
}

describe('cancel across processes', () => {
  it('a cancel published from this process stops the run in the worker process', async () => {
    const jobId = await runningJob('pubsub');
    const sentAt = Date.now();
    // Only the message: the row is left as it is, so the pub/sub path alone must stop the run.
    expect(await publishCancel(redis, prefix, jobId)).toBe(1);
    const row = await ended(jobId);
    const tookMs = Date.now() - sentAt;
    expect(row).toMatchObject({ status: 'cancelled', cancelRequestedAt: null });
    expect(row.iteration).toBeLessThan(1_000_000);
    // The generator checks the signal before every iteration (a few ms each): well under a second.
    expect(tookMs).toBeLessThan(5_000);
    expect(await worker.waitForLog('cancel request received', (l) => l.jobId === jobId)).toMatchObject({ running: 1 });
    expect(await finalJobEvent(redis, prefix, jobId)).toMatchObject({ type: 'status', data: { status: 'cancelled', iteration: row.iteration } });
  });

  it('a cancel whose message was lost is noticed from the row at the next progress write', async () => {
    const jobId = await runningJob('row-only');
    await db.prisma.metaTrainJob.update({ where: { id: jobId }, data: { cancelRequestedAt: new Date() } });
    const row = await ended(jobId);
    expect(row.status).toBe('cancelled');
    expect(worker.logs('cancel request received').filter((l) => l.jobId === jobId)).toEqual([]);
  });
});
