/**
 * Model export: for every algorithm, every task kind it supports and every activation, a task
 * adapted by the real worker downloads as ONNX and as a TF.js LayersModel; loaded in onnxruntime-node
 * and @tensorflow/tfjs, each answers as /predict does on the same inputs (1e-5). A meta-model exports
 * as what a task adapted with zero steps predicts. A conv body (served through the engine) exports
 * too, its files answering as /predict does to 1e-4. Errors: 400 naming /format, 404, 409 for a task
 * never adapted and for ProtoNets' headless meta-model.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPORT_FORMATS, type ExportFormat } from '../../src/export/index.js';
import { ACTIVATIONS, ALGORITHM_NAMES, getAlgorithm, initBackend, Rng, type Activation, type AlgorithmName, type Prediction, type TaskKind } from '../../src/meta/index.js';
import { expectSamePrediction, runOnnx, runTfjs } from '../unit/export/runtimes.js';
import { blobsTask, sineTask, storeMetaModel } from './support/adapt-fixtures.js';
import { newTenant, startApi, startWorker, type TestApi } from './support/api-app.js';

let api: TestApi;
let worker: Awaited<ReturnType<typeof startWorker>>;
let tenant: Awaited<ReturnType<typeof newTenant>>;

beforeAll(async () => {
  await initBackend('cpu');
  api = await startApi('model-export');
  worker = await startWorker(api);
  tenant = await newTenant(api.db);
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
});

/** A tiny meta-model of this algorithm, kind and activation (3-way blobs in 2-D for classification). */
function storeTiny(algorithm: AlgorithmName, kind: TaskKind, activation: Activation) {
  return storeMetaModel(api.db, tenant.tenantId, {
    algorithm, kind, activation, hidden: [12, 8], inner: { steps: 3, lr: 0.05 },
    ...(kind === 'classification' ? { inputDim: 2, nWay: 3 } : { inputDim: 1 }),
  });
}

/** A support set and query inputs of the kind. */
function taskData(kind: TaskKind, seed: number) {
  if (kind === 'classification') {
    const task = blobsTask(seed);
    return { support: task.support, query: task.query.x };
  }
  const rng = new Rng(seed);
  return { support: sineTask(seed, 3, 0.5, 6).support, query: Array.from({ length: 20 }, () => [Math.fround(rng.uniform(-5, 5))]) };
}

async function adaptedTask(metaModelId: string, support: { x: number[][]; y: number[] }, steps?: number): Promise<string> {
  const taskId = (await api.app.inject({ method: 'POST', url: '/tasks', headers: tenant.headers, payload: { metaModelId } })).json().id as string;
  const response = await api.app.inject({ method: 'POST', url: `/tasks/${taskId}/adapt`, headers: tenant.headers, payload: { support, ...(steps === undefined ? {} : { steps }) } });
  expect(response.statusCode, response.body).toBe(200);
  return taskId;
}

/** /predict's answer for the task, as a Prediction. */
async function served(taskId: string, kind: TaskKind, x: number[][]): Promise<Prediction> {
  const response = await api.app.inject({ method: 'POST', url: `/tasks/${taskId}/predict`, headers: tenant.headers, payload: { x } });
  expect(response.statusCode, response.body).toBe(200);
  const { predictions } = response.json();
  if (kind === 'regression') return { kind, values: predictions as number[] };
  const rows = predictions as { label: number; probabilities: number[] }[];
  return { kind, labels: rows.map((p) => p.label), probabilities: rows.map((p) => p.probabilities) };
}

/** Downloads `url` in `format` and runs it on `x` in the runtime a client would use. */
async function downloaded(url: string, format: ExportFormat, kind: TaskKind, x: number[][]): Promise<Prediction> {
  const response = await api.app.inject({ method: 'GET', url: `${url}?format=${format}`, headers: tenant.headers });
  expect(response.statusCode, response.body).toBe(200);
  expect(response.headers['content-disposition']).toMatch(new RegExp(`^attachment; filename=".+${format === 'onnx' ? '\\.onnx' : '\\.tfjs\\.json'}"$`));
  if (format === 'onnx') {
    expect(response.headers['content-type']).toBe('application/octet-stream');
    return runOnnx(response.rawPayload, x, kind);
  }
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  return runTfjs(response.body, x, kind);
}

const cases = ALGORITHM_NAMES.flatMap((algorithm) =>
  getAlgorithm(algorithm).kinds.flatMap((kind) => ACTIVATIONS.map((activation) => ({ algorithm, kind, activation }))),
);

