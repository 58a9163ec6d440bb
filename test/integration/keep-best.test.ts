/**
 * hyper.keepBest through the service (real Postgres and Redis, a worker pool in this process): a job
 * whose validation worsens after its best stores the best evaluation's meta-parameters, byte for
 * byte the engine's run of the same configuration; job and meta-model carry bestIteration, the job
 * its bestValidation (mean and interval of the metric runs are selected on), the metrics history
 * every point's intervals; keepBest false stores the last iteration's. A job resumed (as after its
 * worker was SIGKILLed) from a checkpoint taken after its best still stores that best.
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRunInputs, saveCheckpoint, startAttempt } from '../../src/db/repositories/training.js';
import { runMetaTrainJob } from '../../src/jobs/meta-train-processor.js';
import { CancelListener } from '../../src/jobs/cancel.js';
import { createFamily, decodeParams, initBackend, metaTrain, type Checkpoint, type HyperParams, type ModelConfig, type ParamArrays, type TrainConfig, type TrainEvent } from '../../src/meta/index.js';
import { newTenant, SINE, startApi, startWorker, waitForJob, type TestApi } from './support/api-app.js';
import { seedJob } from './support/training-fixtures.js';

let api: TestApi;
let worker: Awaited<ReturnType<typeof startWorker>>;
let headers: Record<string, string>;
let tenantId: string;
let familyId: string;

/** MAML on sinusoids with an outer step far too large: validation improves, then worsens (finite throughout). */
const OVERSHOOTING = { iterations: 40, metaBatchSize: 4, shots: 5, queryShots: 5, evalEvery: 4, checkpointEvery: 4, metaLr: 0.08, seed: 2 };
const MODEL = { hidden: [16, 16] };

interface Validation { metric: string; mean: number; ci95: number; iteration: number }
interface Point { iteration: number; trainLoss: number; valLoss: number; valLossCi95?: number }
interface Job {
  id: string;
  status: string;
  hyper: Record<string, unknown>;
  metrics: Point | null;
  bestIteration: number | null;
  bestValidation: Validation | null;
  engine: string | null;
  metaModelId: string | null;
}

beforeAll(async () => {
  await initBackend('cpu');
  api = await startApi('keep-best');
  worker = await startWorker(api);
  ({ headers, tenantId } = await newTenant(api.db));
  familyId = ((await api.app.inject({ method: 'POST', url: '/task-families', headers, payload: SINE })).json() as { id: string }).id;
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
});

async function train(hyper: object, name: string): Promise<Job> {
  const response = await api.app.inject({ method: 'POST', url: '/meta-train', headers, payload: { name, familyIds: [familyId], algorithm: 'maml', model: MODEL, hyper } });
  expect(response.statusCode, response.body).toBe(202);
  return waitForJob<Job>(api, headers, (response.json() as Job).id, (job) => !['queued', 'running'].includes(job.status));
}

const get = async <T>(url: string) => (await api.app.inject({ method: 'GET', url, headers })).json() as T;

/** The engine's run of the job's own stored configuration, in this process. */
async function engineRun(jobId: string, resumeFrom?: Checkpoint) {
  const inputs = (await loadRunInputs(api.db, jobId))!;
  const config: TrainConfig = {
    algorithm: 'maml',
    model: inputs.model as ModelConfig,
    hyper: inputs.hyper as Partial<HyperParams>,
    families: inputs.families.map(({ spec }) => ({ family: createFamily(spec), weight: 1 })),
  };
  const checkpoints: Checkpoint[] = [];
  for await (const event of metaTrain(config, { resumeFrom }) as AsyncGenerator<TrainEvent>) {
    if (event.type === 'checkpoint') checkpoints.push(event.checkpoint);
    if (event.type === 'result') return { result: event, checkpoints };
  }
  throw new Error('no result');
}

