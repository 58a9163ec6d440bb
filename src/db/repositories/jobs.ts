/**
 * Meta-training jobs, the `meta_train_jobs` table as clients see it: create (with idempotency), read,
 * list, cancel, metrics history. A run of a job (its start, progress, checkpoints and outcome, all
 * fenced) is training.ts. Postgres is the only truth about a job's status, whatever Redis says.
 */
import type { Prisma} from '../client.js';
import { isUniqueViolation, type Db } from '../client.js';
import { apiHyper, DEFAULT_HYPER, type AlgorithmName, type ApiHyperParams, type HyperParams, storedModelConfig, type MetricsPoint, type StoredModelConfig, type Validation, validationOf } from '../../meta/index.js';
import { keyset, toPage, type Page, type PageRequest } from './pagination.js';

/** A job's statuses (the database enum and the job resource's `status`). */
export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** The job as clients read it (the API's job resource). */
export interface JobView {
  id: string;
  name: string;
  status: JobStatus;
  algorithm: AlgorithmName;
  familyIds: string[];
  model: StoredModelConfig;
  /** After defaults were applied (resolveHyper); the engine-only fields are left out. */
  hyper: ApiHyperParams;
  progress: { iteration: number; iterations: number };
  /** The latest evaluation. */
  metrics: MetricsPoint | null;
  /** The iteration of the best validation evaluation so far (what keepBest stores); null before the first. */
  bestIteration: number | null;
  /** The best evaluation's selected metric with its interval (what a study ranks by); null before the first. */
  bestValidation: Validation | null;
  /** The engine meta-training ran on ('fused-wasm', 'onnxruntime' or 'tfjs-<backend>'); null until it succeeds. */
  engine: string | null;
  metaModelId: string | null;
  error: string | null;
  cancelRequested: boolean;
  /** The study this job is a trial of, or null. */
  studyId: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** A job to create: the request after defaults were applied and validated against its families. */
export interface NewJob {
  name: string;
  algorithm: AlgorithmName;
  familyIds: string[];
  model: JobView['model'];
  /** Every field, engine-only ones included: the worker trains with exactly these. */
  hyper: HyperParams;
}

/** The same Idempotency-Key was sent before with a different request body. */
export class IdempotencyConflictError extends Error {
  constructor(readonly jobId: string) {
    super(`Idempotency-Key was already used for job ${jobId} with a different request body`);
    this.name = 'IdempotencyConflictError';
  }
}

const WITH_MODEL = { metaModel: { select: { id: true } } } as const;
type JobRow = Prisma.MetaTrainJobGetPayload<{ include: typeof WITH_MODEL }>;

const iso = (date: Date | null) => (date === null ? null : date.toISOString());

export function jobView(row: JobRow): JobView {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    algorithm: row.algorithm,
    familyIds: row.familyIds,
    model: storedModelConfig(row.model),
    // A job stored before a field was declared ran with its default (e.g. `tasks`, which only multitask reads).
    hyper: apiHyper({ ...DEFAULT_HYPER, ...(row.hyper as unknown as HyperParams) }),
    progress: { iteration: row.iteration, iterations: row.iterations },
    metrics: (row.lastMetrics as JobView['metrics']) ?? null,
    bestIteration: row.bestIteration,
    bestValidation: row.bestMetrics === null ? null : validationOf(row.bestMetrics as unknown as MetricsPoint),
    engine: row.engine,
    metaModelId: row.metaModel?.id ?? null,
    error: row.error,
    cancelRequested: row.cancelRequestedAt !== null,
    studyId: row.studyId,
    createdAt: row.createdAt.toISOString(),
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
  };
}

/** Idempotency: the key plus the SHA-256 of the canonical request body. */
export interface Idempotency {
  key: string;
  requestHash: string;
  /** How long the key maps to the job it created (config.idempotencyTtlMs); then it is free again. */
  ttlMs: number;
}

async function replay(db: Db, tenantId: string, idempotency: Idempotency): Promise<JobView | null> {
  const row = await keyedRow(idempotency, {
    find: () => db.prisma.metaTrainJob.findUnique({ where: { tenantId_idempotencyKey: { tenantId, idempotencyKey: idempotency.key } }, include: WITH_MODEL }),
    release: (id) => db.prisma.metaTrainJob.updateMany({ where: { id, idempotencyKey: idempotency.key }, data: { idempotencyKey: null, requestHash: null } }),
    conflict: (id) => new IdempotencyConflictError(id),
  });
  return row && jobView(row);
}

/**
 * The row an Idempotency-Key made, or null when the key is free. An expired key is released first:
 * the old row keeps everything but the key, which a new one may take (two requests racing here are
 * settled like any other, by the unique constraint on the insert).
 * @throws what `conflict` makes, for the same key with a different request body.
 */
export async function keyedRow<R extends { id: string; createdAt: Date; requestHash: string | null }>(
  idempotency: Idempotency,
  rows: { find: () => Promise<R | null>; release: (id: string) => Promise<unknown>; conflict: (id: string) => Error },
): Promise<R | null> {
  const row = await rows.find();
  if (!row) return null;
  if (Date.now() - row.createdAt.getTime() > idempotency.ttlMs) {
    await rows.release(row.id);
    return null;
  }
  if (row.requestHash !== idempotency.requestHash) throw rows.conflict(row.id);
  return row;
}

/** The tenant already has `limit` jobs queued or running (MAX_CONCURRENT_JOBS_PER_TENANT). */
export class ActiveJobLimitError extends Error {
  constructor(readonly limit: number, readonly active: number) {
    super(`This tenant already has ${active} meta-training jobs queued or running (limit ${limit}); wait for one to end or cancel one`);
    this.name = 'ActiveJobLimitError';
  }
}

/**
 * Takes the tenant's job-quota lock (released with the transaction) and counts its queued and running
 * jobs: every writer of jobs (a request, a study's scheduler) counts under it, so together they
 * cannot pass MAX_CONCURRENT_JOBS_PER_TENANT.
 */
export async function lockActiveJobs(tx: Prisma.TransactionClient, tenantId: string): Promise<number> {
  await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`active-jobs:${tenantId}`}, 0))`;
  return tx.metaTrainJob.count({ where: { tenantId, status: { in: ['queued', 'running'] } } });
}

/** The columns of a new queued job row. */
export function newJobRow(tenantId: string, job: NewJob, studyId: string | null = null) {
  return {
    tenantId,
    name: job.name,
    algorithm: job.algorithm,
    familyIds: job.familyIds,
    model: job.model as unknown as Prisma.InputJsonValue,
    hyper: { ...job.hyper },
    iterations: job.hyper.iterations,
    studyId,
  };
}

/**
 * Writes a queued job. With an idempotency key, a job made with the same key and body within the
 * key's time to live is returned instead (`created: false`); two requests racing with the same key are settled by the
 * (tenant, key) unique constraint, the loser reading the winner's job.
 * With `maxActive`, the count of the tenant's queued and running jobs and the insert happen under a
 * per-tenant advisory lock, so simultaneous requests cannot together pass the limit.
 * @throws IdempotencyConflictError for the same key with a different body.
 * @throws ActiveJobLimitError when `maxActive` jobs are already queued or running.
 */
export async function createJob(
  db: Db,
  tenantId: string,
  job: NewJob,
  idempotency?: Idempotency,
  options: { maxActive?: number } = {},
): Promise<{ job: JobView; created: boolean }> {
  if (idempotency) {
    const existing = await replay(db, tenantId, idempotency);
    if (existing) return { job: existing, created: false };
  }
  try {
    const row = await db.prisma.$transaction(async (tx) => {
      if (options.maxActive !== undefined) {
        const active = await lockActiveJobs(tx, tenantId);
        if (active >= options.maxActive) throw new ActiveJobLimitError(options.maxActive, active);
      }
      return tx.metaTrainJob.create({
        data: {
          ...newJobRow(tenantId, job),
          idempotencyKey: idempotency?.key ?? null,
          requestHash: idempotency?.requestHash ?? null,
        },
        include: WITH_MODEL,
      });
    });
    return { job: jobView(row), created: true };
  } catch (error) {
    if (idempotency && isUniqueViolation(error)) {
      const winner = await replay(db, tenantId, idempotency);
      if (winner) return { job: winner, created: false };
    }
    throw error;
  }
}

/** One job of the tenant, or null (another tenant's job too). */
export async function getJob(db: Db, tenantId: string, id: string): Promise<JobView | null> {
  const row = await db.prisma.metaTrainJob.findFirst({ where: { id, tenantId }, include: WITH_MODEL });
  return row ? jobView(row) : null;
}

/** The tenant's jobs, newest first, optionally with one status or of one study. @throws InvalidCursorError */
export async function listJobs(db: Db, tenantId: string, page: PageRequest & { status?: JobStatus; studyId?: string }): Promise<Page<JobView>> {
  const { after, orderBy } = keyset(page.cursor);
  const rows = await db.prisma.metaTrainJob.findMany({
    where: { tenantId, ...(page.status ? { status: page.status } : {}), ...(page.studyId === undefined ? {} : { studyId: page.studyId }), ...after },
    orderBy,
    take: page.limit + 1,
    include: WITH_MODEL,
  });
  return toPage(rows, page.limit, jobView);
}

/**
 * What a cancel request did: `cancelled` (it was still queued and is now cancelled), `requested`
 * (it is running; its worker must stop it), `ended` (it had already ended), or `missing`.
 */
export type CancelOutcome =
  | { outcome: 'cancelled' | 'requested' | 'ended'; job: JobView }
  | { outcome: 'missing' };

/**
 * Asks a job to stop. A queued job is cancelled at once; a running one gets `cancelRequestedAt` (kept
 * from the first request), which its worker checks. Each step is one conditional UPDATE, so a job
 * that changes status meanwhile (a worker starting it) is seen in its new status on the next step.
 */
export async function requestCancel(db: Db, tenantId: string, id: string): Promise<CancelOutcome> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const now = new Date();
    const queued = await db.prisma.metaTrainJob.updateMany({
      where: { id, tenantId, status: 'queued' },
      data: { status: 'cancelled', cancelRequestedAt: now, finishedAt: now },
    });
    if (queued.count === 1) return { outcome: 'cancelled', job: (await getJob(db, tenantId, id))! };
    const requested = await db.prisma.metaTrainJob.updateMany({ where: { id, tenantId, status: 'running', cancelRequestedAt: null }, data: { cancelRequestedAt: now } });
    const job = await getJob(db, tenantId, id);
    if (!job) return { outcome: 'missing' };
    // This request marked a running job: its worker may already have seen the mark and ended it
    // `cancelled` before the read above, which is still this request's doing, not a conflict.
    if (requested.count === 1 || job.status === 'running') return { outcome: 'requested', job };
    if (job.status !== 'queued') return { outcome: 'ended', job };
    // Running -> queued again (a recovered job) between the two updates: try once more.
  }
  throw new Error(`job ${id} kept changing status while being cancelled`);
}

/** A job's metrics history, oldest first; null when the tenant has no such job. */
export async function listJobMetrics(db: Db, tenantId: string, id: string) {
  const job = await db.prisma.metaTrainJob.findFirst({ where: { id, tenantId }, select: { id: true } });
  if (!job) return null;
  const rows = await db.prisma.jobMetric.findMany({ where: { jobId: id }, orderBy: { iteration: 'asc' } });
  return rows.map((row) => ({
    iteration: row.iteration,
    trainLoss: row.trainLoss,
    valLoss: row.valLoss,
    ...(row.valLossCi95 === null ? {} : { valLossCi95: row.valLossCi95 }),
    ...(row.valAccuracy === null ? {} : { valAccuracy: row.valAccuracy }),
    ...(row.valAccuracyCi95 === null ? {} : { valAccuracyCi95: row.valAccuracyCi95 }),
    at: row.at.toISOString(),
  }));
}
