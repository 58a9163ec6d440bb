/**
 * The meta-model registry, API side, on the real database: list (cursor, by name), get by id,
 * `name@version` and `name@alias`, alias moves (PUT), bad references, tenancy. Versions are written
 * here the way the worker writes them on success (one row per version, `latest` moved to it); the
 * lifecycle test covers the worker writing them for real.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMetaModelRef, resolveMetaModelRef } from '../../src/db/repositories/meta-models.js';
import { newTenant, SINE, startApi, type TestApi } from './support/api-app.js';

let api: TestApi;
let tenant: Awaited<ReturnType<typeof newTenant>>;
let familyId: string;

type Model = { id: string; name: string; version: number; aliases: string[]; jobId: string; metrics: Record<string, number> };

/** A succeeded job and its meta-model version, as the worker stores them. */
async function storeVersion(name: string, version: number, valLoss: number): Promise<string> {
  const response = await api.app.inject({ method: 'POST', url: '/meta-train', headers: tenant.headers, payload: { name, familyIds: [familyId], algorithm: 'maml', model: { hidden: [8] }, hyper: { iterations: 5 } } });
  const { id: jobId } = response.json() as { id: string };
  await api.db.prisma.metaTrainJob.update({ where: { id: jobId }, data: { status: 'succeeded', iteration: 5, finishedAt: new Date() } });
  const model = await api.db.prisma.metaModel.create({
    data: {
      tenantId: tenant.tenantId, name, version, jobId, algorithm: 'maml', kind: 'regression', inputDim: 1,
      model: { hidden: [8], activation: 'relu' }, innerSteps: 1, innerLr: 0.01, metrics: { iteration: 5, trainLoss: valLoss + 0.5, valLoss }, params: new Uint8Array(8),
    },
  });
  await api.db.prisma.metaModelAlias.upsert({
    where: { tenantId_name_alias: { tenantId: tenant.tenantId, name, alias: 'latest' } },
    create: { tenantId: tenant.tenantId, name, alias: 'latest', metaModelId: model.id },
    update: { metaModelId: model.id },
  });
  return model.id;
}

const get = (url: string, headers = tenant.headers) => api.app.inject({ method: 'GET', url, headers });
const put = (url: string, headers = tenant.headers) => api.app.inject({ method: 'PUT', url, headers });

let v1: string;
let v2: string;

beforeAll(async () => {
  api = await startApi('meta-models');
  tenant = await newTenant(api.db);
  familyId = ((await api.app.inject({ method: 'POST', url: '/task-families', headers: tenant.headers, payload: SINE })).json() as { id: string }).id;
  v1 = await storeVersion('sine', 1, 0.9);
  v2 = await storeVersion('sine', 2, 0.4);
  await storeVersion('other', 1, 0.7);
});

afterAll(async () => {
  await api?.close();
});

describe('references', () => {
  it('parses id, name@version and name@alias', () => {
    expect(parseMetaModelRef('0190abcd')).toEqual({ id: '0190abcd' });
    expect(parseMetaModelRef('sine@3')).toEqual({ name: 'sine', version: 3 });
    expect(parseMetaModelRef('sine@production')).toEqual({ name: 'sine', alias: 'production' });
    expect(parseMetaModelRef('me@corp@latest')).toEqual({ name: 'me@corp', alias: 'latest' });
    for (const bad of ['', 'sine@', '@latest', 'sine@0', 'sine@-1', 'sine@1.5', 'sine@pro duction']) expect(parseMetaModelRef(bad)).toBeNull();
  });

  it('gets a model by id, name@version and name@alias alike', async () => {
    const byId = (await get(`/meta-models/${v2}`)).json() as Model;
    expect(byId).toMatchObject({ id: v2, name: 'sine', version: 2, aliases: ['latest'], algorithm: 'maml', kind: 'regression', inputDim: 1, model: { hidden: [8], activation: 'relu' }, metrics: { valLoss: 0.4 } });
    expect(byId).not.toHaveProperty('params');
    expect((await get('/meta-models/sine@2')).json()).toEqual(byId);
    expect((await get('/meta-models/sine@latest')).json()).toEqual(byId);
    expect(((await get('/meta-models/sine@1')).json() as Model).id).toBe(v1);
  });

  it('answers 404 problem+json for unknown, malformed and foreign references', async () => {
    for (const ref of ['sine@3', 'sine@production', 'nothing@latest', 'sine@', '00000000-0000-7000-8000-000000000000']) {
      const response = await get(`/meta-models/${encodeURIComponent(ref)}`);
      expect(response.statusCode, ref).toBe(404);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    }
    const other = await newTenant(api.db);
    expect((await get(`/meta-models/${v2}`, other.headers)).statusCode).toBe(404);
    expect((await get('/meta-models/sine@latest', other.headers)).statusCode).toBe(404);
    expect(await resolveMetaModelRef(api.db, other.tenantId, 'sine@1')).toBeNull();
  });
});

