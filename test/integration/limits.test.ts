/**
 * Every input limit is a setting and is answered with a clear 4xx problem naming the field, and a
 * refused request stores nothing: body size (413), dataset tasks, examples per task, hidden units,
 * iterations, inner steps, and meta-training jobs queued or running per tenant (429, also under a
 * burst of simultaneous requests). No worker runs here: accepted jobs stay queued.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newTenant, SINE, startApi, type TestApi } from './support/api-app.js';

const LIMITS = {
  MAX_BODY_BYTES: '4096',
  MAX_DATASET_TASKS: '3',
  MAX_SUPPORT_EXAMPLES: '8',
  MAX_HIDDEN_UNITS: '16',
  MAX_ITERATIONS: '500',
  MAX_INNER_STEPS: '4',
  MAX_CONCURRENT_JOBS_PER_TENANT: '2',
};

let api: TestApi;

beforeAll(async () => {
  api = await startApi('limits', LIMITS);
});

afterAll(async () => {
  await api?.close();
});

type Response = Awaited<ReturnType<TestApi['app']['inject']>>;

function problem(response: Response, status: number) {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  return response.json() as { status: number; detail: string; errors?: { path: string; message: string }[]; limit?: number; active?: number };
}

async function tenantWithFamily() {
  const tenant = await newTenant(api.db);
  const family = await api.app.inject({ method: 'POST', url: '/task-families', headers: tenant.headers, payload: SINE });
  expect(family.statusCode).toBe(201);
  return { ...tenant, familyId: (family.json() as { id: string }).id };
}

const rows = (tenantId: string) => Promise.all([
  api.db.prisma.taskFamily.count({ where: { tenantId } }),
  api.db.prisma.metaTrainJob.count({ where: { tenantId } }),
]);

const lineTask = (examples: number) => ({ x: Array.from({ length: examples }, (_, i) => [i]), y: Array.from({ length: examples }, (_, i) => 2 * i) });

describe('input limits', () => {
  it('answers each one with 400 or 413 naming the field, and stores nothing', async () => {
    const tenant = await tenantWithFamily();
    const before = await rows(tenant.tenantId);
    const post = (url: string, payload: object) => api.app.inject({ method: 'POST', url, headers: tenant.headers, payload });
    const job = (extra: object) => post('/meta-train', { familyIds: [tenant.familyId], algorithm: 'maml', ...extra });

    const cases: [string, Response, number, string | null][] = [
      ['MAX_BODY_BYTES', await post('/task-families', { ...SINE, name: 'x'.repeat(5000) }), 413, null],
      ['MAX_DATASET_TASKS', await post('/task-families', { name: 'd', kind: 'regression', inputDim: 1, tasks: Array.from({ length: 4 }, () => lineTask(4)) }), 400, '/tasks'],
      ['MAX_SUPPORT_EXAMPLES (examples per task)', await post('/task-families', { name: 'd', kind: 'regression', inputDim: 1, tasks: [lineTask(9)] }), 400, '/tasks/0/x'],
      ['MAX_SUPPORT_EXAMPLES (shots)', await job({ hyper: { shots: 9 } }), 400, '/hyper/shots'],
      ['MAX_HIDDEN_UNITS', await job({ model: { hidden: [16, 17] } }), 400, '/model/hidden/1'],
      ['MAX_ITERATIONS', await job({ hyper: { iterations: 501 } }), 400, '/hyper/iterations'],
      ['MAX_INNER_STEPS', await job({ hyper: { innerSteps: 5 } }), 400, '/hyper/innerSteps'],
    ];
    for (const [limit, response, status, path] of cases) {
      const body = problem(response, status);
      if (path === null) expect(body.detail, limit).toMatch(/body/i);
      else expect(body.errors?.map((e) => e.path), limit).toContain(path);
    }
    expect(await rows(tenant.tenantId)).toEqual(before);

    // Right at each limit is accepted.
    expect((await post('/task-families', { name: 'd', kind: 'regression', inputDim: 1, tasks: Array.from({ length: 3 }, () => lineTask(8)) })).statusCode).toBe(201);
    expect((await job({ model: { hidden: [16, 16] }, hyper: { iterations: 500, innerSteps: 4, shots: 8, queryShots: 8 } })).statusCode).toBe(202);
  });
});

describe('MAX_CONCURRENT_JOBS_PER_TENANT', () => {
  const body = (familyId: string, seed: number) => ({ familyIds: [familyId], algorithm: 'fomaml', hyper: { iterations: 10, seed } });

  it('answers 429 once the tenant has that many jobs queued or running, and again accepts when one ends', async () => {
    const tenant = await tenantWithFamily();
    const start = (seed: number, extra: Record<string, string> = {}) =>
      api.app.inject({ method: 'POST', url: '/meta-train', headers: { ...tenant.headers, ...extra }, payload: body(tenant.familyId, seed) });

    const first = await start(1, { 'idempotency-key': 'first' });
    expect(first.statusCode).toBe(202);
    expect((await start(2)).statusCode).toBe(202);
    const refused = problem(await start(3), 429);
    expect(refused).toMatchObject({ status: 429, limit: 2, active: 2 });
    expect(refused.detail).toMatch(/already has 2 meta-training jobs queued or running \(limit 2\)/);
    expect((await rows(tenant.tenantId))[1]).toBe(2);
    expect(await api.queues['meta-train'].getJobCountByTypes('waiting', 'prioritized')).toBeGreaterThanOrEqual(2);

    // An idempotent replay is not a new job: it still answers 200.
    expect((await start(1, { 'idempotency-key': 'first' })).statusCode).toBe(200);

    // The limit is per tenant.
    const other = await tenantWithFamily();
    expect((await api.app.inject({ method: 'POST', url: '/meta-train', headers: other.headers, payload: body(other.familyId, 1) })).statusCode).toBe(202);

    // Cancelling one frees a place.
    const id = (first.json() as { id: string }).id;
    expect((await api.app.inject({ method: 'POST', url: `/meta-train/${id}/cancel`, headers: tenant.headers })).statusCode).toBe(202);
    expect((await start(4)).statusCode).toBe(202);
    expect(problem(await start(5), 429).active).toBe(2);
  });

  it('holds under a burst of simultaneous requests', async () => {
    const tenant = await tenantWithFamily();
    const answers = await Promise.all(Array.from({ length: 8 }, (_, seed) =>
      api.app.inject({ method: 'POST', url: '/meta-train', headers: tenant.headers, payload: body(tenant.familyId, seed) })));
    expect(answers.map((a) => a.statusCode).sort()).toEqual([202, 202, 429, 429, 429, 429, 429, 429]);
    expect(await api.db.prisma.metaTrainJob.count({ where: { tenantId: tenant.tenantId, status: 'queued' } })).toBe(2);
  });
});
