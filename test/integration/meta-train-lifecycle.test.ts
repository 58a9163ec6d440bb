/**
 * The whole job lifecycle through the API with a real worker pool in this process (real Postgres and
 * Redis): queued -> running -> succeeded with progress, a metrics history and a meta-model version
 * whose `latest` alias moves with each new version; a running job cancelled through the API ends
 * `cancelled` promptly with nothing stored; a diverging configuration ends `failed` with no NaN stored.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/meta/backend.js';
import { newTenant, QUICK, SINE, startApi, startWorker, waitForJob, type TestApi } from './support/api-app.js';

let api: TestApi;
let worker: Awaited<ReturnType<typeof startWorker>>;
let headers: Record<string, string>;
let familyId: string;

type Job = {
  id: string;
  status: string;
  error: string | null;
  metaModelId: string | null;
  progress: { iteration: number; iterations: number };
  metrics: { iteration: number; trainLoss: number; valLoss: number } | null;
  startedAt: string | null;
  finishedAt: string | null;
  cancelRequested: boolean;
};

beforeAll(async () => {
  await initBackend('cpu');
  api = await startApi('lifecycle');
  worker = await startWorker(api);
  ({ headers } = await newTenant(api.db));
  familyId = ((await api.app.inject({ method: 'POST', url: '/task-families', headers, payload: SINE })).json() as { id: string }).id;
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
});

const start = async (payload: object) => {
  const response = await api.app.inject({ method: 'POST', url: '/meta-train', headers, payload });
  expect(response.statusCode, response.body).toBe(202);
  return response.json() as Job;
};

const ended = (job: Job) => ['succeeded', 'failed', 'cancelled'].includes(job.status);

describe('a job from queued to succeeded', () => {
  it('trains, records its learning curve, and stores meta-model versions with latest moving', async () => {
    const body = { name: 'sine-life', familyIds: [familyId], algorithm: 'maml', model: { hidden: [16, 16] }, hyper: QUICK };
    const first = await start(body);
    expect(first.status).toBe('queued');
    const done = await waitForJob<Job>(api, headers, first.id, ended);
    expect(done).toMatchObject({ status: 'succeeded', error: null, progress: { iteration: 40, iterations: 40 }, cancelRequested: false });
    expect(done.metrics).toMatchObject({ iteration: 40, trainLoss: expect.any(Number), valLoss: expect.any(Number) });
    expect(Date.parse(done.finishedAt!)).toBeGreaterThanOrEqual(Date.parse(done.startedAt!));

    const history = (await api.app.inject({ method: 'GET', url: `/meta-train/${first.id}/metrics`, headers })).json() as { items: { iteration: number; valLoss: number }[] };
    expect(history.items.map((m) => m.iteration)).toEqual([10, 20, 30, 40]);
    expect(history.items.every((m) => Number.isFinite(m.valLoss))).toBe(true);

    const v1 = (await api.app.inject({ method: 'GET', url: `/meta-models/${done.metaModelId}`, headers })).json();
    expect(v1).toMatchObject({ id: done.metaModelId, name: 'sine-life', version: 1, jobId: first.id, algorithm: 'maml', kind: 'regression', inputDim: 1, aliases: ['latest'] });

    const second = await waitForJob<Job>(api, headers, (await start({ ...body, hyper: { ...QUICK, seed: 4 } })).id, ended);
    expect(second.status).toBe('succeeded');
    const latest = (await api.app.inject({ method: 'GET', url: '/meta-models/sine-life@latest', headers })).json() as { id: string; version: number };
    expect(latest).toMatchObject({ id: second.metaModelId, version: 2 });
    expect(((await api.app.inject({ method: 'GET', url: '/meta-models/sine-life@1', headers })).json() as { aliases: string[] }).aliases).toEqual([]);
    const listed = (await api.app.inject({ method: 'GET', url: '/meta-train?status=succeeded', headers })).json() as { items: Job[] };
    expect(listed.items.map((j) => j.id)).toEqual(expect.arrayContaining([first.id, second.id]));
  });
});

describe('cancel', () => {
  it('stops a running job promptly; it ends cancelled with no meta-model', async () => {
    // Long enough (about 25 s even on the fused engine) that it cannot finish before the cancel lands.
    const job = await start({ familyIds: [familyId], algorithm: 'maml', model: { hidden: [40, 40] }, hyper: { ...QUICK, iterations: 100_000, evalEvery: 1000, checkpointEvery: 1000 } });
    const running = await waitForJob<Job>(api, headers, job.id, (j) => j.status === 'running' && j.progress.iteration > 0);
    const asked = Date.now();
    const cancel = await api.app.inject({ method: 'POST', url: `/meta-train/${job.id}/cancel`, headers });
    expect(cancel.statusCode, cancel.body).toBe(202);
    expect(cancel.json()).toMatchObject({ cancelRequested: true });
    const done = await waitForJob<Job>(api, headers, job.id, ended, 10_000);
    expect(Date.now() - asked).toBeLessThan(5_000);
    expect(done).toMatchObject({ status: 'cancelled', metaModelId: null });
    expect(done.progress.iteration).toBeGreaterThanOrEqual(running.progress.iteration);
    expect(done.progress.iteration).toBeLessThan(100_000);
    expect(await api.db.prisma.metaModel.count({ where: { jobId: job.id } })).toBe(0);
    expect((await api.app.inject({ method: 'POST', url: `/meta-train/${job.id}/cancel`, headers })).statusCode).toBe(409);
  });
});

describe('failure', () => {
  it('ends a diverging run failed with a readable error and stores no NaN', async () => {
    const job = await start({ familyIds: [familyId], algorithm: 'maml', model: { hidden: [16, 16] }, hyper: { ...QUICK, iterations: 200, innerLr: 1e5, metaLr: 1e5 } });
    const done = await waitForJob<Job>(api, headers, job.id, ended);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/finite|NaN|Infinity/i);
    expect(done.metaModelId).toBeNull();
    expect(await api.db.prisma.metaModel.count({ where: { jobId: job.id } })).toBe(0);
    const metrics = await api.db.prisma.jobMetric.findMany({ where: { jobId: job.id } });
    expect(metrics.every((m) => Number.isFinite(m.trainLoss) && Number.isFinite(m.valLoss))).toBe(true);
  });
});
