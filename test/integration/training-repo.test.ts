/**
 * The worker-side training repository on the real test database: fencing (a stale run writes
 * nothing), checkpoints round trip exactly through the codec, versions count up per name with the
 * `latest` alias moved (also when two jobs of one name finish at once), NaN is never stored; the
 * best evaluation so far (keepBest) rides on metrics, checkpoints and the stored meta-model.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../../src/db/client.js';
import {
  FencedOutError,
  NonFiniteValueError,
  finishCancelled,
  finishFailed,
  finishSucceeded,
  listUnfinishedJobIds,
  loadLatestCheckpoint,
  loadRunInputs,
  recordMetrics,
  recordProgress,
  saveCheckpoint,
  startAttempt,
  type Fence,
  type TrainedModel,
} from '../../src/db/repositories/training.js';
import { getJob } from '../../src/db/repositories/jobs.js';
import { loadMetaModel } from '../../src/db/repositories/meta-models.js';
import { modelSpec, type Checkpoint } from '../../src/meta/index.js';
import { TEST_DATABASE_URL } from './support/services.js';

let db: Db;
const tenants: string[] = [];

beforeAll(() => {
  db = createDb(TEST_DATABASE_URL);
});

afterEach(async () => {
  await db.prisma.tenant.deleteMany({ where: { id: { in: tenants.splice(0) } } });
});

afterAll(async () => {
  await db.close();
});

async function newTenant(): Promise<string> {
  const tenant = await db.prisma.tenant.create({ data: { name: `training-repo-${randomUUID()}` } });
  tenants.push(tenant.id);
  return tenant.id;
}

async function newJob(tenantId: string, name = 'sine', familyIds: string[] = [], studyId: string | null = null) {
  return db.prisma.metaTrainJob.create({
    data: { tenantId, name, algorithm: 'maml', familyIds, model: { hidden: [8], activation: 'relu' }, hyper: { iterations: 50 }, iterations: 50, studyId },
  });
}

async function started(jobId: string): Promise<Fence> {
  const run = await startAttempt(db, jobId);
  if (!run) throw new Error('job did not start');
  return run.fence;
}

const float32LE = (values: number[]) => {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return bytes;
};

function checkpointAt(iteration: number, fill = 0.25): Checkpoint {
  const param = (shape: number[], offset: number) => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => fill * (i + offset) - 1 / 3) });
  return {
    iteration,
    params: { 'body.0.weight': param([1, 8], 0), 'body.0.bias': param([8], 1), 'head.weight': param([8, 1], 2), 'head.bias': param([1], 3) },
    optimizer: {
      t: iteration,
      m: { 'body.0.weight': param([1, 8], 4), 'body.0.bias': param([8], 5), 'head.weight': param([8, 1], 6), 'head.bias': param([1], 7) },
      v: { 'body.0.weight': param([1, 8], 8), 'body.0.bias': param([8], 9), 'head.weight': param([8, 1], 10), 'head.bias': param([1], 11) },
    },
    rngState: 123456789 + iteration,
    pendingLoss: { sum: 1.5 + iteration, count: 3 },
  };
}

function trained(iteration: number, valLoss = 0.5): TrainedModel {
  return {
    model: { algorithm: 'maml', spec: modelSpec('regression', 1, { hidden: [8], activation: 'relu' }), params: checkpointAt(iteration).params, inner: { steps: 3, lr: 0.05 } },
    metrics: { iteration, trainLoss: 0.75, valLoss },
  };
}

describe('starting a run', () => {
  it('claims the job with a new fencing token each start; the stale run can no longer write', async () => {
    const job = await newJob(await newTenant());
    const first = await startAttempt(db, job.id);
    expect(first).toEqual({ fence: { jobId: job.id, attempt: 1 }, iteration: 0, iterations: 50, cancelRequested: false });
    await recordProgress(db, first!.fence, 7);
    const afterFirst = await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: job.id } });
    expect(afterFirst).toMatchObject({ status: 'running', attempts: 1, iteration: 7 });
    expect(afterFirst.startedAt).toBeInstanceOf(Date);

    const second = await startAttempt(db, job.id);
    expect(second).toMatchObject({ fence: { attempt: 2 }, iteration: 7 });
    await expect(recordProgress(db, first!.fence, 9)).rejects.toThrow(FencedOutError);
    await expect(saveCheckpoint(db, first!.fence, checkpointAt(9))).rejects.toThrow(FencedOutError);
    await expect(recordMetrics(db, first!.fence, { iteration: 9, trainLoss: 1, valLoss: 1 })).rejects.toThrow(FencedOutError);
    await expect(finishSucceeded(db, first!.fence, trained(9))).rejects.toThrow(FencedOutError);

    const row = await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: job.id } });
    expect(row).toMatchObject({ iteration: 7, attempts: 2, status: 'running', lastMetrics: null });
    // The first start's time is kept.
    expect(row.startedAt).toEqual(afterFirst.startedAt);
    expect(await db.prisma.checkpoint.count({ where: { jobId: job.id } })).toBe(0);
    expect(await db.prisma.metaModel.count({ where: { jobId: job.id } })).toBe(0);
  });

  it('does not start a job that ended or does not exist', async () => {
    const job = await newJob(await newTenant());
    await finishCancelled(db, await started(job.id), 0);
    expect(await startAttempt(db, job.id)).toBeNull();
    expect(await startAttempt(db, randomUUID())).toBeNull();
  });

  it('reports a cancel requested before the start and during the run', async () => {
    const job = await newJob(await newTenant());
    const fence = await started(job.id);
    expect(await recordProgress(db, fence, 1)).toEqual({ cancelRequested: false });
    await db.prisma.metaTrainJob.update({ where: { id: job.id }, data: { cancelRequestedAt: new Date() } });
    expect(await recordProgress(db, fence, 2)).toEqual({ cancelRequested: true });
    expect(await startAttempt(db, job.id)).toMatchObject({ cancelRequested: true });
  });

  it('loads the families in the job\'s order, dataset tasks decoded, other tenants\' families left out', async () => {
    const tenantId = await newTenant();
    const sine = await db.prisma.taskFamily.create({
      data: { tenantId, name: 'sine', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid', params: { amplitude: [0.1, 5] } } },
    });
    const blobs = await db.prisma.taskFamily.create({
      data: {
        tenantId,
        name: 'stored',
        kind: 'classification',
        inputDim: 2,
        nWay: 2,
        taskCount: 1,
        tasks: { create: [{ index: 0, examples: 3, x: float32LE([0.5, -1, 2, 0.25, -3, 4]), y: float32LE([0, 1, 1]) }] },
      },
    });
    const foreign = await db.prisma.taskFamily.create({
      data: { tenantId: await newTenant(), name: 'theirs', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid' } },
    });
    const job = await newJob(tenantId, 'multi', [blobs.id, sine.id, foreign.id]);
    const inputs = await loadRunInputs(db, job.id);
    expect(inputs?.familyIds).toEqual([blobs.id, sine.id, foreign.id]);
    expect(inputs?.families).toEqual([
      { id: blobs.id, spec: { name: 'stored', kind: 'classification', inputDim: 2, nWay: 2, tasks: [{ x: [[0.5, -1], [2, 0.25], [-3, 4]], y: [0, 1, 1] }] } },
      { id: sine.id, spec: { name: 'sine', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid', params: { amplitude: [0.1, 5] } } } },
    ]);
    expect(await loadRunInputs(db, randomUUID())).toBeNull();
  });
});

describe('during a run', () => {
  it('appends metrics (a resumed run replaces the same iteration) and copies the latest to the job', async () => {
    const job = await newJob(await newTenant());
    const fence = await started(job.id);
    await recordMetrics(db, fence, { iteration: 10, trainLoss: 2, valLoss: 3 });
    await recordMetrics(db, fence, { iteration: 20, trainLoss: 1, valLoss: 1.5, valAccuracy: 0.5 });
    await recordMetrics(db, fence, { iteration: 20, trainLoss: 0.9, valLoss: 1.25, valAccuracy: 0.625 });
    const rows = await db.prisma.jobMetric.findMany({ where: { jobId: job.id }, orderBy: { iteration: 'asc' } });
    expect(rows.map(({ iteration, trainLoss, valLoss, valAccuracy }) => ({ iteration, trainLoss, valLoss, valAccuracy }))).toEqual([
      { iteration: 10, trainLoss: 2, valLoss: 3, valAccuracy: null },
      { iteration: 20, trainLoss: 0.9, valLoss: 1.25, valAccuracy: 0.625 },
    ]);
    const row = await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: job.id } });
    expect(row.lastMetrics).toEqual({ iteration: 20, trainLoss: 0.9, valLoss: 1.25, valAccuracy: 0.625 });
  });

  it('refuses NaN and infinite metrics, storing nothing', async () => {
    const job = await newJob(await newTenant());
    const fence = await started(job.id);
    await expect(recordMetrics(db, fence, { iteration: 5, trainLoss: Number.NaN, valLoss: 1 })).rejects.toThrow(NonFiniteValueError);
    await expect(recordMetrics(db, fence, { iteration: 5, trainLoss: 1, valLoss: Infinity })).rejects.toThrow(/valLoss is Infinity/);
    expect(await db.prisma.jobMetric.count({ where: { jobId: job.id } })).toBe(0);
    expect((await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: job.id } })).lastMetrics).toBeNull();
  });

  it('round-trips a checkpoint bit for bit and keeps only the latest', async () => {
    const job = await newJob(await newTenant());
    const fence = await started(job.id);
    expect(await loadLatestCheckpoint(db, job.id)).toBeNull();
    await saveCheckpoint(db, fence, checkpointAt(10, 0.1));
    await saveCheckpoint(db, fence, checkpointAt(20, 0.2));
    expect(await db.prisma.checkpoint.findMany({ where: { jobId: job.id }, select: { iteration: true } })).toEqual([{ iteration: 20 }]);
    expect(await loadLatestCheckpoint(db, job.id)).toEqual(checkpointAt(20, 0.2));
  });

  it('records each evaluation with its intervals and copies the best so far to the job, as bestValidation', async () => {
    const job = await newJob(await newTenant());
    const fence = await started(job.id);
    const first = { iteration: 10, trainLoss: 2, valLoss: 1.5, valLossCi95: 0.2, valAccuracy: 0.6, valAccuracyCi95: 0.05 };
    const second = { iteration: 20, trainLoss: 1, valLoss: 1.75, valLossCi95: 0.25, valAccuracy: 0.55, valAccuracyCi95: 0.04 };
    await recordMetrics(db, fence, first, first);
    await recordMetrics(db, fence, second, first);
    const rows = await db.prisma.jobMetric.findMany({ where: { jobId: job.id }, orderBy: { iteration: 'asc' } });
    expect(rows.map(({ iteration, valLossCi95, valAccuracyCi95 }) => ({ iteration, valLossCi95, valAccuracyCi95 }))).toEqual([
      { iteration: 10, valLossCi95: 0.2, valAccuracyCi95: 0.05 },
      { iteration: 20, valLossCi95: 0.25, valAccuracyCi95: 0.04 },
    ]);
    const row = await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: job.id } });
    expect(row).toMatchObject({ bestIteration: 10, bestMetrics: first, lastMetrics: second });
    expect(await getJob(db, row.tenantId, job.id)).toMatchObject({ bestIteration: 10, bestValidation: { metric: 'accuracy', mean: 0.6, ci95: 0.05, iteration: 10 } });
    await expect(recordMetrics(db, fence, second, { ...first, valAccuracy: Number.NaN })).rejects.toThrow(NonFiniteValueError);
  });

  it("round-trips a checkpoint's best evaluation and its meta-parameters; refuses NaN in them", async () => {
    const job = await newJob(await newTenant());
    const fence = await started(job.id);
    const withBest: Checkpoint = { ...checkpointAt(20, 0.2), best: { point: { iteration: 10, trainLoss: 2, valLoss: 1.5, valLossCi95: 0.2 }, params: checkpointAt(10, 0.1).params } };
    await saveCheckpoint(db, fence, withBest);
    expect(await loadLatestCheckpoint(db, job.id)).toEqual(withBest);
    const bad = structuredClone(withBest);
    bad.best!.params['head.bias'].data[0] = Number.NaN;
    await expect(saveCheckpoint(db, fence, { ...bad, iteration: 30 })).rejects.toThrow(/non-finite/);
    await expect(saveCheckpoint(db, fence, { ...withBest, iteration: 30, best: { ...withBest.best!, point: { ...withBest.best!.point, valLoss: Number.NaN } } })).rejects.toThrow(NonFiniteValueError);
    expect(await loadLatestCheckpoint(db, job.id)).toEqual(withBest);
  });

  it('refuses a checkpoint holding NaN', async () => {
    const job = await newJob(await newTenant());
    const fence = await started(job.id);
    const bad = checkpointAt(10);
    bad.params['head.bias'].data[0] = Number.NaN;
    await expect(saveCheckpoint(db, fence, bad)).rejects.toThrow(/non-finite/);
    expect(await db.prisma.checkpoint.count({ where: { jobId: job.id } })).toBe(0);
  });
});

describe('ending a run', () => {
  it('stores meta-model versions counting up per name, moves `latest`, drops checkpoints', async () => {
    const tenantId = await newTenant();
    const other = await newTenant();
    const ids: string[] = [];
    for (const [tenant, name] of [[tenantId, 'sine'], [tenantId, 'sine'], [tenantId, 'lines'], [other, 'sine']] as const) {
      const job = await newJob(tenant, name);
      const fence = await started(job.id);
      await saveCheckpoint(db, fence, checkpointAt(25));
      const model = await finishSucceeded(db, fence, trained(50));
      ids.push(model.id);
      expect(await db.prisma.checkpoint.count({ where: { jobId: job.id } })).toBe(0);
      const row = await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: job.id } });
      expect(row).toMatchObject({ status: 'succeeded', iteration: 50, lastMetrics: { iteration: 50, trainLoss: 0.75, valLoss: 0.5 } });
      expect(row.finishedAt).toBeInstanceOf(Date);
      await expect(finishFailed(db, fence, 'late', 50)).rejects.toThrow(FencedOutError);
    }
    const models = await db.prisma.metaModel.findMany({ where: { id: { in: ids } }, include: { aliases: true } });
    const byId = new Map(models.map((m) => [m.id, m]));
    expect(ids.map((id) => [byId.get(id)?.name, byId.get(id)?.version])).toEqual([['sine', 1], ['sine', 2], ['lines', 1], ['sine', 1]]);
    expect(byId.get(ids[0])?.aliases).toEqual([]);
    expect(byId.get(ids[1])?.aliases.map((a) => a.alias)).toEqual(['latest']);
    expect(byId.get(ids[1])).toMatchObject({ kind: 'regression', inputDim: 1, nWay: null, model: { hidden: [8], activation: 'relu' }, innerSteps: 3, innerLr: 0.05, metrics: { valLoss: 0.5 } });
  });

  it("keeps a study trial's final checkpoint only while its study runs, and leaves `latest` to the study", async () => {
    const tenantId = await newTenant();
    const study = await db.prisma.study.create({ data: { tenantId, name: 'trials', familyIds: [], settings: {} } });
    const trial = async () => {
      const job = await newJob(tenantId, 'trials', [], study.id);
      const fence = await started(job.id);
      const model = await finishSucceeded(db, fence, { ...trained(50), checkpoint: checkpointAt(50) });
      return { kept: await db.prisma.checkpoint.count({ where: { jobId: job.id } }), model };
    };
    const running = await trial();
    expect(running.kept).toBe(1);
    // A cancelled study resumes nothing: a trial that succeeds after the cancel keeps no checkpoint.
    await db.prisma.study.update({ where: { id: study.id }, data: { status: 'cancelled' } });
    expect((await trial()).kept).toBe(0);
    // Neither trial moved `latest` (the study moves it to its winner when it ends).
    expect(await db.prisma.metaModelAlias.count({ where: { tenantId, name: 'trials' } })).toBe(0);
    expect(running.model.version).toBe(1);
  });

  it('stores the kept evaluation and bestIteration on the meta-model, the last and the best on the job', async () => {
    const job = await newJob(await newTenant());
    const fence = await started(job.id);
    const best = { iteration: 30, trainLoss: 1, valLoss: 0.25, valLossCi95: 0.05 };
    const last = { iteration: 50, trainLoss: 0.5, valLoss: 0.75, valLossCi95: 0.1 };
    const { id } = await finishSucceeded(db, fence, { ...trained(30), metrics: best, bestIteration: 30, last, best });
    expect(await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: job.id } })).toMatchObject({ iteration: 50, lastMetrics: last, bestIteration: 30, bestMetrics: best });
    expect(await db.prisma.metaModel.findUniqueOrThrow({ where: { id } })).toMatchObject({ bestIteration: 30, metrics: best });
    // Without keepBest: the last is stored and the meta-model names no best.
    const other = await newJob(await newTenant());
    const kept = await finishSucceeded(db, await started(other.id), { ...trained(50), metrics: last, last, best });
    expect(await db.prisma.metaModel.findUniqueOrThrow({ where: { id: kept.id } })).toMatchObject({ bestIteration: null, metrics: last });
    expect(await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: other.id } })).toMatchObject({ iteration: 50, bestIteration: 30 });
  });

  it('stores the inner loop with the meta-model, so loading it reads nothing of its job', async () => {
    const job = await newJob(await newTenant());
    const { id } = await finishSucceeded(db, await started(job.id), trained(50));
    // The job's record says otherwise: the meta-model's own settings are what adaptation starts from.
    await db.prisma.metaTrainJob.update({ where: { id: job.id }, data: { hyper: { innerSteps: 9, innerLr: 0.9 } } });
    const loaded = await loadMetaModel(db, id);
    expect(loaded?.model).toMatchObject({ algorithm: 'maml', inner: { steps: 3, lr: 0.05 }, spec: { kind: 'regression', inputDim: 1, hidden: [8] } });
    expect(Object.keys(loaded?.model.params ?? {})).toEqual(Object.keys(trained(50).model.params));
  });

  it('gives two jobs of one name finishing at once distinct versions', async () => {
    const tenantId = await newTenant();
    const fences = await Promise.all([0, 1, 2].map(async () => started((await newJob(tenantId, 'race')).id)));
    const models = await Promise.all(fences.map((fence) => finishSucceeded(db, fence, trained(50))));
    expect(models.map((m) => m.version).sort()).toEqual([1, 2, 3]);
    const latest = await db.prisma.metaModelAlias.findUniqueOrThrow({ where: { tenantId_name_alias: { tenantId, name: 'race', alias: 'latest' } } });
    expect(latest.metaModelId).toBe(models.find((m) => m.version === 3)?.id);
  });

  it('refuses to store a meta-model with NaN metrics or parameters', async () => {
    const job = await newJob(await newTenant());
    const fence = await started(job.id);
    await expect(finishSucceeded(db, fence, trained(50, Number.NaN))).rejects.toThrow(NonFiniteValueError);
    const bad = trained(50);
    bad.model.params['head.weight'].data[3] = Number.POSITIVE_INFINITY;
    await expect(finishSucceeded(db, fence, bad)).rejects.toThrow(/non-finite/);
    expect(await db.prisma.metaModel.count({ where: { jobId: job.id } })).toBe(0);
    expect(await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: job.id } })).toMatchObject({ status: 'running' });
  });

  it('fails with a bounded error text and cancels, dropping checkpoints', async () => {
    const tenantId = await newTenant();
    const failed = await newJob(tenantId);
    const failFence = await started(failed.id);
    await saveCheckpoint(db, failFence, checkpointAt(10));
    await finishFailed(db, failFence, `diverged ${'x'.repeat(5000)}`, 13);
    const failedRow = await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: failed.id } });
    expect(failedRow).toMatchObject({ status: 'failed', iteration: 13 });
    expect(failedRow.error?.startsWith('diverged x')).toBe(true);
    expect(failedRow.error?.length).toBeLessThanOrEqual(2000);
    expect(await db.prisma.checkpoint.count({ where: { jobId: failed.id } })).toBe(0);

    const cancelled = await newJob(tenantId);
    await finishCancelled(db, await started(cancelled.id), 12);
    expect(await db.prisma.metaTrainJob.findUniqueOrThrow({ where: { id: cancelled.id } })).toMatchObject({ status: 'cancelled', iteration: 12 });
  });
});

describe('reconciler query', () => {
  it('pages through queued and running jobs not written since the given time', async () => {
    const tenantId = await newTenant();
    const queued = await newJob(tenantId);
    const running = await newJob(tenantId);
    await started(running.id);
    const ended = await newJob(tenantId);
    await finishCancelled(db, await started(ended.id), 0);
    const since = new Date(Date.now() + 1_000);
    const seen: string[] = [];
    for (let after: string | undefined; ; ) {
      const page = await listUnfinishedJobIds(db, since, 1, after);
      if (page.length === 0) break;
      seen.push(...page);
      after = page[page.length - 1];
    }
    expect(seen).toContain(queued.id);
    expect(seen).toContain(running.id);
    expect(seen).not.toContain(ended.id);
    expect([...seen].sort()).toEqual(seen);

    // A job written after the cut-off (e.g. a run reporting progress) is left alone.
    await recordProgress(db, { jobId: running.id, attempt: 1 }, 3);
    const fresh = await listUnfinishedJobIds(db, new Date(Date.now() - 60_000), 1_000);
    expect(fresh).not.toContain(running.id);
    expect(fresh).not.toContain(queued.id);
  });
});
