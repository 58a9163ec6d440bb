/**
 * Knowing when not to answer, through the API (issue 25 items 1-3): meta-training stores a
 * calibration with its meta-model; predict with `coverage` and `novelty` answers intervals or sets,
 * novelty and abstain, computed from the meta-model's calibration and the head's support set, and
 * without them answers exactly as before; bad fields are 400s naming them; an uncalibrated
 * meta-model is a 409; an evaluation's own adapted rows carry coverage, width and novelty AUROC.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Prisma } from '../../src/generated/prisma/client.js';
import { gaussianBlobs } from '../../src/meta/families/index.js';
import { calibrationForShots, fitCalibration, halfWidth, initBackend, quantileFor, type Calibration, type MetaModel } from '../../src/meta/index.js';
import { blobsTask, sineTask, storeMetaModel } from './support/adapt-fixtures.js';
import { waitUntil } from './support/training-fixtures.js';
import { newTenant, SINE, startApi, startWorker, waitForJob, type TestApi } from './support/api-app.js';

let api: TestApi;
let worker: Awaited<ReturnType<typeof startWorker>>;
let headers: Record<string, string>;
let tenantId: string;

beforeAll(async () => {
  await initBackend('cpu');
  api = await startApi('calibration');
  worker = await startWorker(api);
  ({ headers, tenantId } = await newTenant(api.db));
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
});

const inject = async (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) => api.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });

async function adaptedTask(metaModelId: string, support: { x: number[][]; y: number[] }): Promise<string> {
  const taskId = (await inject('POST', '/tasks', { metaModelId })).json().id;
  const response = await inject('POST', `/tasks/${taskId}/adapt`, { support });
  expect(response.statusCode, response.body).toBe(200);
  return taskId;
}

describe('a meta-trained sinusoid model', () => {
  let metaModelId: string;
  let calibration: Calibration;

  beforeAll(async () => {
    const familyId = (await inject('POST', '/task-families', SINE)).json().id;
    const hyper = { iterations: 20, metaBatchSize: 4, shots: 5, queryShots: 10, innerSteps: 1, innerLr: 0.01, evalEvery: 10, checkpointEvery: 10, seed: 3 };
    const created = await inject('POST', '/meta-train', { name: 'sine-calibrated', familyIds: [familyId], algorithm: 'maml', model: { hidden: [16, 16] }, hyper });
    expect(created.statusCode, created.body).toBe(202);
    const job = await waitForJob<{ status: string; metaModelId: string }>(api, headers, created.json().id, (j) => !['queued', 'running'].includes(j.status), 120_000);
    expect(job.status).toBe('succeeded');
    metaModelId = job.metaModelId;
  }, 180_000);

  it('carries a calibration fitted on validation tasks: quantiles by shots (1, 5, 10 and its own 5), a novelty threshold', async () => {
    const model = (await inject('GET', `/meta-models/${metaModelId}`)).json();
    calibration = model.calibration;
    expect(calibration).toMatchObject({ kind: 'regression', temperature: 1, tasks: 300, queryShots: 10 });
    expect(calibration.byShots.map((c) => c.shots)).toEqual([1, 5, 10]);
    expect(calibration.levels).toHaveLength(50);
    for (const c of calibration.byShots) {
      expect(c.n).toBe(3000);
      expect(['absolute', 'normalised']).toContain(c.score);
      expect(c.quantiles.every((q) => typeof q === 'number' && q >= 0)).toBe(true);
    }
    expect(Number.isFinite(calibration.noveltyThreshold)).toBe(true);
  });

  it('answers intervals, novelty and abstain with coverage and novelty; exactly as before without them', async () => {
    const task = sineTask(31, 3, 0.5, 10);
    const taskId = await adaptedTask(metaModelId, task.support);
    const plain = await inject('GET', `/predict?taskId=${taskId}&x=0.5&x=-2&x=40`);
    expect(plain.statusCode).toBe(200);
    expect(Object.keys(plain.json()).sort()).toEqual(['headVersion', 'predictions', 'taskId']);

    const rich = await inject('GET', `/predict?taskId=${taskId}&x=0.5&x=-2&x=40&coverage=0.9&novelty=true`);
    expect(rich.statusCode, rich.body).toBe(200);
    const body = rich.json() as { predictions: number[]; intervals: [number, number][]; novelty: number[]; abstain: boolean[] };
    expect(body.predictions).toEqual(plain.json().predictions);
    // 10 support points: the 10-shot calibration, its 0.9 quantile (scaled by the task's spread when normalised).
    const ten = calibrationForShots(calibration, 10);
    const h = halfWidth(ten, quantileFor(calibration, ten, 0.9), Float32Array.from(task.support.y));
    body.intervals.forEach(([lo, hi], i) => {
      expect(lo).toBeCloseTo(body.predictions[i] - h, 4);
      expect(hi).toBeCloseTo(body.predictions[i] + h, 4);
    });
    // x = 40 is far outside the family's [-5, 5]: the most novel, and abstained from.
    expect(body.novelty[2]).toBeGreaterThan(Math.max(body.novelty[0], body.novelty[1]));
    expect(body.abstain).toEqual(body.novelty.map((n) => n > calibration.noveltyThreshold));
    expect(body.abstain[2]).toBe(true);

    const post = await inject('POST', `/tasks/${taskId}/predict`, { x: [[0.5], [-2], [40]], coverage: 0.9, novelty: true });
    expect(post.json()).toEqual(body);
    // Novelty alone adds no intervals; a wider coverage widens them.
    expect(Object.keys((await inject('POST', `/tasks/${taskId}/predict`, { x: [[0.5]], novelty: true })).json()).sort()).toEqual(['abstain', 'headVersion', 'novelty', 'predictions', 'taskId']);
    const wide = (await inject('POST', `/tasks/${taskId}/predict`, { x: [[0.5]], coverage: 0.99 })).json();
    expect(wide.intervals[0][1] - wide.intervals[0][0]).toBeGreaterThan(body.intervals[0][1] - body.intervals[0][0]);
  });

  it('refuses a coverage outside [0.5, 0.99] or a novelty that is not a boolean, naming the field', async () => {
    const taskId = await adaptedTask(metaModelId, sineTask(32).support);
    for (const [query, path] of [['coverage=0.995', '/coverage'], ['coverage=0.2', '/coverage'], ['coverage=high', '/coverage'], ['novelty=yes', '/novelty']]) {
      const response = await inject('GET', `/predict?taskId=${taskId}&x=1&${query}`);
      expect(response.statusCode, query).toBe(400);
      expect(response.json().errors.map((e: { path: string }) => e.path)).toContain(path);
    }
    const post = await inject('POST', `/tasks/${taskId}/predict`, { x: [[1]], coverage: '0.9' });
    expect(post.statusCode).toBe(400);
  });

  it("gives its own adapted rows coverage near 0.9, width and novelty AUROC in an evaluation", async () => {
    const created = await inject('POST', `/meta-models/${metaModelId}/evaluations`, { shots: [10], steps: [0, 1], tasks: 100, baselines: [] });
    expect(created.statusCode, created.body).toBe(202);
    const evaluation = await waitUntil(async () => {
      const e = (await inject('GET', `/meta-models/${metaModelId}/evaluations/${created.json().id}`)).json() as { status: string; rows: Record<string, unknown>[] };
      return ['queued', 'running'].includes(e.status) ? undefined : e;
    }, 'the evaluation to end', 60_000);
    expect(evaluation.status).toBe('succeeded');
    const own = evaluation.rows.find((r) => r.steps === 1)!;
    expect(own.coverage).toBeGreaterThan(0.84);
    expect(own.coverage).toBeLessThan(0.96);
    expect(own.width).toBeGreaterThan(0);
    expect(own.noveltyAuroc).toBeGreaterThan(0.5);
    expect(evaluation.rows.find((r) => r.steps === 0)).not.toHaveProperty('coverage');
  });
});

describe('classification and uncalibrated meta-models', () => {
  it('answers prediction sets from the temperature-scaled probabilities, each holding the predicted label', async () => {
    const stored = await storeMetaModel(api.db, tenantId, { algorithm: 'protonet', kind: 'classification', inputDim: 2, nWay: 3, hidden: [16], inner: { steps: 0, lr: 0.01 } });
    const model: MetaModel = { algorithm: 'protonet', spec: stored.spec, params: stored.params, inner: stored.inner };
    const calibration = fitCalibration(model, gaussianBlobs({}, { inputDim: 2, ways: 3 }), { shots: [1, 5], tasks: 60, queryShots: 5, seed: 2 });
    await api.db.prisma.metaModel.update({ where: { id: stored.metaModelId }, data: { calibration: calibration as unknown as Prisma.InputJsonValue } });
    const task = blobsTask(41);
    const taskId = await adaptedTask(stored.metaModelId, task.support);
    const response = await inject('POST', `/tasks/${taskId}/predict`, { x: task.query.x.slice(0, 8), coverage: 0.9 });
    expect(response.statusCode, response.body).toBe(200);
    const body = response.json() as { predictions: { label: number }[]; sets: number[][] };
    expect(body.sets).toHaveLength(8);
    body.sets.forEach((set, i) => {
      expect(set).toContain(body.predictions[i].label);
      expect(set.every((label) => label >= 0 && label < 3)).toBe(true);
    });

    // The same task with class names: the same sets, named as its predictions' labels are.
    const names = ['red', 'green', 'blue'];
    const named = (await inject('POST', '/tasks', { metaModelId: stored.metaModelId, labels: names })).json().id as string;
    expect((await inject('POST', `/tasks/${named}/adapt`, { support: task.support })).statusCode).toBe(200);
    const namedResponse = await inject('POST', `/tasks/${named}/predict`, { x: task.query.x.slice(0, 8), coverage: 0.9 });
    expect(namedResponse.statusCode, namedResponse.body).toBe(200);
    const namedBody = namedResponse.json() as { predictions: { label: string; labelIndex: number }[]; sets: string[][] };
    expect(namedBody.predictions.map((p) => p.labelIndex)).toEqual(body.predictions.map((p) => p.label));
    expect(namedBody.sets).toEqual(body.sets.map((set) => set.map((index) => names[index])));
    namedBody.sets.forEach((set, i) => expect(set).toContain(namedBody.predictions[i].label));
  });

  it('answers 409 for coverage or novelty from a meta-model without calibration, and as before without them', async () => {
    const stored = await storeMetaModel(api.db, tenantId, { hidden: [8] });
    const taskId = await adaptedTask(stored.metaModelId, sineTask(33).support);
    expect((await inject('GET', `/predict?taskId=${taskId}&x=1`)).statusCode).toBe(200);
    const response = await inject('GET', `/predict?taskId=${taskId}&x=1&novelty=true`);
    expect(response.statusCode).toBe(409);
    expect(response.json()).toMatchObject({ title: 'Meta-model not calibrated', metaModelId: stored.metaModelId });
    expect((await inject('GET', `/meta-models/${stored.metaModelId}`)).json().calibration).toBeNull();
  });
});
