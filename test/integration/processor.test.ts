/**
 * The meta-train processor in this process on the real test database and Redis (own key prefix):
 * a job runs to a meta-model version through BullMQ, a shutdown mid-run resumes from the checkpoint
 * to bit-identical meta-parameters, cancel (row or pub/sub) ends it `cancelled`, a stale run is
 * fenced out, and a job that cannot train fails with a readable error.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { createDb, type Db } from '../../src/db/client.js';
import { startAttempt } from '../../src/db/repositories/training.js';
import { CancelListener, publishCancel } from '../../src/jobs/cancel.js';
import { decodeJobEvent, JOB_EVENTS_TTL_AFTER_END_S, jobEventsKey } from '../../src/jobs/events.js';
import { createHandlers } from '../../src/jobs/handlers/index.js';
import { runMetaTrainJob, type MetaTrainDeps, type RunOutcome } from '../../src/jobs/meta-train-processor.js';
import { closeQueues, createQueues, enqueue } from '../../src/jobs/queues.js';
import { createRedis } from '../../src/jobs/redis.js';
import { SHUTDOWN, startWorkers } from '../../src/jobs/worker.js';
import { loadMetaModel } from '../../src/db/repositories/meta-models.js';
import { adapt, decodeParams, initBackend, TrainingAbortedError } from '../../src/meta/index.js';
import { SHARED_REDIS_URL, TEST_DATABASE_URL, removePrefix, uniquePrefix } from './support/services.js';
import { float32Bytes, seedJob, seedTenant, waitUntil } from './support/training-fixtures.js';

const logger = pino({ level: 'silent' });
const prefix = uniquePrefix('processor');
let db: Db;
let redis: Redis;
let deps: MetaTrainDeps;
const tenants: string[] = [];

beforeAll(async () => {
  await initBackend('cpu');
  db = createDb(TEST_DATABASE_URL);
  redis = createRedis(SHARED_REDIS_URL, 'processor-test', logger);
  deps = { db, redis, prefix, logger, cancels: await CancelListener.start(redis, prefix, logger), progressIntervalMs: 0 };
});

afterEach(async () => {
  await db.prisma.metaModel.deleteMany({ where: { tenantId: { in: tenants } } });
  await db.prisma.tenant.deleteMany({ where: { id: { in: tenants.splice(0) } } });
});

afterAll(async () => {
  await deps.cancels.close();
  await removePrefix(SHARED_REDIS_URL, prefix);
  await redis.quit();
  await db.close();
});

async function seed(options: Parameters<typeof seedJob>[1] = {}) {
  const seeded = await seedJob(db, { tenantId: options.tenantId ?? (await seedTenant(db, 'processor')), ...options });
  tenants.push(seeded.tenantId);
  return seeded;
}

const run = (jobId: string, signal = new AbortController().signal) => runMetaTrainJob(deps, jobId, signal);
const jobRow = (jobId: string) => db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: jobId } });

async function events(jobId: string) {
  const entries = (await redis.xrange(jobEventsKey(prefix, jobId), '-', '+')) as [string, string[]][];
  return entries.map((entry) => decodeJobEvent(entry)!);
}

/** Resolves once the job's row shows at least `iteration` iterations done. */
const reached = (jobId: string, iteration: number) => waitUntil(async () => (await jobRow(jobId)).iteration >= iteration, `iteration ${iteration}`, 30_000, 10);

