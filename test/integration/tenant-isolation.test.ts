/**
 * Tenancy on the third round's routes, through the real path (HTTP, Postgres, the adapt queue and an
 * in-process worker): another tenant's key, on every route that names a task, a meta-model or a study
 * of the owner, answers exactly what an id that does not exist answers (404 problem+json, same type
 * and title), lists nothing of the owner's, and changes nothing: the owner's examples, heads, pin,
 * adaptations, task, meta-model and study read the same afterwards, and its requests still answer.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Prisma } from '../../src/generated/prisma/client.js';
import { gaussianBlobs } from '../../src/meta/families/index.js';
import { fitCalibration, initBackend, type MetaModel } from '../../src/meta/index.js';
import { blobsTask, storeMetaModel } from './support/adapt-fixtures.js';
import { newTenant, SINE, startApi, startWorker, type TestApi } from './support/api-app.js';

let api: TestApi;
let worker: Awaited<ReturnType<typeof startWorker>>;
let owner: Awaited<ReturnType<typeof newTenant>>;
let stranger: Awaited<ReturnType<typeof newTenant>>;

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
const call = (headers: Record<string, string>, method: Method, url: string, payload?: unknown) =>
  api.app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });

/** What the owner has; every count must read the same after the stranger's attempts. */
interface Owned { taskId: string; metaModelId: string; name: string; studyId: string; query: number[][] }
let owned: Owned;

async function snapshot() {
  const { taskId, metaModelId, studyId } = owned;
  const where = { taskId };
  return {
    task: await api.db.prisma.task.findUnique({ where: { id: taskId }, select: { exampleCount: true, pinnedVersion: true, headVersion: true } }),
    examples: await api.db.prisma.taskExample.count({ where }),
    heads: await api.db.prisma.adaptedHead.count({ where }),
    adaptations: await api.db.prisma.adaptation.count({ where }),
    metaModel: await api.db.prisma.metaModel.count({ where: { id: metaModelId } }),
    // Not its status: another test file's scheduler may drive the study on (schedulers advance every
    // running study in the database); a stranger's cancel would show as 'cancelled'.
    studyCancelled: (await api.db.prisma.study.findUniqueOrThrow({ where: { id: studyId } })).status === 'cancelled',
    cancelledTrials: await api.db.prisma.metaTrainJob.count({ where: { studyId, status: 'cancelled' } }),
  };
}

beforeAll(async () => {
  await initBackend('cpu');
  api = await startApi('tenancy');
  worker = await startWorker(api);
  owner = await newTenant(api.db);
  stranger = await newTenant(api.db);

  // A calibrated classifier, so the owner's coverage and novelty requests answer 200.
  const stored = await storeMetaModel(api.db, owner.tenantId, { algorithm: 'protonet', kind: 'classification', inputDim: 2, nWay: 3, hidden: [16], inner: { steps: 0, lr: 0.01 } });
  const model: MetaModel = { algorithm: 'protonet', spec: stored.spec, params: stored.params, inner: stored.inner };
  const calibration = fitCalibration(model, gaussianBlobs({}, { inputDim: 2, ways: 3 }), { shots: [1, 5], tasks: 30, queryShots: 5, seed: 2 });
  await api.db.prisma.metaModel.update({ where: { id: stored.metaModelId }, data: { calibration: calibration as unknown as Prisma.InputJsonValue } });

  // Its task: stored examples, head 1 adapted on them, head 2 on a support set, pinned to 1.
  const task = blobsTask(7);
  const created = await call(owner.headers, 'POST', '/tasks', { metaModelId: stored.metaModelId });
  expect(created.statusCode, created.body).toBe(201);
  const taskId = created.json().id as string;
  expect((await call(owner.headers, 'POST', `/tasks/${taskId}/examples`, { x: task.support.x, y: task.support.y })).statusCode).toBe(200);
  expect((await call(owner.headers, 'POST', `/tasks/${taskId}/adapt`, {})).json().headVersion).toBe(1);
  expect((await call(owner.headers, 'POST', `/tasks/${taskId}/adapt`, { support: task.support })).json().headVersion).toBe(2);
  expect((await call(owner.headers, 'PUT', `/tasks/${taskId}/head`, { version: 1 })).json().pinned).toBe(1);

  // A study whose one tiny trial is an ordinary job with its studyId (no scheduler here: it stays
  // running unless another file's scheduler drives it on).
  const family = await call(owner.headers, 'POST', '/task-families', SINE);
  const study = await call(owner.headers, 'POST', '/studies', {
    name: `iso-${randomUUID().slice(0, 8)}`, familyIds: [family.json().id], model: { hidden: [8] },
    candidates: [{ algorithm: 'maml', hyper: { metaBatchSize: 2 } }], budget: { iterations: 3 },
  });
  expect(study.statusCode, study.body).toBe(202);
  owned = { taskId, metaModelId: stored.metaModelId, name: stored.name, studyId: study.json().id, query: task.query.x.slice(0, 4) };
});