const bytes = (params: ParamArrays) => Object.fromEntries(Object.entries(params).map(([name, { data }]) => [name, Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64')]));
const storedParams = async (metaModelId: string) => decodeParams((await api.db.prisma.metaModel.findUniqueOrThrow({ where: { id: metaModelId } })).params);

describe('keepBest through POST /meta-train', () => {
  it('stores the best evaluation; job and meta-model name it, the job with its mean and interval', async () => {
    const job = await train(OVERSHOOTING, 'sine-best');
    expect(job).toMatchObject({ status: 'succeeded', hyper: { keepBest: true }, metrics: { iteration: 40 } });
    const { items } = await get<{ items: Point[] }>(`/meta-train/${job.id}/metrics`);
    const best = [...items].sort((a, b) => a.valLoss - b.valLoss || a.iteration - b.iteration)[0];
    expect(best.iteration).toBeLessThan(40);
    expect(items.at(-1)!.valLoss).toBeGreaterThan(best.valLoss);
    for (const item of items) expect(item.valLossCi95).toBeGreaterThan(0);
    expect(job.bestIteration).toBe(best.iteration);
    expect(job.bestValidation).toEqual({ metric: 'loss', mean: best.valLoss, ci95: best.valLossCi95, iteration: best.iteration });

    const model = await get<{ bestIteration: number | null; metrics: Point; engine: string | null }>(`/meta-models/${job.metaModelId}`);
    expect(model.bestIteration).toBe(best.iteration);
    expect(model.metrics).toMatchObject({ iteration: best.iteration, valLoss: best.valLoss, valLossCi95: best.valLossCi95 });
    const { result } = await engineRun(job.id);
    expect(result.best.iteration).toBe(best.iteration);
    // Job and meta-model name the engine that ran, as the engine's own run reports it.
    expect(result.engine).toMatch(/^(fused-wasm|tfjs-)/);
    expect(job.engine).toBe(result.engine);
    expect(model.engine).toBe(result.engine);
    expect(bytes(await storedParams(job.metaModelId!))).toEqual(bytes(result.model.params));
  });

  it('keepBest false stores the last iteration and still reports the best', async () => {
    const kept = await train(OVERSHOOTING, 'sine-best-twin');
    const job = await train({ ...OVERSHOOTING, keepBest: false }, 'sine-last');
    expect(job).toMatchObject({ status: 'succeeded', hyper: { keepBest: false }, bestIteration: kept.bestIteration, bestValidation: kept.bestValidation });
    const model = await get<{ bestIteration: number | null; metrics: Point }>(`/meta-models/${job.metaModelId}`);
    expect(model).toMatchObject({ bestIteration: null, metrics: { iteration: 40 } });
    const { result } = await engineRun(job.id);
    expect(bytes(await storedParams(job.metaModelId!))).toEqual(bytes(result.model.params));
    expect(bytes(result.model.params)).not.toEqual(bytes(await storedParams(kept.metaModelId!)));
  });

  it('refuses a keepBest that is not a boolean, naming the field', async () => {
    const response = await api.app.inject({ method: 'POST', url: '/meta-train', headers, payload: { familyIds: [familyId], algorithm: 'maml', hyper: { keepBest: 'yes' } } });
    expect(response.statusCode).toBe(400);
    expect(JSON.stringify(response.json())).toContain('/hyper/keepBest');
  });

  it('a job resumed from a checkpoint taken after its best (as a SIGKILLed worker leaves it) still stores that best', async () => {
    // Written straight to Postgres (so the worker pool above never sees it), then claimed by a run
    // that checkpointed after the best and died: running, attempt 1, its checkpoint stored.
    const { jobId } = await seedJob(api.db, { tenantId, name: 'sine-resumed', model: MODEL, hyper: OVERSHOOTING });
    const reference = await engineRun(jobId);
    const bestIteration = reference.result.best.iteration;
    const after = reference.checkpoints.find((c) => c.iteration > bestIteration)!;
    expect(after.best?.point.iteration).toBe(bestIteration);
    const first = (await startAttempt(api.db, jobId))!;
    await saveCheckpoint(api.db, first.fence, after);

    const logger = pino({ level: 'silent' });
    const cancels = await CancelListener.start(api.redis, api.prefix, logger);
    try {
      const outcome = await runMetaTrainJob({ db: api.db, redis: api.redis, prefix: api.prefix, logger, cancels, progressIntervalMs: 0 }, jobId, new AbortController().signal);
      expect(outcome).toMatchObject({ outcome: 'succeeded' });
    } finally {
      await cancels.close();
    }
    const job = await get<Job>(`/meta-train/${jobId}`);
    expect(job).toMatchObject({ status: 'succeeded', bestIteration, bestValidation: { iteration: bestIteration } });
    const row = await api.db.prisma.metaModel.findUniqueOrThrow({ where: { jobId } });
    expect(row.bestIteration).toBe(bestIteration);
    expect(bytes(decodeParams(row.params))).toEqual(bytes(reference.result.model.params));
  });
});
