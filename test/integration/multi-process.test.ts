/**
 * Several processes on one Redis and one Postgres (a private redis-server and database): two API
 * processes and two worker processes, as a deployment scales out. Adaptations of several tasks and
 * predictions go to both APIs at once: every adaptation is answered, each task's head versions are
 * 1..n with no gap or duplicate, and either API then serves the latest version. Then one worker is
 * SIGKILLed mid-load: no adaptation is lost (each ends succeeded, answered at once or after polling
 * its 202), nothing is left queued or running in Postgres, and a meta-training job it may have held
 * still ends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../../src/db/client.js';
import { createApiKey } from '../../src/db/repositories/api-keys.js';
import { QUICK, SINE } from './support/api-app.js';
import { sinusoidSupport, storeMetaModel } from './support/adaptation-fixtures.js';
import { adaptToEnd, call, startApiProcess, type AdaptDone } from './support/http-client.js';
import { createPrivateDatabase, type PrivateDatabase } from './support/private-database.js';
import { PrivateRedis, freePort, uniquePrefix } from './support/services.js';
import { waitUntil } from './support/training-fixtures.js';
import { WorkerProcess } from './support/worker-process.js';

const prefix = uniquePrefix('multi');
let redisServer: PrivateRedis;
let database: PrivateDatabase;
let db: Db;
let apis: string[];
let workers: WorkerProcess[];
const processes: WorkerProcess[] = [];
let headers: Record<string, string>;
let metaModelId: string;

beforeAll(async () => {
  redisServer = new PrivateRedis(await freePort());
  await redisServer.start();
  database = await createPrivateDatabase('multi');
  db = createDb(database.url);
  const env = {
    DATABASE_URL: database.url,
    REDIS_URL: redisServer.url,
    QUEUE_PREFIX: prefix,
    RATE_LIMIT_MAX: '0',
    // A killed worker's adaptations come back within ~3 s (lock expiry, then the stalled check) ...
    LOCK_DURATION_MS: '2000',
    STALLED_INTERVAL_MS: '1000',
    // ... and the client waiting on one gets a 202 to poll rather than a long wait.
    ADAPT_WAIT_MS: '4000',
    RECONCILE_INTERVAL_MS: '3000',
    PROGRESS_INTERVAL_MS: '100',
  };
  const started = await Promise.all([startApiProcess(env), startApiProcess(env)]);
  processes.push(...started.map((s) => s.process));
  apis = started.map((s) => s.base);
  workers = [new WorkerProcess(env), new WorkerProcess(env)];
  processes.push(...workers);
  await Promise.all(workers.map((w) => w.waitForLog('started', () => true, 90_000)));
  const key = await createApiKey(db, 'multi');
  headers = { authorization: `Bearer ${key.key}` };
  metaModelId = await storeMetaModel(db, { tenantId: key.tenantId });
}, 180_000);

afterAll(async () => {
  for (const child of processes) {
    child.kill('SIGKILL');
    await child.exited;
  }
  await db?.close();
  await redisServer?.stop();
  await database?.drop();
});

/** New tasks of the meta-model, created alternately through each API. */
async function newTasks(count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const created = await call(apis[i % 2]!, 'POST', '/tasks', { headers, body: { metaModelId } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    ids.push((created.body as { id: string }).id);
  }
  return ids;
}

/** Predictions over both APIs until `stop()`: every answer, in order, per API and task. */
function predictLoop(tasks: string[]) {
  const seen: { api: number; taskId: string; status: number; headVersion?: number }[] = [];
  let running = true;
  const done = (async () => {
    for (let i = 0; running; i++) {
      const api = i % 2;
      const taskId = tasks[i % tasks.length]!;
      const answer = await call(apis[api]!, 'GET', `/predict?taskId=${taskId}&x=0.5`, { headers });
      seen.push({ api, taskId, status: answer.status, headVersion: (answer.body as { headVersion?: number }).headVersion });
    }
  })();
  return { seen, stop: async () => { running = false; await done; } };
}

/** Each task's stored heads are 1..n, n its succeeded adaptations, and the client saw each of its own. */
async function expectContiguous(tasks: string[], results: AdaptDone[]) {
  for (const taskId of tasks) {
    const heads = await db.prisma.adaptedHead.findMany({ where: { taskId }, select: { version: true }, orderBy: { version: 'asc' } });
    const succeeded = await db.prisma.adaptation.findMany({ where: { taskId, status: 'succeeded' }, select: { id: true, headVersion: true } });
    expect(heads.map((h) => h.version)).toEqual(succeeded.map((_, i) => i + 1));
    expect(succeeded.map((a) => a.headVersion).sort((a, b) => a! - b!)).toEqual(heads.map((h) => h.version));
    expect((await db.prisma.task.findUniqueOrThrow({ where: { id: taskId } })).headVersion).toBe(heads.length);
  }
  const byId = new Map((await db.prisma.adaptation.findMany({ where: { taskId: { in: tasks } } })).map((row) => [row.id, row]));
  for (const result of results) expect(byId.get(result.adaptationId)).toMatchObject({ status: 'succeeded', headVersion: result.headVersion });
}

/** Both APIs serve the task's latest head, with the same predictions (the message reaches each API in ms). */
async function expectLatestServed(tasks: string[]) {
  for (const taskId of tasks) {
    const latest = (await db.prisma.task.findUniqueOrThrow({ where: { id: taskId } })).headVersion;
    const answers = await waitUntil(async () => {
      const both = await Promise.all(apis.map((base) => call(base, 'GET', `/predict?taskId=${taskId}&x=0.5&x=-1`, { headers })));
      return both.every((a) => a.status === 200 && (a.body as { headVersion: number }).headVersion === latest) ? both : undefined;
    }, `both APIs to serve head ${latest} of ${taskId}`, 15_000, 100);
    expect((answers[0]!.body as { predictions: number[] }).predictions).toEqual((answers[1]!.body as { predictions: number[] }).predictions);
  }
}

/** Adaptations with varied support sets: `perTask` of each task, all in flight at once, spread over both APIs. */
function adaptAll(tasks: string[], perTask: number): Promise<AdaptDone>[] {
  return tasks.flatMap((taskId, t) =>
    Array.from({ length: perTask }, (_, i) => {
      const first = (t + i) % 2;
      return adaptToEnd([apis[first]!, apis[1 - first]!], headers, taskId, sinusoidSupport(10, 1 + i / 3, t + i / 5), 120_000);
    }),
  );
}

describe('two API processes and two workers on one Redis and one Postgres', () => {
  it('answer every adaptation, keep head versions contiguous per task and serve the latest from either API', async () => {
    const tasks = await newTasks(3);
    const predictions = predictLoop(tasks);
    const results = await Promise.all(adaptAll(tasks, 6));
    await predictions.stop();

    // Nothing failed or was refused: each request was one adaptation (200, or 202 then polled).
    for (const { answers } of results) expect(answers.filter((a) => a.status !== 200 && a.status !== 202)).toEqual([]);
    await expectContiguous(tasks, results);
    for (const taskId of tasks) expect((await db.prisma.adaptedHead.count({ where: { taskId } }))).toBe(6);
    // Predictions during the load: served or "not adapted yet", and never going back a version on one API.
    expect(predictions.seen.length).toBeGreaterThan(0);
    for (const s of predictions.seen) expect([200, 409]).toContain(s.status);
    for (const api of [0, 1]) {
      for (const taskId of tasks) {
        const versions = predictions.seen.filter((s) => s.api === api && s.taskId === taskId && s.status === 200).map((s) => s.headVersion!);
        expect(versions).toEqual([...versions].sort((a, b) => a - b));
      }
    }
    await expectLatestServed(tasks);
  }, 150_000);

  it('lose no adaptation and leave nothing running when a worker is SIGKILLed mid-load', async () => {
    /** Long enough to still be running when the load is under way on a loaded machine (~10 s here). */
    const ITERATIONS = 3000;
    const tasks = await newTasks(3);
    const family = await call(apis[0]!, 'POST', '/task-families', { headers, body: SINE });
    expect(family.status).toBe(201);
    const training = await call(apis[1]!, 'POST', '/meta-train', {
      headers,
      body: { familyIds: [(family.body as { id: string }).id], algorithm: 'fomaml', hyper: { ...QUICK, iterations: ITERATIONS, checkpointEvery: 50, evalEvery: 500 } },
    });
    expect(training.status).toBe(202);
    const jobId = (training.body as { id: string }).id;
    // The worker to kill is the one running the job, so the kill interrupts it for certain.
    const victim = await waitUntil(async () => workers.find((w) => w.logs('meta-train run started').some((l) => l.jobId === jobId)), 'the job to start', 60_000, 20);
    const survivor = workers.find((w) => w !== victim)!;

    const predictions = predictLoop(tasks);
    // Six clients adapting one after another, so adaptations are in flight on both workers throughout.
    let finished = 0;
    const clients = Array.from({ length: 6 }, async (_, c) => {
      const mine: AdaptDone[] = [];
      for (let i = 0; i < 5; i++) {
        const taskId = tasks[(c + i) % tasks.length]!;
        const first = (c + i) % 2;
        mine.push(await adaptToEnd([apis[first]!, apis[1 - first]!], headers, taskId, sinusoidSupport(10, 2 + i / 4, c / 3), 120_000));
        finished++;
      }
      return mine;
    });
    await waitUntil(async () => finished >= 6, 'the load to be under way', 60_000, 20);
    victim.kill('SIGKILL');
    expect((await victim.exited).signal).toBe('SIGKILL');
    expect(await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: jobId } })).toMatchObject({ status: 'running', attempts: 1 });

    const results = (await Promise.all(clients)).flat();
    await predictions.stop();
    expect(results).toHaveLength(30);
    // Predictions never noticed: served, or "not adapted yet" before a task's first head.
    for (const s of predictions.seen) expect([200, 409]).toContain(s.status);
    // Each was answered with its result or a 202 that polling completed; none failed.
    for (const { answers } of results) for (const a of answers) expect([200, 202], JSON.stringify(a)).toContain(a.status);
    await expectContiguous(tasks, results);

    // Nothing is left unfinished once the stalled-job check (and the reconciler) have done their work.
    await waitUntil(async () => (await db.prisma.adaptation.count({ where: { status: { in: ['queued', 'running'] } } })) === 0, 'no unfinished adaptation', 60_000, 200);
    const job = await waitUntil(async () => {
      const row = await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: jobId } });
      return row.status === 'queued' || row.status === 'running' ? undefined : row;
    }, 'the meta-training job to end', 120_000, 200);
    // Recovered by the survivor's stalled-job check and resumed there.
    expect(job).toMatchObject({ status: 'succeeded', iteration: ITERATIONS, attempts: 2 });
    expect(survivor.logs('job stalled (its worker stopped renewing the lock): back in the queue').map((l) => l.jobId)).toContain(jobId);
    expect(await db.prisma.metaTrainJob.count({ where: { status: { in: ['queued', 'running'] } } })).toBe(0);
    await expectLatestServed(tasks);
  }, 240_000);
});
