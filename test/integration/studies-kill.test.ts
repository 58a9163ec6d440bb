/**
 * A study survives its worker and its Redis (issue 23 item 3): worker processes (`--role worker`,
 * which run the study scheduler) on a private redis-server and database.
 * - The worker is SIGKILLed while a trial is running; a second worker recovers the stalled trial from
 *   its checkpoint and its scheduler, reading only Postgres, picks the winner, has it evaluated and
 *   finishes the study. (Two candidates: both are finalists, one rung to the top.)
 * - Redis is wiped (FLUSHALL) while a trial runs and another waits in the queue: the reconciler
 *   re-enqueues what Postgres says is queued, and the study finishes.
 */
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { StudyView } from '../../src/db/repositories/studies.js';
import { newTenant, SINE, startApi, type TestApi } from './support/api-app.js';
import { createPrivateDatabase, type PrivateDatabase } from './support/private-database.js';
import { freePort, PrivateRedis } from './support/services.js';
import { waitUntil } from './support/training-fixtures.js';
import { WorkerProcess } from './support/worker-process.js';

let redisServer: PrivateRedis;
let database: PrivateDatabase;
let api: TestApi;
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  redisServer = new PrivateRedis(await freePort());
  await redisServer.start();
  database = await createPrivateDatabase('studykill');
  api = await startApi('studykill', { DATABASE_URL: database.url }, redisServer.url);
}, 60_000);

afterEach(async () => {
  for (const worker of workers.splice(0)) {
    worker.kill('SIGKILL');
    await worker.exited;
  }
});

afterAll(async () => {
  await api?.close();
  await redisServer?.stop();
  await database?.drop();
});

function startWorker(env: Record<string, string> = {}): WorkerProcess {
  const worker = new WorkerProcess({
    DATABASE_URL: database.url,
    REDIS_URL: redisServer.url,
    QUEUE_PREFIX: api.prefix,
    LOCK_DURATION_MS: '2000',
    STALLED_INTERVAL_MS: '1000',
    RECONCILE_INTERVAL_MS: '600000',
    PROGRESS_INTERVAL_MS: '100',
    STUDY_INTERVAL_MS: '200',
    ...env,
  });
  workers.push(worker);
  return worker;
}

async function postStudy(name: string) {
  const tenant = await newTenant(api.db);
  const family = await api.app.inject({ method: 'POST', url: '/task-families', headers: tenant.headers, payload: SINE });
  const hyper = { metaBatchSize: 4, evalEvery: 250, checkpointEvery: 50 };
  const created = await api.app.inject({
    method: 'POST', url: '/studies', headers: tenant.headers,
    payload: { name, familyIds: [(family.json() as { id: string }).id], model: { hidden: [16, 16] }, candidates: [{ algorithm: 'maml', hyper }, { algorithm: 'reptile', hyper }], budget: { iterations: 3000 } },
  });
  expect(created.statusCode, created.body).toBe(202);
  return { tenant, study: created.json() as StudyView };
}

const studyEnded = (id: string) => waitUntil(async () => {
  const row = await api.db.prisma.study.findUniqueOrThrow({ where: { id } });
  return row.status === 'running' ? undefined : row;
}, 'the study to end', 120_000, 200);

it('Redis wiped mid-study: the reconciler re-enqueues the lost trial from Postgres and the study finishes', async () => {
  const { tenant, study } = await postStudy('flushed');
  const worker = startWorker({ RECONCILE_INTERVAL_MS: '1000' });
  const [running, waiting] = study.trials.map((t) => t.jobId!);
  await waitUntil(() => api.db.prisma.checkpoint.findFirst({ where: { jobId: running } }).then((c) => c ?? undefined), 'a checkpoint of the first trial', 60_000, 20);
  await api.redis.flushall();
  expect(await api.queues['meta-train'].getJob(waiting)).toBeUndefined();
  const done = await studyEnded(study.id);
  expect(done, worker.output()).toMatchObject({ status: 'succeeded', error: null });
  const view = (await api.app.inject({ method: 'GET', url: `/studies/${study.id}`, headers: tenant.headers })).json() as StudyView;
  expect(view.trials.map((t) => `${t.rung}:${t.status}`).sort()).toEqual(['0:dropped', '0:winner']);
  expect(worker.logs('reconciler re-enqueued jobs Redis had lost').flatMap((l) => (l.requeued as { id: string }[]).map((r) => r.id))).toContain(waiting);
}, 180_000);

it('a worker SIGKILLed mid-trial: the next worker resumes the trial and its scheduler finishes the study', async () => {
  const tenant = await newTenant(api.db);
  const family = await api.app.inject({ method: 'POST', url: '/task-families', headers: tenant.headers, payload: SINE });
  const hyper = { metaBatchSize: 4, evalEvery: 250, checkpointEvery: 50 };
  const created = await api.app.inject({
    method: 'POST', url: '/studies', headers: tenant.headers,
    payload: { name: 'survivor', familyIds: [(family.json() as { id: string }).id], model: { hidden: [16, 16] }, candidates: [{ algorithm: 'maml', hyper }, { algorithm: 'reptile', hyper }], budget: { iterations: 3000 } },
  });
  expect(created.statusCode, created.body).toBe(202);
  const study = created.json() as StudyView;
  expect(study.settings.rungs).toEqual([{ trials: 2, iterations: 1500 }]);

  const first = startWorker();
  // Killed once the first trial has a checkpoint, far from its end (1500 iterations; one checkpoint every 50).
  const trialJob = study.trials[0].jobId!;
  await waitUntil(() => api.db.prisma.checkpoint.findFirst({ where: { jobId: trialJob } }).then((c) => c ?? undefined), 'a checkpoint of the first trial', 60_000, 20);
  first.kill('SIGKILL');
  expect((await first.exited).signal).toBe('SIGKILL');
  expect(await api.db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: trialJob } })).toMatchObject({ status: 'running' });

  const second = startWorker();
  const done = await waitUntil(async () => {
    const row = await api.db.prisma.study.findUniqueOrThrow({ where: { id: study.id } });
    return row.status === 'running' ? undefined : row;
  }, 'the study to end', 120_000, 200);
  expect(done, second.output()).toMatchObject({ status: 'succeeded', error: null });
  const view = (await api.app.inject({ method: 'GET', url: `/studies/${study.id}`, headers: tenant.headers })).json() as StudyView;
  expect(view.trials.map((t) => `${t.rung}:${t.status}`).sort()).toEqual(['0:dropped', '0:winner']);
  // The killed trial was resumed, not restarted: its second run started from a checkpoint.
  expect(second.logs('meta-train run started').find((l) => l.jobId === trialJob)?.resumeFrom).toBeGreaterThan(0);
  // The second worker's scheduler picked the winner and judged it.
  expect(second.logs('study trials done; evaluating the winner').map((l) => l.studyId)).toContain(study.id);
  // Logged just after the row is written, so it may not be read yet when the row says the study ended.
  await second.waitForLog('study ended', (l) => l.studyId === study.id, 10_000);
  expect(await api.db.prisma.metaTrainJob.count({ where: { studyId: study.id } })).toBe(2);
}, 180_000);
