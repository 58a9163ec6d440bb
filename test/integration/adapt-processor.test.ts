/**
 * The adapt processor on the real test database and Redis (own key prefix): adaptations through
 * BullMQ store head versions 1, 2, 3 with their support losses and announce each on the adapted
 * channel; only what the algorithm adapts is stored (the head for ANIL and ProtoNets); the stored
 * head is the guard's best step, not the last; a diverging or unreadable adaptation fails with a
 * readable reason and stores nothing; a second run of an ended adaptation writes nothing; the
 * meta-model is decoded once and then served from memory.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { createDb, type Db } from '../../src/db/client.js';
import { AdaptedSubscriber, publishAdapted, type AdaptedMessage } from '../../src/jobs/adapted.js';
import { runAdaptation, type AdaptDeps } from '../../src/jobs/adapt-processor.js';
import { CancelListener } from '../../src/jobs/cancel.js';
import { createHandlers } from '../../src/jobs/handlers/index.js';
import { MetaModelCache } from '../../src/db/meta-model-cache.js';
import { closeQueues, createQueues, enqueue, type Queues } from '../../src/jobs/queues.js';
import { createRedis } from '../../src/jobs/redis.js';
import { startWorkers, type WorkerPool } from '../../src/jobs/worker.js';
import { adapt, decodeParams, initBackend, predict, taskParams, tf } from '../../src/meta/index.js';
import { loadMetaModel } from '../../src/db/repositories/meta-models.js';
import { SHARED_REDIS_URL, TEST_DATABASE_URL, removePrefix, uniquePrefix } from './support/services.js';
import { seedTenant, waitUntil } from './support/training-fixtures.js';
import { BLOBS, blobSupport, createAdaptation, createTask, sinusoidSupport, storeMetaModel } from './support/adaptation-fixtures.js';

const logger = pino({ level: 'silent' });
const prefix = uniquePrefix('adapt');
let db: Db;
let redis: Redis;
let subscriber: AdaptedSubscriber;
const messages: AdaptedMessage[] = [];
const tenants: string[] = [];
let deps: AdaptDeps;

beforeAll(async () => {
  await initBackend('cpu');
  db = createDb(TEST_DATABASE_URL);
  redis = createRedis(SHARED_REDIS_URL, 'adapt-test', logger);
  subscriber = await AdaptedSubscriber.start(redis, prefix, logger);
  subscriber.on((message) => messages.push(message));
  deps = { db, redis, prefix, logger, metaModels: new MetaModelCache() };
});

afterEach(async () => {
  // Tasks first: a meta-model in use by a task cannot go on its own.
  await db.prisma.task.deleteMany({ where: { tenantId: { in: tenants } } });
  await db.prisma.metaModel.deleteMany({ where: { tenantId: { in: tenants } } });
  await db.prisma.tenant.deleteMany({ where: { id: { in: tenants.splice(0) } } });
  messages.splice(0);
});

afterAll(async () => {
  await subscriber.close();
  await removePrefix(SHARED_REDIS_URL, prefix);
  await redis.quit();
  await db.close();
});

async function tenant() {
  const id = await seedTenant(db, 'adapt');
  tenants.push(id);
  return id;
}

const messageFor = (adaptationId: string) => waitUntil(async () => messages.find((m) => m.adaptationId === adaptationId), `the adapted message of ${adaptationId}`, 15_000, 5);
const paramNames = (bytes: Uint8Array) => Object.keys(decodeParams(bytes)).sort();

describe('adapt processor', () => {
  it('adapts through the queue: versions 1, 2, 3 with losses before and after, published, meta-model decoded once', async () => {
    const tenantId = await tenant();
    const metaModelId = await storeMetaModel(db, { tenantId, algorithm: 'maml' });
    const taskId = await createTask(db, tenantId, metaModelId);
    const metaModels = new MetaModelCache();
    const queues: Queues = createQueues({ connection: redis, prefix, logger });
    const cancels = await CancelListener.start(redis, prefix, logger);
    const pool: WorkerPool = startWorkers(createHandlers({ db, logger, redis, queuePrefix: prefix, cancels, metaModels }), { connection: redis, prefix, logger });
    try {
      for (let round = 1; round <= 3; round++) {
        const adaptationId = await createAdaptation(db, tenantId, taskId, sinusoidSupport(10, 1 + round, 0.5 * round));
        await enqueue(queues, 'adapt', { taskId, adaptationId }, adaptationId, { priority: 1 });
        const message = await messageFor(adaptationId);
        expect(message).toMatchObject({ adaptationId, taskId, tenantId, headVersion: round, status: 'succeeded', steps: 5 });
        expect(message.supportLoss!.after).toBeLessThan(message.supportLoss!.before);
        expect(message.timings).toMatchObject({ queuedMs: expect.any(Number), loadMs: expect.any(Number), adaptMs: expect.any(Number), writeMs: expect.any(Number) });

        const row = await db.prisma.adaptation.findUniqueOrThrow({ where: { id: adaptationId } });
        expect(row).toMatchObject({ status: 'succeeded', headVersion: round, error: null });
        expect(row.startedAt).toBeInstanceOf(Date);
        expect(row.finishedAt!.getTime()).toBeGreaterThanOrEqual(row.startedAt!.getTime());
        const head = await db.prisma.adaptedHead.findUniqueOrThrow({ where: { taskId_version: { taskId, version: round } } });
        expect(head).toMatchObject({ steps: 5, innerLr: expect.closeTo(0.01, 6), supportLossBefore: message.supportLoss!.before, supportLossAfter: message.supportLoss!.after });
        expect(head.durationMs).toBeGreaterThan(0);
        // MAML adapts body and head: the whole network is stored.
        expect(paramNames(head.params)).toEqual(['body.0.bias', 'body.0.weight', 'body.1.bias', 'body.1.weight', 'head.bias', 'head.weight']);
      }
      expect((await db.prisma.task.findUniqueOrThrow({ where: { id: taskId } })).headVersion).toBe(3);
      expect(await db.prisma.adaptedHead.count({ where: { taskId } })).toBe(3);
      expect(metaModels.misses).toBe(1);
      expect(metaModels.hits).toBe(2);
    } finally {
      await pool.close();
      await cancels.close();
      await closeQueues(queues);
    }
  });

  it('stores only the head for ANIL and ProtoNets, and the stored head predicts with the meta-model body', async () => {
    const tenantId = await tenant();
    const cases = [
      { algorithm: 'anil' as const, family: undefined, support: sinusoidSupport(10, 2, 1), steps: 5 },
      { algorithm: 'protonet' as const, family: BLOBS, support: blobSupport(5), steps: 0 },
    ];
    for (const { algorithm, family, support, steps } of cases) {
      const metaModelId = await storeMetaModel(db, { tenantId, algorithm, family });
      const taskId = await createTask(db, tenantId, metaModelId);
      const adaptationId = await createAdaptation(db, tenantId, taskId, support);
      expect(await runAdaptation(deps, adaptationId)).toEqual({ outcome: 'succeeded', headVersion: 1 });
      const head = await db.prisma.adaptedHead.findUniqueOrThrow({ where: { taskId_version: { taskId, version: 1 } } });
      expect(paramNames(head.params)).toEqual(['head.bias', 'head.weight']);
      expect(head.steps).toBe(steps);
      expect(head.supportLossAfter).toBeLessThanOrEqual(head.supportLossBefore);

      const stored = (await loadMetaModel(db, metaModelId))!;
      const full = taskParams(stored.model, decodeParams(head.params));
      expect(Object.keys(full).filter((n) => n.startsWith('body.')).length).toBe(4);
      const prediction = predict(stored.model.spec, full, support.x);
      if (prediction.kind === 'classification') expect(prediction.labels).toEqual(support.y);
      else expect(prediction.values).toHaveLength(support.y.length);
    }
    expect(tf.memory().numTensors).toBeLessThan(10);
  });

  it('stores the guarded head of a diverging adaptation with its trace, NaN steps included', async () => {
    const tenantId = await tenant();
    const metaModelId = await storeMetaModel(db, { tenantId });
    const taskId = await createTask(db, tenantId, metaModelId);
    const adaptationId = await createAdaptation(db, tenantId, taskId, sinusoidSupport(10, 5, 0), { steps: 50, innerLr: 1e6 });
    expect(await runAdaptation(deps, adaptationId)).toMatchObject({ outcome: 'succeeded', headVersion: 1 });
    const head = await db.prisma.adaptedHead.findUniqueOrThrow({ where: { taskId_version: { taskId, version: 1 } } });
    expect(head).toMatchObject({ bestStep: 0, diverged: true });
    expect(head.supportLossTrace).toHaveLength(51);
    expect(head.supportLossTrace[0]).toBe(head.supportLossBefore);
    expect(head.supportLossAfter).toBe(head.supportLossBefore);
    expect(head.supportLossTrace.some((loss) => !Number.isFinite(loss))).toBe(true);
    const message = await messageFor(adaptationId);
    expect(message?.supportLoss).toMatchObject({ bestStep: 0, diverged: true, before: head.supportLossBefore, after: head.supportLossAfter });
    expect(message?.supportLoss?.trace).toEqual(head.supportLossTrace.map((loss) => (Number.isFinite(loss) ? loss : null)));
  });

  it("stores the best step's parameters when the support loss overshoots after it", async () => {
    const tenantId = await tenant();
    const metaModelId = await storeMetaModel(db, { tenantId });
    const taskId = await createTask(db, tenantId, metaModelId);
    // At this step size the loss falls for a few steps, then overshoots and never gets as low again.
    const support = sinusoidSupport(10, 2, 1);
    const adaptationId = await createAdaptation(db, tenantId, taskId, support, { steps: 10, innerLr: 0.1 });
    expect(await runAdaptation(deps, adaptationId)).toMatchObject({ outcome: 'succeeded', headVersion: 1 });
    const head = await db.prisma.adaptedHead.findUniqueOrThrow({ where: { taskId_version: { taskId, version: 1 } } });
    expect(head.bestStep).toBeGreaterThan(0);
    expect(head.bestStep).toBeLessThan(10);
    expect(head.supportLossAfter).toBeLessThan(head.supportLossBefore);
    // The stored parameters are exactly the raw iterate at the best step, run again here.
    const { model } = (await loadMetaModel(db, metaModelId))!;
    const examples = { n: 10, x: Float32Array.from(support.x.flat()), y: Float32Array.from(support.y) };
    const atBest = adapt(model, examples, { steps: head.bestStep, lr: head.innerLr, guard: 'none' });
    expect(decodeParams(head.params)).toEqual(atBest.params);
    expect(head.supportLossAfter).toBeCloseTo(atBest.supportLossAfter, 5);
  });

  it("fails a diverging adaptation under guard 'none' with a readable reason and stores nothing", async () => {
    const tenantId = await tenant();
    const metaModelId = await storeMetaModel(db, { tenantId });
    const taskId = await createTask(db, tenantId, metaModelId);
    const adaptationId = await createAdaptation(db, tenantId, taskId, sinusoidSupport(10, 5, 0), { steps: 50, innerLr: 1e6, guard: 'none' });
    const outcome = await runAdaptation(deps, adaptationId);
    expect(outcome.outcome).toBe('failed');
    const row = await db.prisma.adaptation.findUniqueOrThrow({ where: { id: adaptationId } });
    expect(row.status).toBe('failed');
    expect(row.error).toMatch(/diverged|not finite|non-finite/i);
    expect(row.error).toMatch(/innerLr/);
    expect(row.headVersion).toBeNull();
    expect(await db.prisma.adaptedHead.count({ where: { taskId } })).toBe(0);
    expect((await db.prisma.task.findUniqueOrThrow({ where: { id: taskId } })).headVersion).toBeNull();
    expect(await messageFor(adaptationId)).toMatchObject({ status: 'failed', headVersion: null, taskId, error: row.error });
  });

  it('fails an adaptation whose stored support set is unreadable, and one whose task does not fit its meta-model', async () => {
    const tenantId = await tenant();
    const metaModelId = await storeMetaModel(db, { tenantId });
    const taskId = await createTask(db, tenantId, metaModelId);
    const truncated = await createAdaptation(db, tenantId, taskId, sinusoidSupport(10, 1, 0));
    await db.prisma.adaptation.update({ where: { id: truncated }, data: { supportX: new Uint8Array(6) } });
    expect(await runAdaptation(deps, truncated)).toMatchObject({ outcome: 'failed', error: expect.stringMatching(/support set is unreadable: support_x holds 6 bytes, expected 40/) });

    const misfit = await db.prisma.task.create({ data: { tenantId, metaModelId, kind: 'regression', inputDim: 3 } });
    const wrongShape = await createAdaptation(db, tenantId, misfit.id, { x: [[1, 2, 3]], y: [1] });
    expect(await runAdaptation(deps, wrongShape)).toMatchObject({ outcome: 'failed', error: expect.stringMatching(/inputDim 3\) does not match its meta-model \(regression, inputDim 1\)/) });
    expect(await db.prisma.adaptedHead.count({ where: { taskId: { in: [taskId, misfit.id] } } })).toBe(0);
  });

  it('writes nothing when an ended adaptation runs again, or when the adaptation does not exist', async () => {
    const tenantId = await tenant();
    const metaModelId = await storeMetaModel(db, { tenantId });
    const taskId = await createTask(db, tenantId, metaModelId);
    const adaptationId = await createAdaptation(db, tenantId, taskId, sinusoidSupport(10, 3, 1));
    expect(await runAdaptation(deps, adaptationId)).toEqual({ outcome: 'succeeded', headVersion: 1 });
    expect(await runAdaptation(deps, adaptationId)).toEqual({ outcome: 'skipped' });
    expect(await runAdaptation(deps, 'no-such-adaptation')).toEqual({ outcome: 'skipped' });
    expect(await db.prisma.adaptedHead.count({ where: { taskId } })).toBe(1);
    expect((await db.prisma.task.findUniqueOrThrow({ where: { id: taskId } })).headVersion).toBe(1);
  });

  it('delivers published messages to every listener and skips malformed ones', async () => {
    const seen: string[] = [];
    const stop = subscriber.on((m) => seen.push(m.adaptationId));
    await redis.publish(`${prefix}:adapted`, '{"not":"a message"}');
    const message: AdaptedMessage = { adaptationId: 'a-1', taskId: 't-1', tenantId: 'x', headVersion: 4, status: 'succeeded', supportLoss: { before: 2, after: 1, trace: [2, null, 1], bestStep: 2, diverged: true }, steps: 5, durationMs: 3 };
    expect(await publishAdapted(redis, prefix, message)).toBeGreaterThanOrEqual(1);
    expect(await messageFor('a-1')).toEqual(message);
    stop();
    await publishAdapted(redis, prefix, { ...message, adaptationId: 'a-2' });
    await messageFor('a-2');
    // Only this test's messages: an earlier test's outcome (published without waiting) may land late.
    expect(seen.filter((id) => id === 'a-1' || id === 'a-2')).toEqual(['a-1']);
  });
});