describe('GET /tasks/:id/model', () => {
  it.each(cases)('$algorithm, $kind, $activation: the ONNX and TF.js files answer as /predict does', async ({ algorithm, kind, activation }) => {
    const stored = await storeTiny(algorithm, kind, activation);
    const { support, query } = taskData(kind, 31);
    const taskId = await adaptedTask(stored.metaModelId, support);
    const expected = await served(taskId, kind, query);
    for (const format of EXPORT_FORMATS) {
      expectSamePrediction(await downloaded(`/tasks/${taskId}/model`, format, kind, query), expected, `${algorithm} ${kind} ${activation} ${format}`);
    }
  });

  it.each(ACTIVATIONS)('conv body (odd image side), %s: the ONNX and TF.js files answer as /predict does', async (activation) => {
    // 3-way blobs in 2-D, each point drawn as a 5x3x1 image (its two coordinates in the first
    // pixels, the rest zero) so the fixtures' classification task fits a conv body.
    const stored = await storeMetaModel(api.db, tenant.tenantId, {
      algorithm: 'maml', kind: 'classification', activation, inputDim: 15, nWay: 3, conv: { inputShape: [5, 3, 1], channels: [4, 3] }, inner: { steps: 2, lr: 0.05 },
    });
    const asImage = (row: number[]) => [...row, ...new Array<number>(15 - row.length).fill(0)];
    const task = blobsTask(61);
    const support = { x: task.support.x.map(asImage), y: task.support.y };
    const query = task.query.x.map(asImage);
    const taskId = await adaptedTask(stored.metaModelId, support);
    const expected = await served(taskId, 'classification', query);
    for (const format of EXPORT_FORMATS) {
      expectSamePrediction(await downloaded(`/tasks/${taskId}/model`, format, 'classification', query), expected, `conv ${activation} ${format}`, 1e-4);
    }
  });

  it('exports the latest head version: a second adaptation changes the file', async () => {
    const stored = await storeTiny('maml', 'regression', 'relu');
    const first = taskData('regression', 41);
    const taskId = await adaptedTask(stored.metaModelId, first.support);
    const before = await api.app.inject({ method: 'GET', url: `/tasks/${taskId}/model?format=onnx`, headers: tenant.headers });
    expect(before.headers['content-disposition']).toBe(`attachment; filename="task-${taskId}-v1.onnx"`);
    const again = await api.app.inject({ method: 'POST', url: `/tasks/${taskId}/adapt`, headers: tenant.headers, payload: { support: taskData('regression', 42).support } });
    expect(again.statusCode).toBe(200);
    const after = await api.app.inject({ method: 'GET', url: `/tasks/${taskId}/model?format=onnx`, headers: tenant.headers });
    expect(after.headers['content-disposition']).toBe(`attachment; filename="task-${taskId}-v2.onnx"`);
    expect(Buffer.compare(before.rawPayload, after.rawPayload)).not.toBe(0);
    expectSamePrediction(await runOnnx(after.rawPayload, first.query, 'regression'), await served(taskId, 'regression', first.query), 'v2');
  });

  it('answers 409 for a task never adapted, 404 for an unknown or foreign one, 400 naming /format', async () => {
    const stored = await storeTiny('maml', 'regression', 'relu');
    const taskId = (await api.app.inject({ method: 'POST', url: '/tasks', headers: tenant.headers, payload: { metaModelId: stored.metaModelId } })).json().id;
    const notAdapted = await api.app.inject({ method: 'GET', url: `/tasks/${taskId}/model?format=onnx`, headers: tenant.headers });
    expect(notAdapted.statusCode).toBe(409);
    expect(notAdapted.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(notAdapted.json()).toMatchObject({ title: 'Task not adapted', taskId });

    const other = await newTenant(api.db);
    const foreign = await api.app.inject({ method: 'GET', url: `/tasks/${taskId}/model?format=tfjs`, headers: other.headers });
    expect(foreign.statusCode).toBe(404);

    for (const url of [`/tasks/${taskId}/model?format=pickle`, `/tasks/${taskId}/model`]) {
      const bad = await api.app.inject({ method: 'GET', url, headers: tenant.headers });
      expect(bad.statusCode, url).toBe(400);
      expect(bad.json().errors[0]).toMatchObject({ path: '/format', in: 'query' });
    }
  });
});

describe('GET /meta-models/:id/model', () => {
  const withHead = cases.filter(({ algorithm }) => getAlgorithm(algorithm).metaTrainsHead);

  it.each(withHead)('$algorithm, $kind, $activation: exports what a task adapted with zero steps predicts', async ({ algorithm, kind, activation }) => {
    const stored = await storeTiny(algorithm, kind, activation);
    const { support, query } = taskData(kind, 51);
    const expected = await served(await adaptedTask(stored.metaModelId, support, 0), kind, query);
    for (const format of EXPORT_FORMATS) {
      expectSamePrediction(await downloaded(`/meta-models/${encodeURIComponent(`${stored.name}@latest`)}/model`, format, kind, query), expected, `${algorithm} ${format}`);
    }
  });

  it("answers 409 for ProtoNets (no head of its own), 404 for an unknown model", async () => {
    const stored = await storeTiny('protonet', 'classification', 'relu');
    const response = await api.app.inject({ method: 'GET', url: `/meta-models/${stored.metaModelId}/model?format=onnx`, headers: tenant.headers });
    expect(response.statusCode).toBe(409);
    expect(response.json()).toMatchObject({ title: 'Meta-model has no head', algorithm: 'protonet', metaModelId: stored.metaModelId });
    const unknown = await api.app.inject({ method: 'GET', url: '/meta-models/nope@7/model?format=tfjs', headers: tenant.headers });
    expect(unknown.statusCode).toBe(404);
  });
});
