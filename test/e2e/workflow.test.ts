/**
 * The whole workflow as a user runs it, through the generated TypeScript client only: a real
 * `src/main.ts --role all` process (HTTP API and worker pool) listening on a port, a key made with
 * the operator CLI, then a task family, a meta-training job followed over its event stream to the
 * end, the meta-model, a task adapted from a few examples, predictions both ways, and the adapted
 * model downloaded as ONNX and TF.js.
 *
 * The process gets a private database (its reconciler would otherwise run other tests' jobs) and a
 * queue prefix of its own on the shared Redis.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFastadaptClient, jobEvents, orThrow, ProblemError, type FastadaptClient, type JobEvent } from '../../clients/typescript/src/index.js';
import { startService, stopService, waitUntilReady, type Service } from '../../scripts/demo/service.js';
import { createPrivateDatabase, type PrivateDatabase } from '../integration/support/private-database.js';
import { SHARED_REDIS_URL, removePrefix, uniquePrefix } from '../integration/support/services.js';
import { expectSamePrediction, runOnnx, runTfjs } from '../unit/export/runtimes.js';

let database: PrivateDatabase;
let service: Service;
let prefix: string;
let env: Record<string, string>;
let api: FastadaptClient;

/** `npm run apikey -- create`, as an operator would: the key is the only thing on stdout. */
function createKey(tenant: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', 'scripts/apikey.ts', 'create', '--tenant', tenant], { env: { ...process.env, ...env } }, (error, stdout, stderr) =>
      error ? reject(new Error(`apikey create failed: ${stderr}`)) : resolve(stdout.trim()));
  });
}

/** y = A sin(x - phase) at `x`: a task of the family meta-trained on, never seen in training. */
const sine = (x: number[], amplitude = 3, phase = 0.8) => x.map((v) => amplitude * Math.sin(v - phase));

beforeAll(async () => {
  database = await createPrivateDatabase('e2e_workflow');
  prefix = uniquePrefix('e2e');
  env = { DATABASE_URL: database.url, REDIS_URL: SHARED_REDIS_URL, QUEUE_PREFIX: prefix, TFJS_BACKEND: 'cpu', LOG_LEVEL: 'warn' };
  service = await startService('all', env);
  await waitUntilReady(service, 90_000);
}, 120_000);

afterAll(async () => {
  if (service) await stopService(service, 10_000);
  await database?.drop();
  if (prefix) await removePrefix(SHARED_REDIS_URL, prefix);
}, 60_000);