describe('aliases', () => {
  it('creates an alias, moves it to another version, and resolves through it', async () => {
    const set = await put(`/meta-models/${v1}/aliases/production`);
    expect(set.statusCode).toBe(200);
    expect((set.json() as Model).aliases).toEqual(['production']);
    expect(((await get('/meta-models/sine@production')).json() as Model).id).toBe(v1);

    const moved = (await put('/meta-models/sine@latest/aliases/production')).json() as Model;
    expect(moved).toMatchObject({ id: v2, aliases: ['latest', 'production'] });
    expect(((await get(`/meta-models/${v1}`)).json() as Model).aliases).toEqual([]);
    expect(((await get('/meta-models/sine@production')).json() as Model).id).toBe(v2);
  });

  it('keeps aliases per name', async () => {
    await put('/meta-models/other@1/aliases/production');
    expect(((await get('/meta-models/other@production')).json() as Model).name).toBe('other');
    expect(((await get('/meta-models/sine@production')).json() as Model).name).toBe('sine');
  });

  it('refuses an alias that could read as a version, and unknown models', async () => {
    const numeric = await put(`/meta-models/${v1}/aliases/2`);
    expect(numeric.statusCode).toBe(400);
    expect((numeric.json() as { errors: { path: string; in: string }[] }).errors[0]).toMatchObject({ path: '/alias', in: 'path' });
    expect((await put('/meta-models/sine@9/aliases/production')).statusCode).toBe(404);
    const other = await newTenant(api.db);
    expect((await put(`/meta-models/${v1}/aliases/mine`, other.headers)).statusCode).toBe(404);
  });
});

describe('listing', () => {
  it('lists newest first, pages with a cursor, filters by name', async () => {
    const all = (await get('/meta-models')).json() as { items: Model[]; nextCursor: null };
    expect(all.items.map((m) => `${m.name}@${m.version}`)).toEqual(['other@1', 'sine@2', 'sine@1']);
    const first = (await get('/meta-models?limit=2')).json() as { items: Model[]; nextCursor: string };
    const second = (await get(`/meta-models?limit=2&cursor=${first.nextCursor}`)).json() as { items: Model[]; nextCursor: string | null };
    expect([...first.items, ...second.items].map((m) => m.id)).toEqual(all.items.map((m) => m.id));
    expect(second.nextCursor).toBeNull();
    const sine = (await get('/meta-models?name=sine')).json() as { items: Model[] };
    expect(sine.items.map((m) => m.version)).toEqual([2, 1]);
    expect((await get('/meta-models', (await newTenant(api.db)).headers)).json()).toEqual({ items: [], nextCursor: null });
  });

  it('shows the produced model on its job', async () => {
    const model = (await get(`/meta-models/${v2}`)).json() as Model;
    const job = (await get(`/meta-train/${model.jobId}`)).json() as { metaModelId: string; status: string };
    expect(job).toMatchObject({ status: 'succeeded', metaModelId: v2 });
  });
});
