/**
 * Predictions from the latest adapted head: regression values and class labels with probabilities
 * that agree with the engine's tfjs predict; a cached head is served without Postgres; 409 for a task
 * never adapted, 404 for an unknown or foreign one, 400 naming the bad input.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeParams, initBackend, predict, taskParams, type MetaModel } from '../../src/meta/index.js';
import { blobsTask, sineTask, storeMetaModel } from './support/adapt-fixtures.js';
import { newTenant, startApi, startWorker, type TestApi } from './support/api-app.js';

let api: TestApi;
let worker: Awaited<ReturnType<typeof startWorker>>;
let tenant: Awaited<ReturnType<typeof newTenant>>;
let sine: Awaited<ReturnType<typeof storeMetaModel>>;
let blobs: Awaited<ReturnType<typeof storeMetaModel>>;

beforeAll(async () => {
  await initBackend('cpu');
  api = await startApi('predict', { MAX_PREDICT_INPUTS: '60' });
  worker = await startWorker(api);
  tenant = await newTenant(api.db);
  sine = await storeMetaModel(api.db, tenant.tenantId, { hidden: [40, 40] });
  blobs = await storeMetaModel(api.db, tenant.tenantId, { algorithm: 'anil', kind: 'classification', inputDim: 2, nWay: 3, hidden: [16] });
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
});

async function adaptedTask(metaModelId: string, support: { x: number[][]; y: number[] }): Promise<string> {
  const taskId = (await api.app.inject({ method: 'POST', url: '/tasks', headers: tenant.headers, payload: { metaModelId } })).json().id;
  const response = await api.app.inject({ method: 'POST', url: `/tasks/${taskId}/adapt`, headers: tenant.headers, payload: { support, steps: 5, innerLr: 0.05 } });
  expect(response.statusCode, response.body).toBe(200);
  return taskId;
}

/** What the engine's tfjs predict says for the task's stored head (the reference the API must match). */
async function enginePrediction(stored: Awaited<ReturnType<typeof storeMetaModel>>, taskId: string, x: number[][]) {
  const task = await api.db.prisma.task.findUniqueOrThrow({ where: { id: taskId }, include: { heads: { orderBy: { version: 'desc' }, take: 1 } } });
  const model: MetaModel = { algorithm: stored.algorithm, spec: stored.spec, params: stored.params, inner: stored.inner };
  return predict(stored.spec, taskParams(model, decodeParams(task.heads[0].params)), x);
}

