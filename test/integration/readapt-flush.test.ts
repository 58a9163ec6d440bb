/**
 * readapt auto survives Redis being wiped (FLUSHALL on a private redis-server, with a private
 * database the reconciler sweeps) in the middle of a chain: whether the wiped adaptation was waiting
 * out its coalescing delay or running, the task ends, within a bounded time, serving a head adapted
 * on its newest example, with no adaptation left queued, the flag down, and never two adaptations of
 * the task running at once (observed around the real handler, and in the rows' start and end times).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { initBackend } from '../../src/meta/index.js';
import { Reconciler } from '../../src/jobs/reconciler.js';
import { sineTask, storeMetaModel } from './support/adapt-fixtures.js';
import { newTenant, startApi, startWorker, type TestApi } from './support/api-app.js';
import { createPrivateDatabase, type PrivateDatabase } from './support/private-database.js';
import { freePort, PrivateRedis } from './support/services.js';
import { waitUntil } from './support/training-fixtures.js';

/** The reconciler's pass interval here: a lost adaptation is back in the queue within two. */
const RECONCILE_MS = 500;

let redisServer: PrivateRedis;
let database: PrivateDatabase;
let api: TestApi;
let worker: Awaited<ReturnType<typeof startWorker>>;
let reconciler: Reconciler;
let tenant: Awaited<ReturnType<typeof newTenant>>;
let sine: Awaited<ReturnType<typeof storeMetaModel>>;

/** Runs of the adapt handler in progress and the most at once, by task. */
const running = new Map<string, number>();
const mostAtOnce = new Map<string, number>();

beforeAll(async () => {
  await initBackend('cpu');
  redisServer = new PrivateRedis(await freePort());
  await redisServer.start();
  database = await createPrivateDatabase('readapt_flush');
  // A coalescing delay long enough to wipe Redis inside it.
  api = await startApi('readapt-flush', { DATABASE_URL: database.url, READAPT_DELAY_MS: '300' }, redisServer.url);
  worker = await startWorker(api, {
    wrap: (handlers) => ({
      ...handlers,
      adapt: async (job, token, signal) => {
        const { taskId } = job.data;
        running.set(taskId, (running.get(taskId) ?? 0) + 1);
        mostAtOnce.set(taskId, Math.max(mostAtOnce.get(taskId) ?? 0, running.get(taskId)!));
        try {
          return await handlers.adapt(job, token, signal);
        } finally {
          running.set(taskId, running.get(taskId)! - 1);
        }
      },
    }),
  });
  reconciler = new Reconciler({ db: api.db, queues: api.queues, redis: api.redis, prefix: api.prefix, logger: pino({ level: 'silent' }), intervalMs: RECONCILE_MS }).start();
  tenant = await newTenant(api.db);
  // Runs that last longer than a reconciler interval (hundreds of ms here): wiped mid-run, the
  // reconciler has a pass while the run goes on, and must leave it alone.
  sine = await storeMetaModel(api.db, tenant.tenantId, { hidden: [256, 256], inner: { steps: 1000, lr: 0.01 } });
});

afterAll(async () => {
  await reconciler?.stop();
  await worker?.close();
  await api?.close();
  await redisServer?.stop();
  await database?.drop();
});

const call = (method: 'GET' | 'POST', url: string, payload?: unknown) =>
  api.app.inject({ method, url, headers: tenant.headers, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });

describe('Redis wiped in the middle of a readapt auto chain', () => {
  it.each([
    {
      when: 'its adaptation waits out the coalescing delay',
      appendsBefore: 1,
      wipeWhen: async (_taskId: string, readaptId: string) => expect(await (await api.queues.adapt.getJob(readaptId))?.getState()).toBe('delayed'),
    },
    {
      when: 'its adaptation runs',
      appendsBefore: 8,
      wipeWhen: (taskId: string) => waitUntil(async () => (running.get(taskId) ?? 0) > 0, 'an adaptation of the task to run', 10_000, 2),
    },
  ])('ends on a head with the newest example when wiped while $when, never two at once', async ({ appendsBefore, wipeWhen }) => {
    const created = await call('POST', '/tasks', { metaModelId: sine.metaModelId, readapt: 'auto' });
    expect(created.statusCode, created.body).toBe(201);
    const taskId = created.json().id as string;
    const task = sineTask(11, 3, 0.5, 24);
    const append = async (i: number) => {
      const answer = await call('POST', `/tasks/${taskId}/examples`, { x: [task.support.x[i]], y: [task.support.y[i]] });
      expect(answer.statusCode, answer.body).toBe(200);
      return answer.json() as { lastSeq: number; readaptId?: string };
    };

    // A burst; the first append starts the chain's adaptation, queued with the coalescing delay.
    const { readaptId } = await append(0);
    expect(readaptId).toEqual(expect.any(String));
    for (let i = 1; i < appendsBefore; i++) await append(i);
    await wipeWhen(taskId, readaptId!);
    await api.redis.flushall();
    // More of the burst after the wipe, while the chain is under way (or lost).
    let lastSeq = 0;
    for (let i = appendsBefore; i < 24; i++) lastSeq = (await append(i)).lastSeq;
    expect(lastSeq).toBe(24);

    const startedAt = Date.now();
    await waitUntil(async () => {
      const listed = (await call('GET', `/tasks/${taskId}/heads`)).json() as { items: { examplesThrough: number | null }[] };
      return listed.items[0]?.examplesThrough === lastSeq || undefined;
    }, 'a head that includes the newest example', 15_000, 50);
    // Bounded: a few reconciler intervals and runs, far from the 30 s after which a stuck flag is ignored.
    expect(Date.now() - startedAt).toBeLessThan(10_000);
    await waitUntil(async () => (running.get(taskId) ?? 0) === 0 || undefined, 'the runs to end', 5_000, 10);

    const runs = await api.db.prisma.adaptation.findMany({ where: { taskId }, orderBy: { startedAt: 'asc' } });
    expect(runs.map((run) => run.status).filter((s) => s === 'queued' || s === 'running')).toEqual([]);
    expect(runs.every((run) => run.autoReadapt && run.status === 'succeeded')).toBe(true);
    for (let i = 1; i < runs.length; i++) expect(runs[i].startedAt!.getTime()).toBeGreaterThanOrEqual(runs[i - 1].finishedAt!.getTime());
    expect(mostAtOnce.get(taskId)).toBe(1);
    const row = await api.db.prisma.task.findUniqueOrThrow({ where: { id: taskId } });
    expect(row.readaptActive).toBe(false);
    expect(Number(row.exampleSeq)).toBe(lastSeq);
    // The chain goes on from here: one more example is adapted on by itself.
    const more = await call('POST', `/tasks/${taskId}/examples`, { x: [[0.25]], y: [0.5] });
    expect(more.json().readaptId).toEqual(expect.any(String));
    await waitUntil(async () => ((await call('GET', `/tasks/${taskId}/heads`)).json().items[0]?.examplesThrough === lastSeq + 1) || undefined, 'the next append to be adapted on', 10_000, 50);
  });
});
