/**
 * Tasks that live across API processes (two apps on one Redis prefix and one database, as two
 * processes of a deployment are): a pin and a deletion made through one are what the other serves
 * (its cached head and task facts dropped by `<prefix>:task-changed`), and readapt auto turns a
 * burst of appends through both into fewer adaptations than appends, never two at once, the last
 * including the newest example.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/meta/index.js';
import { sineTask, storeMetaModel } from './support/adapt-fixtures.js';
import { newTenant, startApi, startWorker, type TestApi } from './support/api-app.js';
import { waitUntil } from './support/training-fixtures.js';

let a: TestApi;
let b: TestApi;
let worker: Awaited<ReturnType<typeof startWorker>>;
let tenant: Awaited<ReturnType<typeof newTenant>>;
let sine: Awaited<ReturnType<typeof storeMetaModel>>;

beforeAll(async () => {
  await initBackend('cpu');
  // A long coalescing delay, so the burst below coalesces however slowly this machine runs it.
  a = await startApi('living-processes', { READAPT_DELAY_MS: '300' });
  b = await startApi('living-processes', { READAPT_DELAY_MS: '300', QUEUE_PREFIX: a.prefix });
  worker = await startWorker(a);
  tenant = await newTenant(a.db);
  sine = await storeMetaModel(a.db, tenant.tenantId, { hidden: [8], inner: { steps: 3, lr: 0.01 } });
});

afterAll(async () => {
  await worker?.close();
  await b?.close();
  await a?.close();
});

const call = (api: TestApi, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) =>
  api.app.inject({ method, url, headers: tenant.headers, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });

async function newTask(body: Record<string, unknown> = {}): Promise<string> {
  const response = await call(a, 'POST', '/tasks', { metaModelId: sine.metaModelId, ...body });
  expect(response.statusCode).toBe(201);
  return response.json().id;
}

describe('across API processes', () => {
  it('a pin made through one process is what the other serves, and so is following the latest again', async () => {
    const taskId = await newTask();
    for (const seed of [1, 2]) expect((await call(a, 'POST', `/tasks/${taskId}/adapt`, { support: sineTask(seed).support })).statusCode).toBe(200);
    const servedBy = async (api: TestApi) => (await call(api, 'GET', `/predict?taskId=${taskId}&x=0.5`)).json().headVersion;
    expect(await servedBy(b)).toBe(2);
    expect(b.app.predictCache.heldVersion(taskId)).toBe(2);
    expect((await call(a, 'PUT', `/tasks/${taskId}/head`, { version: 1 })).statusCode).toBe(200);
    await waitUntil(async () => b.app.predictCache.heldVersion(taskId) === undefined, 'the other process to drop its cached head', 5_000, 5);
    expect(await servedBy(b)).toBe(1);
    expect((await call(b, 'PUT', `/tasks/${taskId}/head`, { version: null })).statusCode).toBe(200);
    await waitUntil(async () => a.app.predictCache.heldVersion(taskId) !== 1, 'the first process to drop the pinned head', 5_000, 5);
    expect(await servedBy(a)).toBe(2);
  });

  it('a task deleted through one process is 404 on the other, whose cached head and facts go', async () => {
    const taskId = await newTask();
    expect((await call(b, 'POST', `/tasks/${taskId}/adapt`, { support: sineTask(3).support })).statusCode).toBe(200);
    expect((await call(b, 'GET', `/predict?taskId=${taskId}&x=0.5`)).statusCode).toBe(200);
    expect((await call(a, 'DELETE', `/tasks/${taskId}`)).statusCode).toBe(204);
    await waitUntil(async () => b.app.predictCache.heldVersion(taskId) === undefined, 'the other process to drop the deleted task', 5_000, 5);
    expect((await call(b, 'GET', `/predict?taskId=${taskId}&x=0.5`)).statusCode).toBe(404);
    expect((await call(b, 'POST', `/tasks/${taskId}/adapt`, { support: sineTask(3).support })).statusCode).toBe(404);
    expect((await call(b, 'POST', `/tasks/${taskId}/examples`, { x: [[0.1]], y: [1] })).statusCode).toBe(404);
  });

  it('readapt auto: a burst of appends through both processes coalesces, never runs two at once, and ends on a head with the newest example', async () => {
    const taskId = await newTask({ readapt: 'auto' });
    const task = sineTask(8, 3, 0.5, 30);
    let lastSeq = 0;
    for (let i = 0; i < 30; i++) {
      const answer = await call(i % 2 === 0 ? a : b, 'POST', `/tasks/${taskId}/examples`, { x: [task.support.x[i]], y: [task.support.y[i]] });
      expect(answer.statusCode).toBe(200);
      lastSeq = answer.json().lastSeq;
    }
    expect(lastSeq).toBe(30);
    const heads = await waitUntil(async () => {
      const listed = (await call(b, 'GET', `/tasks/${taskId}/heads`)).json();
      return listed.items[0]?.examplesThrough === lastSeq ? listed : undefined;
    }, 'a head that includes the newest example', 20_000);
    // Served by both processes once its message arrived.
    for (const api of [a, b]) {
      await waitUntil(async () => (await call(api, 'GET', `/predict?taskId=${taskId}&x=0.5`)).json().headVersion === heads.latest, 'the newest head to serve', 5_000, 5);
    }
    const runs = await a.db.prisma.adaptation.findMany({ where: { taskId }, orderBy: { startedAt: 'asc' } });
    expect(runs.every((run) => run.autoReadapt && run.fromExamples && run.status === 'succeeded')).toBe(true);
    expect(runs.length).toBeGreaterThanOrEqual(1);
    expect(runs.length).toBeLessThan(30);
    for (let i = 1; i < runs.length; i++) expect(runs[i].startedAt!.getTime()).toBeGreaterThanOrEqual(runs[i - 1].finishedAt!.getTime());
    expect(Number(runs.at(-1)!.examplesThrough)).toBe(30);
    const row = await a.db.prisma.task.findUniqueOrThrow({ where: { id: taskId } });
    expect(row.readaptActive).toBe(false);
    // A chain whose worker died after storing a head (the flag still up, nothing queued or running,
    // the last one ended long ago) does not stop the task adapting by itself: the next append starts one.
    await a.db.prisma.task.update({ where: { id: taskId }, data: { readaptActive: true } });
    await a.db.prisma.adaptation.updateMany({ where: { taskId }, data: { finishedAt: new Date(Date.now() - 60_000) } });
    const revived = (await call(a, 'POST', `/tasks/${taskId}/examples`, { x: [[0.25]], y: [0.5] })).json();
    expect(revived.readaptId).toEqual(expect.any(String));
    await waitUntil(async () => (await call(a, 'GET', `/tasks/${taskId}/heads`)).json().items[0]?.examplesThrough === 31, 'the revived chain to adapt', 20_000);
    // The live record scored every example appended once a head served.
    const { live } = (await call(a, 'GET', `/tasks/${taskId}`)).json();
    expect(live.allTime.scored).toBeGreaterThan(0);
  });
});