describe('meta-train processor', () => {
  it('runs a queued job through BullMQ to a meta-model version, recording progress, metrics and events', async () => {
    const { jobId, tenantId } = await seed();
    const queues = createQueues({ connection: redis, prefix, logger });
    const pool = startWorkers(createHandlers({ db, logger, redis, queuePrefix: prefix, cancels: deps.cancels, progressIntervalMs: 0 }), { connection: redis, prefix, logger });
    try {
      const job = await enqueue(queues, 'meta-train', { jobId }, jobId);
      await waitUntil(async () => (await job.getState()) === 'completed', 'the BullMQ job to complete');
      const done = await queues['meta-train'].getJob(jobId);
      expect(done?.returnvalue).toMatchObject({ outcome: 'succeeded', version: 1 });
    } finally {
      await pool.close();
      await closeQueues(queues);
    }

    const row = await jobRow(jobId);
    expect(row).toMatchObject({ status: 'succeeded', iteration: 40, attempts: 1, error: null });
    expect(row.finishedAt).toBeInstanceOf(Date);
    const metrics = await db.prisma.jobMetric.findMany({ where: { jobId }, orderBy: { iteration: 'asc' } });
    expect(metrics.map((m) => m.iteration)).toEqual([10, 20, 30, 40]);
    expect(metrics.every((m) => Number.isFinite(m.trainLoss) && Number.isFinite(m.valLoss) && m.valAccuracy === null)).toBe(true);
    expect(row.lastMetrics).toMatchObject({ iteration: 40, valLoss: metrics[3].valLoss });
    expect(await db.prisma.checkpoint.count({ where: { jobId } })).toBe(0);

    const model = await db.prisma.metaModel.findUniqueOrThrow({ where: { jobId }, include: { aliases: true } });
    expect(model).toMatchObject({ tenantId, name: 'sine-maml', version: 1, algorithm: 'maml', kind: 'regression', inputDim: 1, nWay: null });
    expect(model.model).toEqual({ body: 'mlp', hidden: [16, 16], activation: 'relu' });
    expect(model.metrics).toMatchObject({ iteration: 40, valLoss: metrics[3].valLoss });
    expect(model.aliases.map((a) => a.alias)).toEqual(['latest']);
    const params = decodeParams(model.params);
    expect(Object.fromEntries(Object.entries(params).map(([name, p]) => [name, p.shape]))).toEqual({
      'body.0.weight': [1, 16],
      'body.0.bias': [16],
      'body.1.weight': [16, 16],
      'body.1.bias': [16],
      'head.weight': [16, 1],
      'head.bias': [1],
    });

    const published = await events(jobId);
    expect(published[0]).toMatchObject({ type: 'status', data: { status: 'running', iteration: 0, iterations: 40 } });
    expect(published.at(-1)).toMatchObject({ type: 'status', data: { status: 'succeeded', iteration: 40, metaModelId: model.id } });
    expect(published.filter((e) => e.type === 'metrics').map((e) => e.data.iteration)).toEqual([10, 20, 30, 40]);
    expect(published.filter((e) => e.type === 'progress').at(-1)?.data).toEqual({ iteration: 40, iterations: 40 });
    // The terminal status set the stream's expiry (a stream without one has ttl -1).
    const ttl = await redis.ttl(jobEventsKey(prefix, jobId));
    expect(ttl).toBeGreaterThan(JOB_EVENTS_TTL_AFTER_END_S - 30);
    expect(ttl).toBeLessThanOrEqual(JOB_EVENTS_TTL_AFTER_END_S);
  });

  it('after a shutdown mid-run, resumes from its checkpoint to the same meta-parameters as an uninterrupted run', async () => {
    const hyper = { iterations: 60, checkpointEvery: 10, evalEvery: 20, seed: 11 };
    const tenantId = await seedTenant(db, 'processor');
    tenants.push(tenantId);
    const reference = await seed({ tenantId, name: 'reference', hyper });
    expect(await run(reference.jobId)).toMatchObject({ outcome: 'succeeded' });

    const { jobId } = await seed({ tenantId, name: 'interrupted', hyper });
    const shutdown = new AbortController();
    const interrupted = run(jobId, shutdown.signal);
    await waitUntil(() => db.prisma.checkpoint.findFirst({ where: { jobId } }).then((c) => c ?? undefined), 'a checkpoint', 30_000, 5);
    shutdown.abort(SHUTDOWN);
    await expect(interrupted).rejects.toThrow(TrainingAbortedError);
    const handedBack = await jobRow(jobId);
    expect(handedBack.status).toBe('running');
    expect(handedBack.iteration).toBeLessThan(60);
    const checkpoint = await db.prisma.checkpoint.findFirstOrThrow({ where: { jobId } });
    expect(checkpoint.iteration).toBeGreaterThanOrEqual(10);

    expect(await run(jobId)).toMatchObject({ outcome: 'succeeded' });
    expect(await jobRow(jobId)).toMatchObject({ status: 'succeeded', iteration: 60, attempts: 2 });
    const [expected, resumed] = await Promise.all([reference.jobId, jobId].map((id) => db.prisma.metaModel.findUniqueOrThrow({ where: { jobId: id } })));
    expect(Buffer.from(resumed.params).equals(Buffer.from(expected.params))).toBe(true);
    expect(resumed.metrics).toEqual(expected.metrics);
    const curve = async (id: string) => (await db.prisma.jobMetric.findMany({ where: { jobId: id }, orderBy: { iteration: 'asc' } })).map(({ iteration, trainLoss, valLoss }) => ({ iteration, trainLoss, valLoss }));
    expect(await curve(jobId)).toEqual(await curve(reference.jobId));
  });

  it('with hyper.zeroHead stores a meta-model whose head is zero, from which a task adapts', async () => {
    const { jobId } = await seed({ name: 'sine-maml-zero-head', hyper: { iterations: 20, zeroHead: true } });
    expect(await run(jobId)).toMatchObject({ outcome: 'succeeded', version: 1 });
    const row = await db.prisma.metaModel.findUniqueOrThrow({ where: { jobId } });
    const params = decodeParams(row.params);
    for (const name of ['head.weight', 'head.bias']) expect(params[name].data.every((v) => v === 0)).toBe(true);
    expect(params['body.0.weight'].data.some((v) => v !== 0)).toBe(true);
    const stored = await loadMetaModel(db, row.id);
    const support = { x: Float32Array.from([-2, 0, 2]), y: Float32Array.from([1, 2, 1]), n: 3 };
    const adapted = adapt(stored!.model, support, { steps: 5 });
    expect(Math.max(...adapted.params['head.weight'].data.map(Math.abs))).toBeGreaterThan(0);
    expect(adapted.supportLossAfter).toBeLessThan(adapted.supportLossBefore);
  });

  it('mixes several families in one job', async () => {
    const families = [
      { name: 'sine', kind: 'regression' as const, inputDim: 1, generator: { type: 'sinusoid' } },
      { name: 'cubic', kind: 'regression' as const, inputDim: 1, generator: { type: 'polynomial' } },
    ];
    const { jobId } = await seed({ families, hyper: { iterations: 20 } });
    expect(await run(jobId)).toMatchObject({ outcome: 'succeeded', version: 1 });
    expect(await jobRow(jobId)).toMatchObject({ status: 'succeeded', iteration: 20 });
  });

  it("trains multitask on a dataset family's stored tasks: the stored meta-model is the body, and it loads and adapts", async () => {
    // Lines y = t x + 1 through 8 points each: task t's own head must learn slope t.
    const xs = [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5];
    const tasks = Array.from({ length: 6 }, (_, t) => ({ examples: xs.length, x: float32Bytes(xs), y: float32Bytes(xs.map((x) => t * x + 1)) }));
    const { jobId } = await seed({ algorithm: 'multitask', name: 'lines-multitask', families: [{ name: 'lines', kind: 'regression', inputDim: 1, tasks }], hyper: { iterations: 20, shots: 3, queryShots: 3 } });
    expect(await run(jobId)).toMatchObject({ outcome: 'succeeded', version: 1 });
    // The pool's heads (one per stored training task) were training state: the meta-model is the body.
    const row = await db.prisma.metaModel.findUniqueOrThrow({ where: { jobId } });
    expect(Object.keys(decodeParams(row.params))).toEqual(['body.0.weight', 'body.0.bias', 'body.1.weight', 'body.1.bias']);
    const stored = await loadMetaModel(db, row.id);
    expect(stored?.model.algorithm).toBe('multitask');
    const support = { x: Float32Array.from([0, 1, 2]), y: Float32Array.from([1, 3, 5]), n: 3 };
    const adapted = adapt(stored!.model, support);
    expect(Object.keys(adapted.params)).toEqual(['head.weight', 'head.bias']);
    expect(adapted.supportLossAfter).toBeLessThan(0.5);
  });

  it('ends `cancelled` when the cancel request reaches it by pub/sub', async () => {
    const { jobId } = await seed({ hyper: { iterations: 100_000 } });
    const running = run(jobId);
    await reached(jobId, 5);
    expect(deps.cancels.running).toContain(jobId);
    expect(await publishCancel(redis, prefix, jobId)).toBeGreaterThanOrEqual(1);
    const outcome = (await running) as Extract<RunOutcome, { outcome: 'cancelled' }>;
    expect(outcome.outcome).toBe('cancelled');
    const row = await jobRow(jobId);
    expect(row).toMatchObject({ status: 'cancelled', iteration: outcome.iteration });
    expect(row.iteration).toBeLessThan(1_000);
    expect(await db.prisma.metaModel.count({ where: { jobId } })).toBe(0);
    expect(await db.prisma.checkpoint.count({ where: { jobId } })).toBe(0);
    expect((await events(jobId)).at(-1)).toMatchObject({ type: 'status', data: { status: 'cancelled', iteration: outcome.iteration } });
    expect(deps.cancels.running).not.toContain(jobId);
  });

  it('ends `cancelled` when only the row says so (a lost message), within one progress write', async () => {
    const { jobId } = await seed({ hyper: { iterations: 100_000 } });
    const running = run(jobId);
    await reached(jobId, 5);
    await db.prisma.metaTrainJob.update({ where: { id: jobId }, data: { cancelRequestedAt: new Date() } });
    const requestedAt = (await jobRow(jobId)).iteration;
    expect(await running).toMatchObject({ outcome: 'cancelled' });
    const row = await jobRow(jobId);
    expect(row.status).toBe('cancelled');
    // Progress is written every iteration here (interval 0): the next write sees the request and
    // the generator stops before the iteration after it.
    expect(row.iteration - requestedAt).toBeLessThanOrEqual(3);
  });

  it('ends a job whose cancel was requested before it started without training', async () => {
    const { jobId } = await seed();
    await db.prisma.metaTrainJob.update({ where: { id: jobId }, data: { status: 'running', cancelRequestedAt: new Date() } });
    expect(await run(jobId)).toEqual({ outcome: 'cancelled', iteration: 0 });
    expect(await jobRow(jobId)).toMatchObject({ status: 'cancelled', attempts: 1 });
  });

  it('stops a stale run at its next write once another run has started the job', async () => {
    const { jobId } = await seed({ hyper: { iterations: 100_000 } });
    const stale = run(jobId);
    await reached(jobId, 5);
    const takeover = await startAttempt(db, jobId);
    expect(takeover?.fence.attempt).toBe(2);
    expect(await stale).toEqual({ outcome: 'fenced-out' });
    const frozen = (await jobRow(jobId)).iteration;
    await new Promise((r) => setTimeout(r, 200));
    expect(await jobRow(jobId)).toMatchObject({ status: 'running', attempts: 2, iteration: frozen });
  });

  it('fails a job whose family cannot make its episodes, with the reason and nothing stored', async () => {
    // Tasks of 4 examples cannot give 5 support + 5 query points.
    const tasks = Array.from({ length: 3 }, (_, t) => ({ examples: 4, x: float32Bytes([0, 1, 2, 3]), y: float32Bytes([t, t + 1, t + 2, t + 3]) }));
    const { jobId } = await seed({ families: [{ name: 'tiny', kind: 'regression', inputDim: 1, tasks }] });
    const outcome = await run(jobId);
    expect(outcome).toMatchObject({ outcome: 'failed', error: expect.stringContaining('10 examples') });
    const row = await jobRow(jobId);
    expect(row.status).toBe('failed');
    expect(row.error).toContain("family 'tiny'");
    expect(await db.prisma.metaModel.count({ where: { jobId } })).toBe(0);
    expect((await events(jobId)).at(-1)).toMatchObject({ type: 'status', data: { status: 'failed', error: row.error } });
  });

  it('skips a job that has already ended', async () => {
    const { jobId } = await seed();
    await db.prisma.metaTrainJob.update({ where: { id: jobId }, data: { status: 'succeeded' } });
    expect(await run(jobId)).toEqual({ outcome: 'skipped' });
    expect(await jobRow(jobId)).toMatchObject({ attempts: 0 });
  });
});
