/**
 * Postgres is the truth: Redis wiped (FLUSHALL on a private redis-server) while a worker process is
 * mid-run loses no job, because the reconciler re-enqueues from Postgres what is queued or running.
 * The reconciler's own rules are checked directly against the same private services.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { UnrecoverableError, Worker } from 'bullmq';
import { pino } from 'pino';
import { createDb, type Db } from '../../src/db/client.js';
import { claimEvaluation, createEvaluation } from '../../src/db/repositories/evaluations.js';
import { startAttempt } from '../../src/db/repositories/training.js';
import { closeQueues, createQueues, enqueue, type Queues } from '../../src/jobs/queues.js';
import { Reconciler } from '../../src/jobs/reconciler.js';
import { createRedis } from '../../src/jobs/redis.js';
import { PrivateRedis, freePort, uniquePrefix } from './support/services.js';
import { createPrivateDatabase, type PrivateDatabase } from './support/private-database.js';
import { seedJob, seedTenant, waitUntil } from './support/training-fixtures.js';
import { createAdaptation, createTask, sinusoidSupport, storeMetaModel } from './support/adaptation-fixtures.js';
import { WorkerProcess } from './support/worker-process.js';

const logger = pino({ level: 'silent' });
let redisServer: PrivateRedis;
let database: PrivateDatabase;
let db: Db;
let redis: ReturnType<typeof createRedis>;
const opened: Queues[] = [];
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  redisServer = new PrivateRedis(await freePort());
  await redisServer.start();
  database = await createPrivateDatabase('flush');
  db = createDb(database.url);
  redis = createRedis(redisServer.url, 'flush-test', logger);
});

afterEach(async () => {
  for (const worker of workers.splice(0)) {
    worker.kill('SIGKILL');
    await worker.exited;
  }
  for (const queues of opened.splice(0)) await closeQueues(queues);
  // Unfinished jobs of one test must not be picked up by the next one's reconciler.
  await db.prisma.metaTrainJob.updateMany({ where: { status: { in: ['queued', 'running'] } }, data: { status: 'cancelled' } });
  await db.prisma.adaptation.updateMany({ where: { status: { in: ['queued', 'running'] } }, data: { status: 'failed' } });
  await db.prisma.evaluation.updateMany({ where: { status: { in: ['queued', 'running'] } }, data: { status: 'cancelled' } });
  await redis.flushall();
});

afterAll(async () => {
  await redis.quit();
  await db.close();
  await redisServer.stop();
  await database.drop();
});

function queuesFor(prefix: string): Queues {
  const queues = createQueues({ connection: redis, prefix, logger });
  opened.push(queues);
  return queues;
}

const jobRow = (jobId: string) => db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: jobId } });
const age = (jobId: string, ms: number) => db.prisma.metaTrainJob.update({ where: { id: jobId }, data: { updatedAt: new Date(Date.now() - ms) } });

describe('Redis wiped mid-run', () => {
  it('loses no job: the running one finishes, the queued one is re-enqueued from Postgres and finishes', async () => {
    const prefix = uniquePrefix('flush');
    const queues = queuesFor(prefix);
    const running = await seedJob(db, { name: 'running', hyper: { iterations: 1500, checkpointEvery: 100, evalEvery: 500 } });
    const waiting = await seedJob(db, { name: 'waiting', hyper: { iterations: 100, evalEvery: 50, checkpointEvery: 50 } });
    const worker = new WorkerProcess({
      DATABASE_URL: database.url,
      REDIS_URL: redisServer.url,
      QUEUE_PREFIX: prefix,
      LOCK_DURATION_MS: '2000',
      STALLED_INTERVAL_MS: '1000',
      RECONCILE_INTERVAL_MS: '1000',
      PROGRESS_INTERVAL_MS: '100',
    });
    workers.push(worker);
    await worker.waitForLog('started');
    await enqueue(queues, 'meta-train', { jobId: running.jobId }, running.jobId);
    await enqueue(queues, 'meta-train', { jobId: waiting.jobId }, waiting.jobId);
    await waitUntil(() => db.prisma.checkpoint.findFirst({ where: { jobId: running.jobId } }).then((c) => c ?? undefined), 'a checkpoint', 60_000, 20);
    // One worker slot: the second job is still only in Redis's wait list.
    expect(await jobRow(waiting.jobId)).toMatchObject({ status: 'queued', attempts: 0 });

    expect(await jobRow(running.jobId)).toMatchObject({ status: 'running' });
    await redis.flushall();
    expect(await redis.dbsize()).toBe(0);

    for (const { jobId } of [running, waiting]) {
      const row = await waitUntil(async () => {
        const job = await jobRow(jobId);
        return job.status === 'running' || job.status === 'queued' ? undefined : job;
      }, `job ${jobId} to end`, 120_000, 200);
      expect(row).toMatchObject({ status: 'succeeded', iteration: row.iterations, error: null });
      expect(await db.prisma.metaModel.count({ where: { jobId } })).toBe(1);
    }
    const requeued = worker.logs('reconciler re-enqueued jobs Redis had lost').flatMap((l) => (l.requeued as { id: string; found: string }[]) ?? []);
    expect(requeued).toContainEqual({ id: waiting.jobId, found: 'missing' });
    // Never two runs of one job writing: the running job kept its one run.
    expect((await jobRow(running.jobId)).attempts).toBe(1);
  });
});

describe('reconciler', () => {
  it('re-enqueues unfinished jobs missing from BullMQ or finished there, leaves live and recently written ones alone', async () => {
    const prefix = uniquePrefix('reconcile');
    const queues = queuesFor(prefix);
    const reconciler = new Reconciler({ db, queues, redis, prefix, logger, intervalMs: 1_000 });
    const missing = await seedJob(db, { name: 'missing' });
    const waiting = await seedJob(db, { name: 'waiting' });
    const completed = await seedJob(db, { name: 'completed' });
    const fresh = await seedJob(db, { name: 'fresh' });
    const ended = await seedJob(db, { name: 'ended' });
    await startAttempt(db, completed.jobId);
    await db.prisma.metaTrainJob.update({ where: { id: ended.jobId }, data: { status: 'succeeded' } });
    for (const { jobId } of [missing, waiting, completed, ended]) await age(jobId, 5_000);
    // A BullMQ job that completed while its row still says running (e.g. Postgres was away then).
    const stale = await enqueue(queues, 'meta-train', { jobId: completed.jobId }, completed.jobId);
    const manual = new Worker('meta-train', null, { connection: redis, prefix });
    const token = 'reconciler-test';
    const taken = await manual.getNextJob(token);
    expect(taken?.id).toBe(completed.jobId);
    await taken!.moveToCompleted('done', token, false);
    await manual.close();
    await enqueue(queues, 'meta-train', { jobId: waiting.jobId }, waiting.jobId);
    expect(await stale.getState()).toBe('completed');

    const report = await reconciler.reconcile();
    expect(report.ran).toBe(true);
    const byId = (a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id);
    expect([...report.requeued].sort(byId)).toEqual([{ id: missing.jobId, found: 'missing' }, { id: completed.jobId, found: 'completed' }].sort(byId));
    for (const { jobId } of [missing, waiting, completed]) expect(await (await queues['meta-train'].getJob(jobId))?.getState()).toBe('waiting');
    for (const { jobId } of [fresh, ended]) expect(await queues['meta-train'].getJob(jobId)).toBeUndefined();

    // Idempotent: a second pass finds everything in place.
    expect((await reconciler.reconcile()).requeued).toEqual([]);
  });

  it('re-enqueues evaluations Postgres says are queued or running and BullMQ lost, on their own queue', async () => {
    const prefix = uniquePrefix('reconcile-evaluations');
    const queues = queuesFor(prefix);
    const tenantId = await seedTenant(db, 'reconcile-evaluations');
    const metaModelId = await storeMetaModel(db, { tenantId });
    const settings = { shots: [5], steps: [1], tasks: 4, queryShots: 5, seed: 0 };
    const queued = await createEvaluation(db, tenantId, metaModelId, settings);
    const running = await createEvaluation(db, tenantId, metaModelId, settings);
    const live = await createEvaluation(db, tenantId, metaModelId, settings);
    const fresh = await createEvaluation(db, tenantId, metaModelId, settings);
    await claimEvaluation(db, running.id);
    const old = new Date(Date.now() - 5_000);
    await db.prisma.evaluation.updateMany({ where: { id: { in: [queued.id, running.id, live.id] } }, data: { updatedAt: old } });
    await enqueue(queues, 'evaluate', { evaluationId: live.id }, live.id);

    const report = await new Reconciler({ db, queues, redis, prefix, logger, intervalMs: 1_000 }).reconcile();
    const byId = (a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id);
    expect([...report.requeuedEvaluations].sort(byId)).toEqual([{ id: queued.id, found: 'missing' }, { id: running.id, found: 'missing' }].sort(byId));
    expect(report.requeued).toEqual([]);
    for (const id of [queued.id, running.id, live.id]) expect(await (await queues.evaluate.getJob(id))?.getState()).toBe('waiting');
    expect(await queues.evaluate.getJob(fresh.id)).toBeUndefined();
    expect(await queues['meta-train'].getJob(queued.id)).toBeUndefined();
  });

  it('skips a pass while another process holds the lock', async () => {
    const prefix = uniquePrefix('reconcile-lock');
    const queues = queuesFor(prefix);
    const { jobId } = await seedJob(db, { name: 'locked' });
    await age(jobId, 5_000);
    await redis.set(`${prefix}:reconciler:lock`, 'someone-else', 'PX', 10_000);
    const reconciler = new Reconciler({ db, queues, redis, prefix, logger, intervalMs: 1_000 });
    expect(await reconciler.reconcile()).toEqual({ ran: false, checked: 0, requeued: [], requeuedAdaptations: [], requeuedEvaluations: [] });
    expect(await queues['meta-train'].getJob(jobId)).toBeUndefined();
    await redis.del(`${prefix}:reconciler:lock`);
    expect((await reconciler.reconcile()).requeued).toEqual([{ id: jobId, found: 'missing' }]);
    expect(await redis.exists(`${prefix}:reconciler:lock`)).toBe(0);
  });

  it('re-enqueues unfinished adaptations whose BullMQ job is gone, at adaptation priority, and leaves fresh ones alone', async () => {
    const prefix = uniquePrefix('reconcile-adapt');
    const queues = queuesFor(prefix);
    const tenantId = await seedTenant(db, 'reconcile-adapt');
    const taskId = await createTask(db, tenantId, await storeMetaModel(db, { tenantId }));
    const lost = await createAdaptation(db, tenantId, taskId, sinusoidSupport(10, 2, 0));
    const fresh = await createAdaptation(db, tenantId, taskId, sinusoidSupport(10, 2, 1));
    // Queued before Redis lost its data: older than one interval, no BullMQ job.
    await db.prisma.adaptation.update({ where: { id: lost }, data: { createdAt: new Date(Date.now() - 5_000) } });
    const reconciler = new Reconciler({ db, queues, redis, prefix, logger, intervalMs: 1_000 });

    const report = await reconciler.reconcile();
    expect(report.requeuedAdaptations).toEqual([{ id: lost, found: 'missing' }]);
    expect(report.requeued).toEqual([]);
    const job = await queues.adapt.getJob(lost);
    expect(job?.data).toEqual({ taskId, adaptationId: lost });
    expect(job?.opts.priority).toBe(1);
    expect(await queues.adapt.getJob(fresh)).toBeUndefined();
    // Idempotent: the re-added job is alive, so the next pass leaves it.
    expect((await reconciler.reconcile()).requeuedAdaptations).toEqual([]);
  });

  it('leaves an adaptation a worker picked up lately to it when BullMQ lost its job, and re-adds one whose job ended there', async () => {
    const prefix = uniquePrefix('reconcile-picked');
    const queues = queuesFor(prefix);
    const tenantId = await seedTenant(db, 'reconcile-picked');
    const taskId = await createTask(db, tenantId, await storeMetaModel(db, { tenantId }));
    const [running, ended, abandoned] = [
      await createAdaptation(db, tenantId, taskId, sinusoidSupport(10, 2, 0)),
      await createAdaptation(db, tenantId, taskId, sinusoidSupport(10, 2, 1)),
      await createAdaptation(db, tenantId, taskId, sinusoidSupport(10, 2, 2)),
    ];
    const old = new Date(Date.now() - 5_000);
    await db.prisma.adaptation.updateMany({ where: { id: { in: [running, ended] } }, data: { createdAt: old, startedAt: new Date() } });
    // Picked up long ago (past adaptRunMs) and never finished: its worker died as well.
    await db.prisma.adaptation.update({ where: { id: abandoned }, data: { createdAt: old, startedAt: new Date(Date.now() - 4_000) } });
    // Its BullMQ job failed for good while the row stayed unfinished (Postgres away for its last attempt).
    await enqueue(queues, 'adapt', { taskId, adaptationId: ended }, ended);
    const manual = new Worker('adapt', null, { connection: redis, prefix });
    const token = 'reconciler-picked';
    const taken = await manual.getNextJob(token);
    expect(taken?.id).toBe(ended);
    // Failed for good, as the handler fails it (UnrecoverableError: no retry left to wait for).
    await taken!.moveToFailed(new UnrecoverableError('gave up'), token, false);
    expect(await taken!.getState()).toBe('failed');
    await manual.close();

    const report = await new Reconciler({ db, queues, redis, prefix, logger, intervalMs: 1_000, adaptRunMs: 3_000 }).reconcile();
    const byId = (a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id);
    expect([...report.requeuedAdaptations].sort(byId)).toEqual([{ id: ended, found: 'failed' }, { id: abandoned, found: 'missing' }].sort(byId));
    expect(await queues.adapt.getJob(running)).toBeUndefined();
  });
});
