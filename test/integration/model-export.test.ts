/**
 * Model export: for every algorithm, every task kind it supports and every activation, a task
 * adapted by the real worker downloads as ONNX and as a TF.js LayersModel; loaded in onnxruntime-node
 * and @tensorflow/tfjs, each answers as /predict does on the same inputs (1e-5). A meta-model exports
 * as what a task adapted with zero steps predicts. A conv body (served through the engine) exports
 * too, its files answering as /predict does to 1e-4. Errors: 400 naming /format, 404, 409 for a task
 * never adapted, and 409 with its reason for a meta-model with no head worth a file: ProtoNets' and
 * multitask's (no head) and one meta-trained with hyper.zeroHead (a head of zeros), whose adapted
 * tasks export. A calibrated meta-model's files answer /predict's probabilities at its temperature.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPORT_FORMATS, type ExportFormat } from '../../src/export/index.js';
import { temperatureScale } from '../../src/meta/conformal.js';
import { ACTIVATIONS, ALGORITHM_NAMES, getAlgorithm, initBackend, Rng, type Activation, type AlgorithmName, type Prediction, type TaskKind } from '../../src/meta/index.js';
import { expectSamePrediction, runOnnx, runTfjs } from '../unit/export/runtimes.js';
import { blobsTask, sineTask, storeMetaModel } from './support/adapt-fixtures.js';
import { newTenant, startApi, startWorker, waitForJob, type TestApi } from './support/api-app.js';

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

  /** GET the meta-model's file in both formats: each a 409 problem carrying `reason`; returns the ONNX one's body. */
  async function refused(ref: string, reason: string): Promise<Record<string, unknown>> {
    const bodies = [];
    for (const format of EXPORT_FORMATS) {
      const response = await api.app.inject({ method: 'GET', url: `/meta-models/${encodeURIComponent(ref)}/model?format=${format}`, headers: tenant.headers });
      expect(response.statusCode, `${ref} ${format}: ${response.body}`).toBe(409);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.headers['content-disposition']).toBeUndefined();
      bodies.push(response.json() as Record<string, unknown>);
    }
    expect(bodies[0]).toMatchObject({ status: 409, reason });
    expect(bodies[1]).toEqual({ ...bodies[0], instance: expect.any(String) });
    return bodies[0];
  }

  it.each([
    ['protonet', 'classification'],
    ['multitask', 'classification'],
    ['multitask', 'regression'],
  ] as const)('answers 409 no-head for %s (%s): each task builds its own head', async (algorithm, kind) => {
    const stored = await storeTiny(algorithm, kind, 'relu');
    expect(await refused(stored.metaModelId, 'no-head')).toMatchObject({
      title: 'Meta-model has no head', algorithm, metaModelId: stored.metaModelId, detail: expect.stringMatching(/built from its support set/),
    });
  });

  it('answers 409 zero-head for a meta-model trained with hyper.zeroHead; a task adapted from it exports what /predict answers (probabilities at its calibrated temperature)', async () => {
    // Meta-trained by the worker, so the refusal sees what the zeroHead path really stores.
    const blobs = (await api.app.inject({ method: 'POST', url: '/task-families', headers: tenant.headers, payload: { name: 'blobs-zero-head', kind: 'classification', inputDim: 2, nWay: 3, generator: { type: 'gaussian-blobs' } } })).json().id as string;
    const created = await api.app.inject({
      method: 'POST', url: '/meta-train', headers: tenant.headers,
      payload: { name: 'anil-zero-head', familyIds: [blobs], algorithm: 'anil', model: { hidden: [12, 8] }, hyper: { iterations: 10, metaBatchSize: 4, shots: 2, queryShots: 4, innerSteps: 3, innerLr: 0.05, evalEvery: 10, checkpointEvery: 10, zeroHead: true } },
    });
    expect(created.statusCode, created.body).toBe(202);
    const job = await waitForJob<{ status: string; metaModelId: string | null }>(api, tenant.headers, created.json().id as string, (j) => j.status !== 'queued' && j.status !== 'running', 60_000);
    expect(job.status).toBe('succeeded');
    expect(await refused('anil-zero-head@latest', 'zero-head')).toMatchObject({
      title: 'Meta-model head is zero', algorithm: 'anil', metaModelId: job.metaModelId, detail: expect.stringMatching(/hyper\.zeroHead.*uniform probabilities and label 0/),
    });
    const { support, query } = taskData('classification', 71);
    const taskId = await adaptedTask(job.metaModelId!, support);
    // Meta-training calibrated it: the file's probabilities are /predict's at the calibration's temperature.
    const { temperature } = (await api.app.inject({ method: 'GET', url: `/meta-models/${job.metaModelId}`, headers: tenant.headers })).json().calibration as { temperature: number };
    const answered = await served(taskId, 'classification', query);
    if (answered.kind !== 'classification') throw new Error('wrong kind');
    const expected = { ...answered, probabilities: answered.probabilities.map((p) => temperatureScale(p, temperature)) };
    for (const format of EXPORT_FORMATS) expectSamePrediction(await downloaded(`/tasks/${taskId}/model`, format, 'classification', query), expected, `zero-head task ${format}`);

    // Regression: a zero head answers 0 for every input, and is refused the same way.
    const { params } = await storeTiny('maml', 'regression', 'relu');
    for (const name of ['head.weight', 'head.bias']) params[name] = { shape: params[name].shape, data: new Float32Array(params[name].data.length) };
    const zero = await storeMetaModel(api.db, tenant.tenantId, { algorithm: 'maml', kind: 'regression', hidden: [12, 8], inner: { steps: 3, lr: 0.05 }, params });
    expect(await refused(zero.metaModelId, 'zero-head')).toMatchObject({ algorithm: 'maml', detail: expect.stringMatching(/answer 0 for every input/) });
  });

  it('answers 404 for an unknown model', async () => {
    const unknown = await api.app.inject({ method: 'GET', url: '/meta-models/nope@7/model?format=tfjs', headers: tenant.headers });
    expect(unknown.statusCode).toBe(404);
  });
});
