/**
 * Adaptation through the real path: HTTP, the adapt queue, an in-process worker, Postgres, the
 * adapted message and the reply. A meta-trained model adapted from 10 points beats the unadapted one
 * on held-out points; bad support sets are 400 naming the field; a diverging one is 200 with the
 * guarded head and `diverged: true` (422 with nothing stored under guard 'none', or when even the
 * meta-model is not finite on it); beyond the wait the answer is 202 with a Location that later
 * shows the result.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/meta/index.js';
import { mse, sineTask, storeMetaModel, trainSine, trainSineMaml } from './support/adapt-fixtures.js';
import { newTenant, startApi, startWorker, type TestApi } from './support/api-app.js';
import { waitUntil } from './support/training-fixtures.js';

let api: TestApi;
let worker: Awaited<ReturnType<typeof startWorker>>;
let tenant: Awaited<ReturnType<typeof newTenant>>;
let sine: Awaited<ReturnType<typeof storeMetaModel>>;

beforeAll(async () => {
  await initBackend('cpu');
  api = await startApi('adapt', { MAX_SUPPORT_EXAMPLES: '50', MAX_INNER_STEPS: '100' });
  worker = await startWorker(api);
  tenant = await newTenant(api.db);
  sine = await storeMetaModel(api.db, tenant.tenantId, { name: 'sine-maml', params: trainSineMaml(300), inner: { steps: 1, lr: 0.01 } });
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
});

async function newTask(metaModelId = sine.metaModelId, headers = tenant.headers): Promise<string> {
  const response = await api.app.inject({ method: 'POST', url: '/tasks', headers, payload: { metaModelId } });
  expect(response.statusCode).toBe(201);
  return response.json().id;
}

const adapt = (taskId: string, payload: Record<string, unknown>, headers = tenant.headers) =>
  api.app.inject({ method: 'POST', url: `/tasks/${taskId}/adapt`, headers, payload });

const predictGrid = async (taskId: string, x: number[][]) => {
  const response = await api.app.inject({ method: 'POST', url: `/tasks/${taskId}/predict`, headers: tenant.headers, payload: { x } });
  expect(response.statusCode).toBe(200);
  return response.json() as { headVersion: number; predictions: number[] };
};

describe('POST /tasks/:id/adapt', () => {
  it('stores head versions 1, 2 with the support loss lowered, and the adapted model beats the unadapted one on held-out points', async () => {
    const task = sineTask(11);
    const taskId = await newTask();
    const first = await adapt(taskId, { support: task.support, steps: 10, innerLr: 0.01 });
    expect(first.statusCode).toBe(200);
    const result = first.json();
    expect(result).toMatchObject({ taskId, headVersion: 1, steps: 10, adaptationId: expect.any(String) });
    expect(result.supportLoss.after).toBeLessThan(result.supportLoss.before);
    expect(result.durationMs).toBeGreaterThan(0);

    // steps 0 keeps the meta-model's parameters: the unadapted baseline, through the same API.
    const baselineId = await newTask();
    expect((await adapt(baselineId, { support: task.support, steps: 0 })).json()).toMatchObject({ headVersion: 1, steps: 0 });
    const adapted = mse((await predictGrid(taskId, task.query.x)).predictions, task.query.y);
    const unadapted = mse((await predictGrid(baselineId, task.query.x)).predictions, task.query.y);
    expect(adapted).toBeLessThan(unadapted * 0.8);

    const second = await adapt(taskId, { support: task.support });
    expect(second.json()).toMatchObject({ headVersion: 2, steps: 1 }); // the meta-model's own inner loop by default
    expect((await api.app.inject({ method: 'GET', url: `/tasks/${taskId}`, headers: tenant.headers })).json().headVersion).toBe(2);
    const adaptation = await api.app.inject({ method: 'GET', url: `/tasks/${taskId}/adaptations/${result.adaptationId}`, headers: tenant.headers });
    expect(adaptation.json()).toMatchObject({ status: 'succeeded', headVersion: 1, steps: 10, innerLr: 0.01, supportSize: 10, supportLoss: result.supportLoss, error: null });
  });

  it('gives concurrent adaptations of one task consecutive versions, each answered with its own', async () => {
    const taskId = await newTask();
    const responses = await Promise.all(Array.from({ length: 6 }, (_, i) => adapt(taskId, { support: sineTask(30 + i).support, steps: 2 })));
    expect(responses.map((r) => r.statusCode)).toEqual(Array(6).fill(200));
    expect(responses.map((r) => r.json().headVersion).sort()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(new Set(responses.map((r) => r.json().adaptationId)).size).toBe(6);
    expect((await api.app.inject({ method: 'GET', url: `/tasks/${taskId}`, headers: tenant.headers })).json().headVersion).toBe(6);
  });

  it('answers 202 with a Location at once for wait: false; the adaptation then succeeds', async () => {
    const taskId = await newTask();
    const response = await adapt(taskId, { support: sineTask(12).support, wait: false });
    expect(response.statusCode).toBe(202);
    const queued = response.json();
    expect(queued).toMatchObject({ taskId, status: 'queued', headVersion: null, supportSize: 10, steps: 1, innerLr: 0.01 });
    expect(response.headers.location).toBe(`/tasks/${taskId}/adaptations/${queued.id}`);
    const done = await waitUntil(async () => {
      const row = (await api.app.inject({ method: 'GET', url: response.headers.location as string, headers: tenant.headers })).json();
      return row.status === 'succeeded' ? row : undefined;
    }, 'the adaptation to succeed', 20_000);
    expect(done).toMatchObject({ headVersion: 1, supportLoss: { before: expect.any(Number), after: expect.any(Number) } });
  });

  it("answers 200 with the guarded head and diverged: true for a diverging adaptation; 422 with guard 'none'", async () => {
    const task = sineTask(13);
    const guarded = await adapt(await newTask(), { support: task.support, steps: 20, innerLr: 50 });
    expect(guarded.statusCode).toBe(200);
    const { supportLoss } = guarded.json();
    expect(supportLoss).toMatchObject({ diverged: true, before: supportLoss.trace[0], after: supportLoss.trace[supportLoss.bestStep] });
    expect(supportLoss.trace).toHaveLength(21);
    expect(supportLoss.after).toBeLessThanOrEqual(supportLoss.before);
    // The raw last step of the same run is not finite: refused, nothing stored.
    const rawTask = await newTask();
    const raw = await adapt(rawTask, { support: task.support, steps: 20, innerLr: 50, guard: 'none' });
    expect(supportLoss.trace[20]).toBeNull();
    expect(raw.statusCode).toBe(422);
    expect(await api.db.prisma.adaptedHead.count({ where: { taskId: rawTask } })).toBe(0);
  });

  it('answers 422 for a support set on which even the meta-model is not finite, and stores nothing', async () => {
    const taskId = await newTask();
    const task = sineTask(13);
    const response = await adapt(taskId, { support: { x: task.support.x, y: task.support.y.map((y) => y * 1e30) }, steps: 100, innerLr: 50 });
    expect(response.statusCode).toBe(422);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.json()).toMatchObject({ title: 'Adaptation failed', adaptationId: expect.any(String) });
    expect((await api.app.inject({ method: 'GET', url: `/tasks/${taskId}`, headers: tenant.headers })).json().headVersion).toBeNull();
    expect(await api.db.prisma.adaptedHead.count({ where: { taskId } })).toBe(0);
    const row = (await api.app.inject({ method: 'GET', url: `/tasks/${taskId}/adaptations/${response.json().adaptationId}`, headers: tenant.headers })).json();
    expect(row).toMatchObject({ status: 'failed', headVersion: null, error: expect.any(String) });
  });

  it('answers 400 naming the field for support sets that do not fit the task, and writes no adaptation', async () => {
    const taskId = await newTask();
    const blobs = await storeMetaModel(api.db, tenant.tenantId, { algorithm: 'protonet', kind: 'classification', inputDim: 2, nWay: 3, hidden: [8] });
    const classTask = await newTask(blobs.metaModelId);
    const x10 = sineTask(14).support.x;
    const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
      [taskId, { support: { x: [[1], [2, 3]], y: [1, 2] } }, '/support/x/1', /inputDim is 1/],
      [taskId, { support: { x: [[1], [2]], y: [1] } }, '/support/y', /one target per row/],
      [taskId, { support: { x: [[1], [1e39]], y: [1, 2] } }, '/support/x/1/0', /finite/],
      [taskId, { support: { x: x10, y: x10.map(() => 0) }, steps: 101 }, '/steps', /./],
      [taskId, { support: { x: x10, y: x10.map(() => 0) }, innerLr: 0 }, '/innerLr', /./],
      [taskId, { support: { x: Array(51).fill([0]), y: Array(51).fill(0) } }, '/support/x', /./],
      [taskId, { support: { x: [], y: [] } }, '/support/x', /./],
      [classTask, { support: { x: [[0, 0], [1, 1]], y: [0, 3] } }, '/support/y/1', /integer 0\.\.2/],
      [classTask, { support: { x: [[0, 0], [1, 1]], y: [0, 1.5] } }, '/support/y/1', /class label/],
    ];
    for (const [id, payload, path, message] of cases) {
      const response = await adapt(id, payload);
      expect(response.statusCode, `${path}: ${response.body}`).toBe(400);
      expect(response.json().errors).toEqual(expect.arrayContaining([expect.objectContaining({ path, message: expect.stringMatching(message) })]));
    }
    expect(await api.db.prisma.adaptation.count({ where: { taskId: { in: [taskId, classTask] } } })).toBe(0);
  });

  it("answers 404 for an unknown task and another tenant's", async () => {
    const taskId = await newTask();
    const stranger = await newTenant(api.db);
    for (const [id, headers] of [['nope', tenant.headers], [taskId, stranger.headers]] as const) {
      const response = await adapt(id, { support: sineTask(15).support }, headers);
      expect(response.statusCode).toBe(404);
    }
    expect((await api.app.inject({ method: 'GET', url: `/tasks/${taskId}/adaptations/nope`, headers: tenant.headers })).statusCode).toBe(404);
  });
});

describe('the guarded inner loop (issue 13)', () => {
  it('Meta-SGD meta-trained with one inner step, adapted with 10: every answer is 200, the diverging ones flagged, no head fits the support set worse than the meta-model', async () => {
    const metasgd = await storeMetaModel(api.db, tenant.tenantId, { algorithm: 'metasgd', params: trainSine('metasgd', 600, { metaLr: 0.001, metaBatchSize: 25 }), inner: { steps: 1, lr: 0.01 } });
    const answers = await Promise.all([21, 22, 23, 24, 25, 26].map(async (seed) => {
      const task = sineTask(seed, 0.5 + (seed % 5), seed % 3);
      const taskId = await newTask(metasgd.metaModelId);
      const response = await adapt(taskId, { support: task.support, steps: 10 });
      expect(response.statusCode).toBe(200);
      const { supportLoss } = response.json();
      expect(supportLoss.after).toBeLessThanOrEqual(supportLoss.before);
      expect(supportLoss.trace).toHaveLength(11);
      // The stored head serves finite predictions, and the adaptation resource shows the same record.
      expect((await predictGrid(taskId, task.query.x)).predictions.every(Number.isFinite)).toBe(true);
      const stored = (await api.app.inject({ method: 'GET', url: `/tasks/${taskId}/adaptations/${response.json().adaptationId}`, headers: tenant.headers })).json();
      expect(stored).toMatchObject({ guard: 'best', supportLoss });
      return supportLoss as { diverged: boolean; trace: (number | null)[] };
    }));
    // The learned rates were meta-trained for one step: run for ten, they overshoot on some tasks.
    expect(answers.some((loss) => loss.diverged)).toBe(true);
  });
});

describe('beyond the wait limit', () => {
  it('answers 202 with a Location when no worker finishes in ADAPT_WAIT_MS, and the adaptation completes once one runs', async () => {
    const slow = await startApi('adapt-wait', { ADAPT_WAIT_MS: '300' });
    try {
      const owner = await newTenant(slow.db);
      const model = await storeMetaModel(slow.db, owner.tenantId, { hidden: [8] });
      const taskId = (await slow.app.inject({ method: 'POST', url: '/tasks', headers: owner.headers, payload: { metaModelId: model.metaModelId } })).json().id;
      const started = Date.now();
      const response = await slow.app.inject({ method: 'POST', url: `/tasks/${taskId}/adapt`, headers: owner.headers, payload: { support: sineTask(16).support } });
      expect(response.statusCode).toBe(202);
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
      expect(response.json()).toMatchObject({ status: 'queued' });
      const poolOnItsQueue = await startWorker(slow);
      try {
        const done = await waitUntil(async () => {
          const row = (await slow.app.inject({ method: 'GET', url: response.headers.location as string, headers: owner.headers })).json();
          return row.status === 'succeeded' ? row : undefined;
        }, 'the queued adaptation to run', 20_000);
        expect(done.headVersion).toBe(1);
      } finally {
        await poolOnItsQueue.close();
      }
    } finally {
      await slow.close();
    }
  });
});