describe('GET /predict and POST /tasks/:id/predict', () => {
  it('answer regression values from the latest head, as the engine computes them, from memory once cached', async () => {
    const task = sineTask(21);
    const taskId = await adaptedTask(sine.metaModelId, task.support);
    const get = await api.app.inject({ method: 'GET', url: `/predict?taskId=${taskId}&x=0.5&x=-1.25&x=3e0`, headers: tenant.headers });
    expect(get.statusCode).toBe(200);
    const body = get.json();
    expect(body).toMatchObject({ taskId, headVersion: 1 });
    const expected = await enginePrediction(sine, taskId, [[0.5], [-1.25], [3]]);
    if (expected.kind !== 'regression') throw new Error('wrong kind');
    body.predictions.forEach((p: number, i: number) => expect(p).toBeCloseTo(expected.values[i], 5));

    const post = await api.app.inject({ method: 'POST', url: `/tasks/${taskId}/predict`, headers: tenant.headers, payload: { x: [[0.5], [-1.25], [3]] } });
    expect(post.json()).toEqual(body);

    // The head is held in this process: with its rows gone from Postgres it still answers, from memory.
    const { hits } = api.app.predictCache;
    await api.db.prisma.adaptedHead.deleteMany({ where: { taskId } });
    const again = await api.app.inject({ method: 'GET', url: `/predict?taskId=${taskId}&x=0.5&x=-1.25&x=3`, headers: tenant.headers });
    expect(again.json()).toEqual(body);
    expect(api.app.predictCache.hits).toBe(hits + 1);
  });

  it('answer a label and class probabilities per input for classification (inputs of 2 numbers)', async () => {
    const task = blobsTask(22);
    const taskId = await adaptedTask(blobs.metaModelId, task.support);
    const query = task.query.x.slice(0, 6);
    const url = `/predict?taskId=${taskId}&${query.map((row) => `x=${row.join(',')}`).join('&')}`;
    const response = await api.app.inject({ method: 'GET', url, headers: tenant.headers });
    expect(response.statusCode).toBe(200);
    const { predictions } = response.json() as { predictions: { label: number; probabilities: number[] }[] };
    const expected = await enginePrediction(blobs, taskId, query);
    if (expected.kind !== 'classification') throw new Error('wrong kind');
    expect(predictions.map((p) => p.label)).toEqual(expected.labels);
    predictions.forEach((p, i) => {
      expect(p.probabilities).toHaveLength(3);
      expect(p.probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
      p.probabilities.forEach((v, j) => expect(v).toBeCloseTo(expected.probabilities[i][j], 5));
    });
  });

  it('answer 409 for a task never adapted, and 404 for an unknown task or another tenant\'s', async () => {
    const taskId = (await api.app.inject({ method: 'POST', url: '/tasks', headers: tenant.headers, payload: { metaModelId: sine.metaModelId } })).json().id;
    for (const request of [
      { method: 'GET' as const, url: `/predict?taskId=${taskId}&x=1` },
      { method: 'POST' as const, url: `/tasks/${taskId}/predict`, payload: { x: [[1]] } },
    ]) {
      const response = await api.app.inject({ ...request, headers: tenant.headers });
      expect(response.statusCode).toBe(409);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.json()).toMatchObject({ status: 409, taskId, detail: expect.stringMatching(/not been adapted/) });
    }
    const adapted = await adaptedTask(sine.metaModelId, sineTask(23).support);
    const stranger = await newTenant(api.db);
    expect((await api.app.inject({ method: 'GET', url: `/predict?taskId=${adapted}&x=1`, headers: stranger.headers })).statusCode).toBe(404);
    expect((await api.app.inject({ method: 'POST', url: `/tasks/${adapted}/predict`, headers: stranger.headers, payload: { x: [[1]] } })).statusCode).toBe(404);
    expect((await api.app.inject({ method: 'GET', url: '/predict?taskId=nope&x=1', headers: tenant.headers })).statusCode).toBe(404);
  });

  it('answer 400 naming the bad input', async () => {
    const taskId = await adaptedTask(sine.metaModelId, sineTask(24).support);
    const cases: Array<[string, string, 'GET' | 'POST', unknown?]> = [
      [`/predict?taskId=${taskId}&x=1&x=abc`, '/x/1', 'GET'],
      [`/predict?taskId=${taskId}&x=1,2`, '/x/0', 'GET'],
      [`/predict?taskId=${taskId}&x=1e999`, '/x/0', 'GET'],
      [`/predict?taskId=${taskId}&x=`, '/x/0', 'GET'],
      [`/predict?taskId=${taskId}`, '/x', 'GET'],
      [`/predict?x=1`, '/taskId', 'GET'],
      [`/predict?taskId=${taskId}&${Array.from({ length: 61 }, () => 'x=1').join('&')}`, '/x', 'GET'],
      [`/tasks/${taskId}/predict`, '/x/1', 'POST', { x: [[1], [1, 2]] }],
      [`/tasks/${taskId}/predict`, '/x', 'POST', { x: [] }],
      [`/tasks/${taskId}/predict`, '/x/0/0', 'POST', { x: [['1']] }],
    ];
    for (const [url, path, method, payload] of cases) {
      const response = await api.app.inject({ method, url, headers: tenant.headers, ...(payload === undefined ? {} : { payload: payload as object }) });
      expect(response.statusCode, `${url}: ${response.body}`).toBe(400);
      expect(response.json().errors).toEqual(expect.arrayContaining([expect.objectContaining({ path })]));
    }
  });
});
