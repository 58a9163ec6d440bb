/**
 * POST /meta-train and the job resource, API side, on the real Postgres and Redis (no worker runs
 * here: queued jobs stay queued): validation against the families and the algorithm, limits, the
 * 202 + Location + enqueued BullMQ job, idempotency (incl. a race), list with cursor and status,
 * cancel of a queued job, 409 for an ended one, metrics history, tenancy.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_HYPER_NAMES, DEFAULT_HYPER } from '../../src/meta/index.js';
import { newTenant, SINE, startApi, type TestApi } from './support/api-app.js';

let api: TestApi;
let headers: Record<string, string>;
let tenantId: string;
let sineId: string;
let blobsId: string;

beforeAll(async () => {
  api = await startApi('meta-train', { MAX_ITERATIONS: '5000', MAX_HIDDEN_UNITS: '64' });
  ({ headers, tenantId } = await newTenant(api.db));
  sineId = ((await api.app.inject({ method: 'POST', url: '/task-families', headers, payload: SINE })).json() as { id: string }).id;
  const blobs = { name: 'blobs', kind: 'classification', inputDim: 2, nWay: 3, generator: { type: 'gaussian-blobs' } };
  blobsId = ((await api.app.inject({ method: 'POST', url: '/task-families', headers, payload: blobs })).json() as { id: string }).id;
});

afterAll(async () => {
  await api?.close();
});

type Job = { id: string; status: string; name: string; hyper: Record<string, number | boolean>; model: { hidden: number[] }; progress: { iteration: number; iterations: number } };

const start = (payload: object, extra: Record<string, string> = {}, h = headers) =>
  api.app.inject({ method: 'POST', url: '/meta-train', headers: { ...h, ...extra }, payload });

function problem(response: { statusCode: number; body: string; headers: Record<string, unknown>; json(): unknown }, status: number) {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  return response.json() as { detail: string; errors?: { path: string; message: string }[] };
}

describe('POST /meta-train', () => {
  it('answers 202 with Location and the queued job, defaults applied, and enqueues its id only', async () => {
    const response = await start({ familyIds: [sineId], algorithm: 'maml', model: { hidden: [40, 40] }, hyper: { iterations: 50, shots: 5 } });
    expect(response.statusCode).toBe(202);
    const job = response.json() as Job;
    expect(response.headers.location).toBe(`/meta-train/${job.id}`);
    expect(job).toMatchObject({
      name: 'sine-maml',
      status: 'queued',
      algorithm: 'maml',
      familyIds: [sineId],
      model: { hidden: [40, 40], activation: 'relu' },
      hyper: { iterations: 50, shots: 5, queryShots: 10, metaBatchSize: 25, innerSteps: 1, seed: 0 },
      progress: { iteration: 0, iterations: 50 },
      metrics: null,
      metaModelId: null,
      error: null,
      startedAt: null,
      finishedAt: null,
    });
    // Exactly the documented fields; the engine-only ones (evalTasks) stay in the row for the worker.
    expect(Object.keys(job.hyper).sort()).toEqual(API_HYPER_NAMES.filter((name) => name !== 'clipNorm').sort());
    const row = await api.db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: job.id } });
    expect(row.hyper).toMatchObject({ evalTasks: DEFAULT_HYPER.evalTasks });
    const queued = await api.queues['meta-train'].getJob(job.id);
    expect(queued?.data).toEqual({ jobId: job.id });
    expect((await api.app.inject({ method: 'GET', url: `/meta-train/${job.id}`, headers })).json()).toEqual(job);
  });

  it('refuses unknown, foreign and mismatched families, naming the entry', async () => {
    const other = await newTenant(api.db);
    const theirs = ((await api.app.inject({ method: 'POST', url: '/task-families', headers: other.headers, payload: SINE })).json() as { id: string }).id;
    expect(problem(await start({ familyIds: [sineId, theirs], algorithm: 'maml' }), 400).errors?.[0].path).toBe('/familyIds/1');
    expect(problem(await start({ familyIds: ['nope'], algorithm: 'maml' }), 400).errors?.[0].path).toBe('/familyIds/0');
    const mismatch = problem(await start({ familyIds: [sineId, blobsId], algorithm: 'maml' }), 400);
    expect(mismatch.errors?.[0]).toMatchObject({ path: '/familyIds/1', message: expect.stringMatching(/must agree/) });
    expect(problem(await start({ familyIds: [sineId, sineId], algorithm: 'maml' }), 400).errors?.[0].path).toBe('/familyIds');
  });

  it('refuses protonet on regression and accepts it on classification', async () => {
    expect(problem(await start({ familyIds: [sineId], algorithm: 'protonet' }), 400).errors?.[0]).toMatchObject({ path: '/algorithm', message: expect.stringMatching(/classification/) });
    expect((await start({ familyIds: [blobsId], algorithm: 'protonet', hyper: { iterations: 10 } })).statusCode).toBe(202);
  });

  it('takes zeroHead where a head is meta-learned and refuses it where none is', async () => {
    expect(problem(await start({ familyIds: [blobsId], algorithm: 'protonet', hyper: { zeroHead: true } }), 400).errors?.[0]).toMatchObject({ path: '/hyper/zeroHead', message: expect.stringMatching(/no head/) });
    expect(problem(await start({ familyIds: [blobsId], algorithm: 'maml', hyper: { zeroHead: 'yes' } }), 400).errors?.[0].path).toBe('/hyper/zeroHead');
    const job = (await start({ familyIds: [blobsId], algorithm: 'anil', hyper: { iterations: 10, zeroHead: true } })).json() as Job;
    expect(job.hyper.zeroHead).toBe(true);
  });

  it('applies the configured limits and names the field', async () => {
    expect(problem(await start({ familyIds: [sineId], algorithm: 'maml', hyper: { iterations: 5001 } }), 400).errors?.[0].path).toBe('/hyper/iterations');
    expect(problem(await start({ familyIds: [sineId], algorithm: 'maml', model: { hidden: [40, 65] } }), 400).errors?.[0].path).toBe('/model/hidden/1');
    expect(problem(await start({ familyIds: [sineId], algorithm: 'maml', hyper: { innerSteps: 101 } }), 400).errors?.[0].path).toBe('/hyper/innerSteps');
    expect(problem(await start({ familyIds: [sineId], algorithm: 'maml', hyper: { metaLr: 0 } }), 400).errors?.[0].path).toBe('/hyper/metaLr');
    expect(problem(await start({ familyIds: [sineId], algorithm: 'adam' }), 400).errors?.[0].path).toBe('/algorithm');
    expect(problem(await start({ familyIds: [sineId], algorithm: 'maml', extra: 1 }), 400).errors?.[0]).toMatchObject({ path: '/extra', message: 'is not allowed' });
  });

  it('refuses shots a dataset family cannot draw', async () => {
    const tasks = Array.from({ length: 2 }, () => ({ x: [[0], [1], [2], [3], [4], [5]], y: [0, 1, 2, 3, 4, 5] }));
    const small = ((await api.app.inject({ method: 'POST', url: '/task-families', headers, payload: { name: 'six', kind: 'regression', inputDim: 1, tasks } })).json() as { id: string }).id;
    expect(problem(await start({ familyIds: [small], algorithm: 'maml', hyper: { shots: 5, queryShots: 5 } }), 400).errors?.[0].path).toBe('/hyper/shots');
    expect((await start({ familyIds: [small], algorithm: 'maml', hyper: { shots: 3, queryShots: 3, iterations: 5 } })).statusCode).toBe(202);
  });
});

describe('idempotency', () => {
  const body = () => ({ familyIds: [sineId], algorithm: 'fomaml', hyper: { iterations: 20, seed: 7 } });

  it('returns the same job (200) for the same key and body, whatever the key order', async () => {
    const first = await start(body(), { 'idempotency-key': 'run-1' });
    expect(first.statusCode).toBe(202);
    const reordered = { hyper: { seed: 7, iterations: 20 }, algorithm: 'fomaml', familyIds: [sineId] };
    const again = await start(reordered, { 'idempotency-key': 'run-1' });
    expect(again.statusCode).toBe(200);
    expect(again.headers.location).toBe(first.headers.location);
    expect((again.json() as Job).id).toBe((first.json() as Job).id);
    expect(await api.db.prisma.metaTrainJob.count({ where: { tenantId, idempotencyKey: 'run-1' } })).toBe(1);
  });

  it('answers 422 for the same key with a different body', async () => {
    await start(body(), { 'idempotency-key': 'run-2' });
    const changed = problem(await start({ ...body(), hyper: { iterations: 21, seed: 7 } }, { 'idempotency-key': 'run-2' }), 422);
    expect(changed.detail).toMatch(/different request body/);
  });

  it('creates one job when requests with one key race', async () => {
    const answers = await Promise.all(Array.from({ length: 6 }, () => start(body(), { 'idempotency-key': 'race' })));
    const ids = new Set(answers.map((a) => (a.json() as Job).id));
    expect(ids.size).toBe(1);
    expect(answers.map((a) => a.statusCode).sort()).toEqual([200, 200, 200, 200, 200, 202]);
  });

  it('frees a key after IDEMPOTENCY_TTL_MS: the same key then makes a new job, the old one keeps the rest', async () => {
    // A tenant of its own, so its queued jobs do not count against the shared tenant's job limit.
    const own = await newTenant(api.db);
    const family = ((await api.app.inject({ method: 'POST', url: '/task-families', headers: own.headers, payload: SINE })).json() as { id: string }).id;
    const request = (iterations: number) => ({ familyIds: [family], algorithm: 'fomaml', hyper: { iterations, seed: 7 } });
    const first = (await start(request(20), { 'idempotency-key': 'expiring' }, own.headers)).json() as Job;
    // Age the job past the default time to live (24 h) instead of waiting.
    await api.db.prisma.metaTrainJob.update({ where: { id: first.id }, data: { createdAt: new Date(Date.now() - 25 * 3600_000) } });
    const changedBody = await start(request(22), { 'idempotency-key': 'expiring' }, own.headers);
    expect(changedBody.statusCode).toBe(202);
    const second = changedBody.json() as Job;
    expect(second.id).not.toBe(first.id);
    expect((await start(request(20), { 'idempotency-key': 'expiring' }, own.headers)).statusCode).toBe(422);
    const old = await api.db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: first.id } });
    expect(old).toMatchObject({ idempotencyKey: null, requestHash: null, iterations: 20 });
  });

  it('scopes keys per tenant', async () => {
    const other = await newTenant(api.db);
    const family = ((await api.app.inject({ method: 'POST', url: '/task-families', headers: other.headers, payload: SINE })).json() as { id: string }).id;
    const theirs = await start({ familyIds: [family], algorithm: 'maml' }, { 'idempotency-key': 'run-1' }, other.headers);
    expect(theirs.statusCode).toBe(202);
  });
});

describe('list, get, cancel, metrics', () => {
  it('lists newest first with a cursor and filters by status', async () => {
    const tenant = await newTenant(api.db);
    const family = ((await api.app.inject({ method: 'POST', url: '/task-families', headers: tenant.headers, payload: SINE })).json() as { id: string }).id;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(((await start({ familyIds: [family], algorithm: 'reptile', hyper: { iterations: 10 } }, {}, tenant.headers)).json() as Job).id);
    await api.app.inject({ method: 'POST', url: `/meta-train/${ids[1]}/cancel`, headers: tenant.headers });
    const pages: string[][] = [];
    let cursor: string | null = null;
    do {
      const url: string = `/meta-train?limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page = (await api.app.inject({ method: 'GET', url, headers: tenant.headers })).json() as { items: Job[]; nextCursor: string | null };
      pages.push(page.items.map((j) => j.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(pages.flat()).toEqual([...ids].reverse());
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    const cancelled = (await api.app.inject({ method: 'GET', url: '/meta-train?status=cancelled', headers: tenant.headers })).json() as { items: Job[] };
    expect(cancelled.items.map((j) => j.id)).toEqual([ids[1]]);
    const queued = (await api.app.inject({ method: 'GET', url: '/meta-train?status=queued&limit=10', headers: tenant.headers })).json() as { items: Job[] };
    expect(queued.items).toHaveLength(4);
    expect(problem(await api.app.inject({ method: 'GET', url: '/meta-train?status=done', headers: tenant.headers }), 400).errors?.[0].path).toBe('/status');
  });

  it('cancels a queued job at once (202, off the queue) and answers 409 once it ended', async () => {
    const job = (await start({ familyIds: [sineId], algorithm: 'maml', hyper: { iterations: 10 } })).json() as Job;
    expect(await api.queues['meta-train'].getJob(job.id)).toBeTruthy();
    const cancel = await api.app.inject({ method: 'POST', url: `/meta-train/${job.id}/cancel`, headers });
    expect(cancel.statusCode).toBe(202);
    expect(cancel.json()).toMatchObject({ id: job.id, status: 'cancelled', cancelRequested: true, finishedAt: expect.any(String) });
    expect(await api.queues['meta-train'].getJob(job.id)).toBeUndefined();
    const again = problem(await api.app.inject({ method: 'POST', url: `/meta-train/${job.id}/cancel`, headers }), 409);
    expect(again.detail).toMatch(/already ended \(cancelled\)/);
  });

  it('marks a running job cancel-requested (its worker ends it) and publishes the request', async () => {
    const job = (await start({ familyIds: [sineId], algorithm: 'maml', hyper: { iterations: 10 } })).json() as Job;
    await api.db.prisma.metaTrainJob.update({ where: { id: job.id }, data: { status: 'running', attempts: 1 } });
    const subscriber = api.redis.duplicate();
    const received = new Promise<string>((resolve) => subscriber.on('message', (_channel: string, message: string) => resolve(message)));
    await subscriber.subscribe(`${api.prefix}:cancel`);
    const cancel = await api.app.inject({ method: 'POST', url: `/meta-train/${job.id}/cancel`, headers });
    expect(cancel.statusCode).toBe(202);
    expect(cancel.json()).toMatchObject({ status: 'running', cancelRequested: true, finishedAt: null });
    expect(await received).toBe(job.id);
    await subscriber.quit();
  });

  it('serves the metrics history oldest first', async () => {
    const job = (await start({ familyIds: [sineId], algorithm: 'maml', hyper: { iterations: 10 } })).json() as Job;
    await api.db.prisma.jobMetric.createMany({
      data: [
        { jobId: job.id, iteration: 10, trainLoss: 1.5, valLoss: 1.75 },
        { jobId: job.id, iteration: 5, trainLoss: 2.5, valLoss: 2.25 },
      ],
    });
    const metrics = (await api.app.inject({ method: 'GET', url: `/meta-train/${job.id}/metrics`, headers })).json() as { items: unknown[] };
    expect(metrics.items).toEqual([
      { iteration: 5, trainLoss: 2.5, valLoss: 2.25, at: expect.any(String) },
      { iteration: 10, trainLoss: 1.5, valLoss: 1.75, at: expect.any(String) },
    ]);
  });

  it("answers 404 for another tenant's job on every route", async () => {
    const job = (await start({ familyIds: [sineId], algorithm: 'maml', hyper: { iterations: 10 } })).json() as Job;
    const other = await newTenant(api.db);
    for (const [method, url] of [['GET', `/meta-train/${job.id}`], ['GET', `/meta-train/${job.id}/metrics`], ['POST', `/meta-train/${job.id}/cancel`], ['GET', `/meta-train/${job.id}/events`]] as const) {
      problem(await api.app.inject({ method, url, headers: other.headers }), 404);
    }
    expect((await api.app.inject({ method: 'GET', url: `/meta-train/${job.id}`, headers })).json()).toMatchObject({ status: 'queued' });
  });
});