afterAll(async () => {
  // A running study would be another test's scheduler's to drive.
  if (owned) await api.db.prisma.study.updateMany({ where: { id: owned.studyId, status: 'running' }, data: { status: 'cancelled', finishedAt: new Date() } });
  await worker?.close();
  await api?.close();
});

/**
 * One request per route, built for an id (the owner's or one that does not exist). `owner` is what the
 * owner's own key gets for it (checked first: the stranger's 404 is then not for want of a head or a
 * calibration); null for a request the owner is not asked (it would change or hold something).
 */
interface Case { route: string; method: Method; url: (o: Owned) => string; payload?: (o: Owned) => unknown; owner: number | null }
const x = (o: Owned) => o.query.map((row) => `x=${row.join(',')}`).join('&');
const CASES: Case[] = [
  { route: 'POST /tasks/:id/examples', method: 'POST', url: (o) => `/tasks/${o.taskId}/examples`, payload: (o) => ({ x: o.query.slice(0, 1), y: [0] }), owner: null },
  { route: 'GET /tasks/:id/examples', method: 'GET', url: (o) => `/tasks/${o.taskId}/examples`, owner: 200 },
  { route: 'DELETE /tasks/:id/examples', method: 'DELETE', url: (o) => `/tasks/${o.taskId}/examples`, owner: null },
  { route: 'GET /tasks/:id/heads', method: 'GET', url: (o) => `/tasks/${o.taskId}/heads`, owner: 200 },
  { route: 'PUT /tasks/:id/head (a version)', method: 'PUT', url: (o) => `/tasks/${o.taskId}/head`, payload: () => ({ version: 2 }), owner: null },
  { route: 'PUT /tasks/:id/head (null)', method: 'PUT', url: (o) => `/tasks/${o.taskId}/head`, payload: () => ({ version: null }), owner: null },
  { route: 'GET /predict?version=', method: 'GET', url: (o) => `/predict?taskId=${o.taskId}&${x(o)}&version=2`, owner: 200 },
  // The pinned head 1 was adapted on the stored examples: its set must have been kept for novelty.
  { route: 'GET /predict (coverage, novelty)', method: 'GET', url: (o) => `/predict?taskId=${o.taskId}&${x(o)}&coverage=0.9&novelty=true`, owner: 200 },
  { route: 'GET /predict?version= (coverage, novelty)', method: 'GET', url: (o) => `/predict?taskId=${o.taskId}&${x(o)}&version=2&coverage=0.9&novelty=true`, owner: 200 },
  { route: 'POST /tasks/:id/predict (coverage, novelty)', method: 'POST', url: (o) => `/tasks/${o.taskId}/predict`, payload: (o) => ({ x: o.query, coverage: 0.9, novelty: true }), owner: 200 },
  { route: 'POST /tasks/:id/adapt (stored examples)', method: 'POST', url: (o) => `/tasks/${o.taskId}/adapt`, payload: () => ({}), owner: null },
  { route: 'POST /tasks/:id/adapt (stored, no wait)', method: 'POST', url: (o) => `/tasks/${o.taskId}/adapt`, payload: () => ({ wait: false }), owner: null },
  { route: 'DELETE /tasks/:id', method: 'DELETE', url: (o) => `/tasks/${o.taskId}`, owner: null },
  // The owner would hear 409 (a task uses it): the stranger must not learn even that.
  { route: 'DELETE /meta-models/:id', method: 'DELETE', url: (o) => `/meta-models/${o.metaModelId}`, owner: 409 },
  { route: 'DELETE /meta-models/name@version', method: 'DELETE', url: (o) => `/meta-models/${o.name}@1`, owner: 409 },
  { route: 'GET /studies/:id', method: 'GET', url: (o) => `/studies/${o.studyId}`, owner: 200 },
  // The owner's stream of a running study would not end: not asked.
  { route: 'GET /studies/:id/events', method: 'GET', url: (o) => `/studies/${o.studyId}/events`, owner: null },
  { route: 'POST /studies/:id/cancel', method: 'POST', url: (o) => `/studies/${o.studyId}/cancel`, payload: () => ({}), owner: null },
];