describe('the workflow through the generated client', () => {
  let familyId: string;
  let metaModelId: string;
  let taskId: string;

  it('creates an API key and is refused without one', async () => {
    const anonymous = createFastadaptClient({ baseUrl: service.baseUrl });
    expect(await orThrow(anonymous.GET('/healthz'))).toEqual({ status: 'ok' });
    const refused = await anonymous.GET('/task-families', { params: { query: {} } });
    expect(refused.response.status).toBe(401);
    expect(refused.error).toMatchObject({ status: 401, title: 'Unauthorized' });

    const key = await createKey('e2e-workflow');
    expect(key).toMatch(/^\S{20,}$/);
    api = createFastadaptClient({ baseUrl: service.baseUrl, apiKey: key });
  }, 60_000);

  it('defines a task family', async () => {
    const family = await orThrow(api.POST('/task-families', {
      body: { name: 'sine', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid', params: { amplitude: [0.1, 5], phase: [0, Math.PI] } } },
    }));
    expect(family).toMatchObject({ name: 'sine', kind: 'regression', inputDim: 1, taskCount: 0 });
    familyId = family.id;
  });

  it('meta-trains MAML on it, following the job over its event stream to the end', async () => {
    const created = await api.POST('/meta-train', {
      body: {
        name: 'e2e-sine-maml',
        familyIds: [familyId],
        algorithm: 'maml',
        model: { hidden: [40, 40], activation: 'relu' },
        hyper: { iterations: 300, metaBatchSize: 8, shots: 10, queryShots: 10, innerLr: 0.01, metaLr: 0.003, evalEvery: 100, checkpointEvery: 100, seed: 7 },
      },
    });
    expect(created.response.status).toBe(202);
    const job = created.data!;
    expect(created.response.headers.get('location')).toBe(`/meta-train/${job.id}`);

    const seen: JobEvent[] = [];
    for await (const event of jobEvents(api, job.id)) seen.push(event);
    const final = seen.at(-1)!;
    expect(final.event).toBe('status');
    if (final.event !== 'status') throw new Error('unreachable');
    expect(final.data.status, JSON.stringify(final.data)).toBe('succeeded');
    expect(final.data.iteration).toBe(300);
    const metrics = seen.flatMap((event) => (event.event === 'metrics' ? [event.data] : []));
    expect(metrics.length).toBeGreaterThanOrEqual(2);
    expect(metrics.every((m) => Number.isFinite(m.valLoss))).toBe(true);
    metaModelId = final.data.metaModelId!;

    const done = await orThrow(api.GET('/meta-train/{id}', { params: { path: { id: job.id } } }));
    expect(done).toMatchObject({ status: 'succeeded', metaModelId, progress: { iteration: 300, iterations: 300 } });
  }, 120_000);

  it('finds the meta-model it produced under name@latest', async () => {
    const model = await orThrow(api.GET('/meta-models/{id}', { params: { path: { id: 'e2e-sine-maml@latest' } } }));
    expect(model).toMatchObject({ id: metaModelId, name: 'e2e-sine-maml', version: 1, algorithm: 'maml', kind: 'regression', inputDim: 1 });
    expect(model.aliases).toContain('latest');
  });

  it('creates a task, adapts it from 10 examples and predicts, by query and by batch', async () => {
    const task = await orThrow(api.POST('/tasks', { body: { metaModelId: 'e2e-sine-maml@latest', name: 'e2e-task' } }));
    expect(task).toMatchObject({ metaModelId, kind: 'regression', inputDim: 1, headVersion: null });
    taskId = task.id;

    const never = await api.POST('/tasks/{id}/predict', { params: { path: { id: taskId } }, body: { x: [[0]] } });
    expect(never.response.status).toBe(409);

    const xs = Array.from({ length: 10 }, (_, i) => -4.5 + i);
    const adapted = await api.POST('/tasks/{id}/adapt', { params: { path: { id: taskId } }, body: { support: { x: xs.map((v) => [v]), y: sine(xs) }, steps: 10 } });
    expect(adapted.response.status, JSON.stringify(adapted.error)).toBe(200);
    const result = adapted.data as { headVersion: number; steps: number; supportLoss: { before: number; after: number } };
    expect(result).toMatchObject({ headVersion: 1, steps: 10 });
    expect(result.supportLoss.after).toBeLessThan(result.supportLoss.before);

    const grid = [-2, -0.5, 1, 2.5];
    const byQuery = await orThrow(api.GET('/predict', { params: { query: { taskId, x: grid.map(String) } } }));
    const byBatch = await orThrow(api.POST('/tasks/{id}/predict', { params: { path: { id: taskId } }, body: { x: grid.map((v) => [v]) } }));
    expect(byQuery).toMatchObject({ taskId, headVersion: 1 });
    expect(byBatch.predictions).toEqual(byQuery.predictions);
    const predictions = byQuery.predictions as number[];
    expect(predictions).toHaveLength(grid.length);
    expect(predictions.every(Number.isFinite)).toBe(true);
  }, 60_000);

  it('downloads the adapted task as ONNX and TF.js; both answer as /predict does', async () => {
    const grid = [[-2], [-0.5], [1], [2.5]];
    const served = await orThrow(api.POST('/tasks/{id}/predict', { params: { path: { id: taskId } }, body: { x: grid } }));
    const expected = { kind: 'regression' as const, values: served.predictions as number[] };
    const onnx = await api.GET('/tasks/{id}/model', { params: { path: { id: taskId }, query: { format: 'onnx' } }, parseAs: 'arrayBuffer' });
    expect(onnx.response.headers.get('content-disposition')).toBe(`attachment; filename="task-${taskId}-v1.onnx"`);
    expectSamePrediction(await runOnnx(new Uint8Array(onnx.data as ArrayBuffer), grid, 'regression'), expected, 'onnx');
    const tfjs = await orThrow(api.GET('/tasks/{id}/model', { params: { path: { id: taskId }, query: { format: 'tfjs' } } }));
    expectSamePrediction(await runTfjs(JSON.stringify(tfjs), grid, 'regression'), expected, 'tfjs');
  });

  it('turns an error answer into a ProblemError naming the problem', async () => {
    const missing = api.GET('/meta-train/{id}', { params: { path: { id: 'no-such-job' } } });
    const error = await orThrow(missing).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ProblemError);
    expect(error).toMatchObject({ status: 404, problem: { status: 404, title: 'Not Found', instance: '/meta-train/no-such-job' } });

    const invalid = await api.POST('/tasks/{id}/adapt', { params: { path: { id: taskId } }, body: { support: { x: [[1, 2]], y: [0.5] } } });
    expect(invalid.response.status).toBe(400);
    expect(invalid.error?.errors?.[0]?.path).toMatch(/^\/support\/x/);
  });
});
