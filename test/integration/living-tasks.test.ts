/**
 * Tasks that live, through the real path (HTTP, the adapt queue, an in-process worker, Postgres):
 * label names in and out, stored examples (appended, paged, bounded with a per-class floor, cleared)
 * and adaptation on them, prequential scores equal to a recomputation from the predictions the
 * append answered, head versions listed, pinned and addressed, bad input refused with nothing
 * stored, and erasure of a task (every row and queue job) and of an unused meta-model version.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/meta/index.js';
import { blobsTask, sineTask, storeMetaModel } from './support/adapt-fixtures.js';
import { newTenant, startApi, startWorker, type TestApi } from './support/api-app.js';

let api: TestApi;
let worker: Awaited<ReturnType<typeof startWorker>>;
let tenant: Awaited<ReturnType<typeof newTenant>>;
let blobs: Awaited<ReturnType<typeof storeMetaModel>>;
let sine: Awaited<ReturnType<typeof storeMetaModel>>;

const NAMES = ['cat', 'dog', 'bird'];

beforeAll(async () => {
  await initBackend('cpu');
  api = await startApi('living', { MAX_TASK_EXAMPLES: '12' });
  worker = await startWorker(api);
  tenant = await newTenant(api.db);
  blobs = await storeMetaModel(api.db, tenant.tenantId, { algorithm: 'protonet', kind: 'classification', inputDim: 2, nWay: 3, hidden: [8] });
  sine = await storeMetaModel(api.db, tenant.tenantId, { hidden: [8], inner: { steps: 3, lr: 0.01 } });
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
});

const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
  api.app.inject({ method, url, headers: tenant.headers, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });

async function newTask(body: Record<string, unknown>): Promise<string> {
  const response = await call('POST', '/tasks', body);
  expect(response.statusCode, response.body).toBe(201);
  return response.json().id;
}

const named = (ys: number[]) => ys.map((y) => NAMES[y]);

function expectField(response: { statusCode: number; json(): { errors?: { path: string }[] } }, path: string) {
  expect(response.statusCode).toBe(400);
  expect(response.json().errors?.[0]?.path).toBe(path);
}

describe('label names', () => {
  it('refuses names that do not fit the meta-model: a regression, a wrong count, a repeat', async () => {
    expectField(await call('POST', '/tasks', { metaModelId: sine.metaModelId, labels: ['a'] }), '/labels');
    expectField(await call('POST', '/tasks', { metaModelId: blobs.metaModelId, labels: ['a', 'b'] }), '/labels');
    expectField(await call('POST', '/tasks', { metaModelId: blobs.metaModelId, labels: ['a', 'b', 'a'] }), '/labels/2');
  });

  it('adapts on a support set labelled by name and answers names with their index; exports carry them', async () => {
    const taskId = await newTask({ metaModelId: blobs.metaModelId, labels: NAMES });
    expect((await call('GET', `/tasks/${taskId}`)).json()).toMatchObject({ labels: NAMES, readapt: 'manual', exampleCount: 0, pinnedVersion: null });
    const task = blobsTask(3);
    const adapted = await call('POST', `/tasks/${taskId}/adapt`, { support: { x: task.support.x, y: named(task.support.y) } });
    expect(adapted.statusCode, adapted.body).toBe(200);
    const predicted = (await call('POST', `/tasks/${taskId}/predict`, { x: task.query.x })).json().predictions as { label: string; labelIndex: number }[];
    for (const p of predicted) expect(p.label).toBe(NAMES[p.labelIndex]);
    const right = predicted.filter((p, i) => p.labelIndex === task.query.y[i]).length;
    expect(right / predicted.length).toBeGreaterThan(0.5);
    const tfjs = (await call('GET', `/tasks/${taskId}/model?format=tfjs`)).json();
    expect(JSON.parse(tfjs.userDefinedMetadata.labels)).toEqual(NAMES);
    const onnx = (await call('GET', `/tasks/${taskId}/model?format=onnx`)).rawPayload.toString('latin1');
    expect(onnx).toContain(JSON.stringify(NAMES));
  });

  it('refuses an unknown name, a wrong width, NaN-like values and an oversized batch, naming field and index, storing nothing', async () => {
    const taskId = await newTask({ metaModelId: blobs.metaModelId, labels: NAMES });
    expectField(await call('POST', `/tasks/${taskId}/examples`, { x: [[0, 0], [1, 1]], y: ['cat', 'horse'] }), '/y/1');
    expectField(await call('POST', `/tasks/${taskId}/examples`, { x: [[0, 0], [1]], y: ['cat', 'dog'] }), '/x/1');
    expectField(await call('POST', `/tasks/${taskId}/examples`, { x: [[0, 0], [1, 1e39]], y: [0, 1] }), '/x/1/1');
    expectField(await call('POST', `/tasks/${taskId}/examples`, { x: [[0, 0]], y: [3] }), '/y/0');
    expectField(await call('POST', `/tasks/${taskId}/adapt`, { support: { x: [[0, 0]], y: ['horse'] } }), '/support/y/0');
    const tooMany = Array.from({ length: 13 }, () => [0, 0]);
    expect((await call('POST', `/tasks/${taskId}/examples`, { x: tooMany, y: tooMany.map(() => 0) })).statusCode).toBe(400);
    // An index names no class of a regression task, and a name no target.
    const sineTaskId = await newTask({ metaModelId: sine.metaModelId });
    expectField(await call('POST', `/tasks/${sineTaskId}/examples`, { x: [[0.5]], y: ['cat'] }), '/y/0');
    expect((await call('GET', `/tasks/${taskId}`)).json().exampleCount).toBe(0);
    expect(await api.db.prisma.taskExample.count({ where: { taskId: { in: [taskId, sineTaskId] } } })).toBe(0);
  });
});

describe('stored examples', () => {
  it('appends, pages, bounds the set keeping every class, adapts on it, and clears it', async () => {
    const taskId = await newTask({ metaModelId: blobs.metaModelId, labels: NAMES });
    // 10 of class 0 first, then 1 of class 1 and 1 of class 2, then 6 more of class 0: 18 > 12.
    const rows = (n: number, v: number) => Array.from({ length: n }, (_, i) => [v + i / 100, v]);
    const first = (await call('POST', `/tasks/${taskId}/examples`, { x: rows(10, 0), y: Array(10).fill('cat') })).json();
    expect(first).toMatchObject({ added: 10, stored: 10, evicted: 0, lastSeq: 10, prequential: { scored: 0, headVersion: null } });
    await call('POST', `/tasks/${taskId}/examples`, { x: [[5, 5], [9, 9]], y: ['dog', 'bird'] });
    const last = (await call('POST', `/tasks/${taskId}/examples`, { x: rows(6, 0.5), y: Array(6).fill(0) })).json();
    expect(last).toMatchObject({ added: 6, stored: 12, evicted: 6, lastSeq: 18 });
    const page1 = (await call('GET', `/tasks/${taskId}/examples?limit=5`)).json();
    const page2 = (await call('GET', `/tasks/${taskId}/examples?limit=10&after=${page1.nextAfter}`)).json();
    const all = [...page1.items, ...page2.items];
    expect(page2.nextAfter).toBeNull();
    expect(all).toHaveLength(12);
    // The oldest class-0 examples went; the lone dog and bird stayed.
    expect(all.map((e: { seq: number }) => e.seq)).toEqual([7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]);
    expect(all.filter((e: { label: string }) => e.label === 'dog')).toHaveLength(1);
    expect(all.find((e: { label: string }) => e.label === 'bird')).toMatchObject({ seq: 12, x: [9, 9], y: 2 });

    const adapted = await call('POST', `/tasks/${taskId}/adapt`, {});
    expect(adapted.statusCode, adapted.body).toBe(200);
    const adaptation = (await call('GET', `/tasks/${taskId}/adaptations/${adapted.json().adaptationId}`)).json();
    expect(adaptation).toMatchObject({ fromExamples: true, supportSize: 12, examplesThrough: 18 });
    expect((await call('GET', `/tasks/${taskId}/heads`)).json().items[0]).toMatchObject({ version: 1, supportSize: 12, examplesThrough: 18 });

    expect((await call('DELETE', `/tasks/${taskId}/examples`)).statusCode).toBe(204);
    expect((await call('GET', `/tasks/${taskId}`)).json().exampleCount).toBe(0);
    expectField(await call('POST', `/tasks/${taskId}/adapt`, {}), '/support');
  });

  it('keeps its count, numbering and bound under concurrent appends to one task', async () => {
    const taskId = await newTask({ metaModelId: blobs.metaModelId, labels: NAMES });
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => call('POST', `/tasks/${taskId}/examples`, { x: [[i, i]], y: [i % 3] })));
    expect(answers.every((a) => a.statusCode === 200)).toBe(true);
    expect(answers.map((a) => a.json().lastSeq).sort((p, q) => p - q)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    const rows = await api.db.prisma.taskExample.findMany({ where: { taskId }, orderBy: { seq: 'asc' } });
    const task = (await call('GET', `/tasks/${taskId}`)).json();
    expect(rows).toHaveLength(12);
    expect(task.exampleCount).toBe(12);
    expect(answers.reduce((sum, a) => sum + a.json().evicted, 0)).toBe(18);
    // Every class kept (each holds its newest, floor 2 of 12 / (2 x 3)).
    expect(new Set(rows.map((r) => r.y))).toEqual(new Set([0, 1, 2]));
  });

  it('scores each appended example with the serving head first: live equals the recomputation from the answered predictions', async () => {
    const taskId = await newTask({ metaModelId: sine.metaModelId });
    const task = sineTask(5, 3, 0.5, 30);
    await call('POST', `/tasks/${taskId}/examples`, { x: task.support.x.slice(0, 5), y: task.support.y.slice(0, 5) });
    expect((await call('POST', `/tasks/${taskId}/adapt`, {})).statusCode).toBe(200);
    const errors: number[] = [];
    for (let i = 5; i < 30; i++) {
      const answer = (await call('POST', `/tasks/${taskId}/examples`, { x: [task.support.x[i]], y: [task.support.y[i]] })).json();
      expect(answer.prequential).toMatchObject({ scored: 1, headVersion: expect.any(Number) });
      errors.push((answer.prequential.predicted[0] - task.support.y[i]) ** 2);
      expect(answer.prequential.squaredError).toBeCloseTo(errors.at(-1)!, 4);
      if (i % 10 === 0) expect((await call('POST', `/tasks/${taskId}/adapt`, {})).statusCode).toBe(200);
      // The head that scored it answers the same prediction when asked by version.
      const again = (await call('GET', `/predict?taskId=${taskId}&x=${task.support.x[i][0]}&version=${answer.prequential.headVersion}`)).json();
      expect(again.predictions[0]).toBeCloseTo(answer.prequential.predicted[0], 5);
    }
    const { live } = (await call('GET', `/tasks/${taskId}`)).json();
    expect(live.metric).toBe('mse');
    expect(live.allTime.scored).toBe(25);
    expect(live.allTime.value).toBeCloseTo(errors.reduce((a, b) => a + b, 0) / errors.length, 4);
    expect(live.recent).toMatchObject({ scored: 25 });
    // The dashboard's curve: each example's own score, oldest first.
    live.recent.scores.forEach((score: number, i: number) => expect(score).toBeCloseTo(errors[i], 4));
    const metrics = await api.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/fastadapt_prequential_squared_error_count \d+/);
    expect(metrics.body).not.toContain(taskId);
  });
});

describe('head versions', () => {
  it('lists versions newest first, pins one (predictions, exports and scoring follow it), serves ?version=, and follows the latest again', async () => {
    const taskId = await newTask({ metaModelId: sine.metaModelId });
    for (const seed of [1, 2, 3]) expect((await call('POST', `/tasks/${taskId}/adapt`, { support: sineTask(seed).support })).statusCode).toBe(200);
    const heads = (await call('GET', `/tasks/${taskId}/heads`)).json();
    expect(heads.items.map((h: { version: number }) => h.version)).toEqual([3, 2, 1]);
    expect(heads).toMatchObject({ pinned: null, latest: 3 });
    const at = async (version?: number) => (await call('GET', `/predict?taskId=${taskId}&x=0.5${version ? `&version=${version}` : ''}`)).json();
    const v1 = await at(1);
    expect(v1.headVersion).toBe(1);
    expect((await at()).headVersion).toBe(3);

    const pinned = await call('PUT', `/tasks/${taskId}/head`, { version: 1 });
    expect(pinned.statusCode).toBe(200);
    expect(pinned.json()).toMatchObject({ pinned: 1, latest: 3 });
    expect(await at()).toEqual(v1);
    expect((await call('GET', `/tasks/${taskId}/model?format=tfjs`)).headers['content-disposition']).toContain('-v1');
    expect((await call('POST', `/tasks/${taskId}/examples`, { x: [[0.5]], y: [1] })).json().prequential.headVersion).toBe(1);
    // Adapting again adds version 4 without moving the pin.
    expect((await call('POST', `/tasks/${taskId}/adapt`, { support: sineTask(4).support })).json().headVersion).toBe(4);
    expect((await at()).headVersion).toBe(1);

    expectField(await call('PUT', `/tasks/${taskId}/head`, { version: 9 }), '/version');
    expect((await at(9 as number)).headVersion).toBeUndefined();
    expect((await call('GET', `/predict?taskId=${taskId}&x=0.5&version=9`)).statusCode).toBe(404);
    // A version past what the column holds is a bad field, not a database error.
    expectField(await call('PUT', `/tasks/${taskId}/head`, { version: 2 ** 31 }), '/version');
    expect((await call('GET', `/predict?taskId=${taskId}&x=0.5&version=${2 ** 31}`)).statusCode).toBe(400);
    expect((await call('PUT', `/tasks/${taskId}/head`, { version: null })).json()).toMatchObject({ pinned: null, latest: 4 });
    expect((await at()).headVersion).toBe(4);
  });
});

describe('erasure', () => {
  it('DELETE /tasks/:id removes the task, its examples, heads, adaptations and queue jobs; it is 404 from then on', async () => {
    const taskId = await newTask({ metaModelId: blobs.metaModelId, labels: NAMES });
    const task = blobsTask(4);
    expect((await call('POST', `/tasks/${taskId}/examples`, { x: task.support.x.slice(0, 9), y: task.support.y.slice(0, 9) })).statusCode).toBe(200);
    const adapted = (await call('POST', `/tasks/${taskId}/adapt`, {})).json();
    expect((await call('GET', `/predict?taskId=${taskId}&x=0,0`)).statusCode).toBe(200);
    expect(await api.queues.adapt.getJob(adapted.adaptationId)).toBeDefined();

    const stranger = await newTenant(api.db);
    expect((await api.app.inject({ method: 'DELETE', url: `/tasks/${taskId}`, headers: stranger.headers })).statusCode).toBe(404);
    expect((await call('DELETE', `/tasks/${taskId}`)).statusCode).toBe(204);
    for (const url of [`/tasks/${taskId}`, `/predict?taskId=${taskId}&x=0,0`, `/tasks/${taskId}/examples`, `/tasks/${taskId}/heads`]) expect((await call('GET', url)).statusCode).toBe(404);
    expect((await call('POST', `/tasks/${taskId}/adapt`, { support: task.support })).statusCode).toBe(404);
    expect((await call('DELETE', `/tasks/${taskId}`)).statusCode).toBe(404);
    const where = { taskId };
    expect([await api.db.prisma.task.count({ where: { id: taskId } }), await api.db.prisma.taskExample.count({ where }), await api.db.prisma.adaptedHead.count({ where }), await api.db.prisma.adaptation.count({ where })]).toEqual([0, 0, 0, 0]);
    expect(await api.queues.adapt.getJob(adapted.adaptationId)).toBeUndefined();
  });

  it('DELETE /meta-models/:id deletes a version no task or alias uses, and says what uses one otherwise', async () => {
    const used = await storeMetaModel(api.db, tenant.tenantId, { hidden: [4] });
    const taskId = await newTask({ metaModelId: used.metaModelId });
    await api.db.prisma.metaModelAlias.deleteMany({ where: { metaModelId: used.metaModelId } });
    const refused = await call('DELETE', `/meta-models/${used.metaModelId}`);
    expect(refused.statusCode).toBe(409);
    expect(refused.json()).toMatchObject({ tasks: 1, aliases: [] });
    expect((await call('DELETE', `/tasks/${taskId}`)).statusCode).toBe(204);

    const aliased = await storeMetaModel(api.db, tenant.tenantId, { hidden: [4] });
    expect((await call('DELETE', `/meta-models/${aliased.metaModelId}`)).json()).toMatchObject({ status: 409, aliases: ['latest'] });

    expect((await call('DELETE', `/meta-models/${used.metaModelId}`)).statusCode).toBe(204);
    expect((await call('GET', `/meta-models/${used.metaModelId}`)).statusCode).toBe(404);
    expect((await call('DELETE', `/meta-models/${used.metaModelId}`)).statusCode).toBe(404);
  });
});
