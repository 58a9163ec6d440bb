/** Tasks: created from a meta-model reference (id, name@version, name@alias), read, listed in pages, per tenant. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeMetaModel } from './support/adapt-fixtures.js';
import { newTenant, startApi, type TestApi } from './support/api-app.js';

let api: TestApi;
let owner: Awaited<ReturnType<typeof newTenant>>;
let model: Awaited<ReturnType<typeof storeMetaModel>>;
let blobs: Awaited<ReturnType<typeof storeMetaModel>>;

beforeAll(async () => {
  api = await startApi('tasks');
  owner = await newTenant(api.db);
  model = await storeMetaModel(api.db, owner.tenantId, { hidden: [8] });
  blobs = await storeMetaModel(api.db, owner.tenantId, { algorithm: 'protonet', kind: 'classification', inputDim: 2, nWay: 4, hidden: [8] });
});

afterAll(async () => {
  await api?.close();
});

const post = (payload: Record<string, unknown>, headers = owner.headers) => api.app.inject({ method: 'POST', url: '/tasks', headers, payload });

describe('POST /tasks', () => {
  it.each([
    ['its id', () => model.metaModelId],
    ['name@version', () => `${model.name}@1`],
    ['name@alias', () => `${model.name}@latest`],
  ])('binds a task to a meta-model named by %s', async (_how, ref) => {
    const response = await post({ metaModelId: ref(), name: 'customer-42' });
    expect(response.statusCode).toBe(201);
    const task = response.json();
    expect(task).toMatchObject({ metaModelId: model.metaModelId, name: 'customer-42', kind: 'regression', inputDim: 1, headVersion: null });
    expect(task.nWay).toBeUndefined();
    expect(response.headers.location).toBe(`/tasks/${task.id}`);
  });

  it("copies a classification model's ways", async () => {
    const response = await post({ metaModelId: blobs.metaModelId });
    expect(response.statusCode).toBe(201);
    expect(response.json()).toMatchObject({ kind: 'classification', inputDim: 2, nWay: 4, headVersion: null });
  });

  it('answers 400 naming metaModelId for an unknown model, another tenant\'s, or a malformed reference', async () => {
    const stranger = await newTenant(api.db);
    for (const [ref, headers] of [['no-such-model@latest', owner.headers], [model.metaModelId, stranger.headers], [`${model.name}@`, owner.headers]] as const) {
      const response = await post({ metaModelId: ref }, headers);
      expect(response.statusCode).toBe(400);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.json().errors).toEqual([expect.objectContaining({ path: '/metaModelId', message: expect.stringMatching(/names no meta-model/) })]);
    }
  });

  it('answers 400 for a missing or unknown field', async () => {
    expect((await post({})).json().errors).toEqual([expect.objectContaining({ path: '/metaModelId', message: 'is required' })]);
    expect((await post({ metaModelId: model.metaModelId, colour: 'red' })).json().errors).toEqual([expect.objectContaining({ path: '/colour' })]);
  });
});

describe('GET /tasks/:id and GET /tasks', () => {
  it("reads a task for its tenant only: another tenant's id is 404 like an unknown one", async () => {
    const created = (await post({ metaModelId: model.metaModelId })).json();
    const got = await api.app.inject({ method: 'GET', url: `/tasks/${created.id}`, headers: owner.headers });
    expect(got.statusCode).toBe(200);
    expect(got.json()).toEqual(created);
    const stranger = await newTenant(api.db);
    for (const [url, headers] of [[`/tasks/${created.id}`, stranger.headers], ['/tasks/nope', owner.headers]] as const) {
      const response = await api.app.inject({ method: 'GET', url, headers });
      expect(response.statusCode).toBe(404);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    }
  });

  it('lists newest first in pages, optionally of one meta-model (by any reference)', async () => {
    const tenant = await newTenant(api.db);
    const a = await storeMetaModel(api.db, tenant.tenantId, { hidden: [4] });
    const b = await storeMetaModel(api.db, tenant.tenantId, { hidden: [4] });
    const ids: string[] = [];
    for (const ref of [a.metaModelId, b.metaModelId, a.metaModelId]) ids.push((await post({ metaModelId: ref }, tenant.headers)).json().id);
    const first = (await api.app.inject({ method: 'GET', url: '/tasks?limit=2', headers: tenant.headers })).json();
    expect(first.items.map((t: { id: string }) => t.id)).toEqual([ids[2], ids[1]]);
    expect(first.nextCursor).toEqual(expect.any(String));
    const second = (await api.app.inject({ method: 'GET', url: `/tasks?limit=2&cursor=${first.nextCursor}`, headers: tenant.headers })).json();
    expect(second).toEqual({ items: [expect.objectContaining({ id: ids[0] })], nextCursor: null });

    const ofA = (await api.app.inject({ method: 'GET', url: `/tasks?metaModelId=${a.name}@latest`, headers: tenant.headers })).json();
    expect(ofA.items.map((t: { id: string }) => t.id)).toEqual([ids[2], ids[0]]);
    const unknown = (await api.app.inject({ method: 'GET', url: '/tasks?metaModelId=nothing@1', headers: tenant.headers })).json();
    expect(unknown).toEqual({ items: [], nextCursor: null });
    // The owner's other tasks never show up here.
    expect((await api.app.inject({ method: 'GET', url: '/tasks?limit=100', headers: tenant.headers })).json().items).toHaveLength(3);
  });

  it('answers 400 for a cursor it did not produce and a limit out of range', async () => {
    const bad = await api.app.inject({ method: 'GET', url: '/tasks?cursor=bogus', headers: owner.headers });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors[0]).toMatchObject({ path: '/cursor', in: 'query' });
    expect((await api.app.inject({ method: 'GET', url: '/tasks?limit=0', headers: owner.headers })).json().errors[0]).toMatchObject({ path: '/limit' });
  });
});