/** A problem without what names the id (detail, instance). */
const problemShape = ({ type, title, status }: { type: string; title: string; status: number }) => ({ type, title, status });

describe("another tenant's key on the third round's routes", () => {
  it('answers as for an id that does not exist, and changes nothing of the owner\'s', async () => {
    const before = await snapshot();
    expect(before).toMatchObject({ task: { exampleCount: 15, pinnedVersion: 1, headVersion: 2 }, examples: 15, heads: 2, adaptations: 2, metaModel: 1, studyCancelled: false, cancelledTrials: 0 });
    const none: Owned = { ...owned, taskId: randomUUID(), metaModelId: randomUUID(), name: `none-${randomUUID().slice(0, 8)}`, studyId: randomUUID() };

    for (const c of CASES) {
      if (c.owner !== null) {
        const mine = await call(owner.headers, c.method, c.url(owned), c.payload?.(owned));
        expect(mine.statusCode, `${c.route} (owner): ${mine.body}`).toBe(c.owner);
      }
      const missing = await call(stranger.headers, c.method, c.url(none), c.payload?.(none));
      const theirs = await call(stranger.headers, c.method, c.url(owned), c.payload?.(owned));
      expect(theirs.statusCode, `${c.route}: ${theirs.body}`).toBe(404);
      expect(theirs.headers['content-type'], c.route).toContain('application/problem+json');
      expect(problemShape(theirs.json()), c.route).toEqual(problemShape(missing.json()));
    }

    // Lists: the owner's study has a trial; the stranger's view of it is empty.
    expect((await call(owner.headers, 'GET', `/meta-train?studyId=${owned.studyId}`)).json().items.length).toBeGreaterThan(0);
    const trials = await call(stranger.headers, 'GET', `/meta-train?studyId=${owned.studyId}`);
    expect(trials.statusCode, trials.body).toBe(200);
    expect(trials.json()).toEqual({ items: [], nextCursor: null });
    expect((await call(stranger.headers, 'GET', '/studies')).json().items).toEqual([]);

    // Nothing moved (an adaptation, had one been queued, would show as a row at once).
    expect(await snapshot()).toEqual(before);
    const heads = (await call(owner.headers, 'GET', `/tasks/${owned.taskId}/heads`)).json();
    expect(heads).toMatchObject({ pinned: 1, latest: 2 });
    expect((await call(owner.headers, 'POST', `/tasks/${owned.taskId}/predict`, { x: owned.query })).json().headVersion).toBe(1);
  });
});
