/**
 * A run of a meta-training job: what it starts from (the job row, its families, its latest
 * checkpoint) and its writes to `meta_train_jobs`, `job_metrics` and `checkpoints`, ending with the
 * meta-model version it stores (meta-models.ts). Creating, reading and cancelling jobs is jobs.ts.
 * Every write is fenced so a job never runs twice.
 *
 * Each start of a job increments `attempts` in the same UPDATE that sets it running; the new value
 * is the run's fencing token. Every later write of the run is conditional on `attempts = token` and
 * `status = running`, and takes the job row's lock first inside its transaction: a write that matches
 * no row means another run took over (or the job ended), and it throws {@link FencedOutError} without
 * writing anything.
 */
import { decodeParams, encodeParams, type Checkpoint, type FamilySpec, type MetaModel, type MetricsPoint, type ParamArrays } from '../../meta/index.js';
import { isUniqueViolation, Prisma, type Db } from '../client.js';
import { insertMetaModelVersion, metricsJson } from './meta-models.js';
import { loadFamilySpecs } from './task-families.js';
import { truncateReason } from '../../util/error-reason.js';

/** The token of one run of a job: writes succeed only while it is the job's latest start. */
export interface Fence {
  jobId: string;
  attempt: number;
}

/** The run's token is stale (another run started the job) or the job is no longer running. */
export class FencedOutError extends Error {
  constructor(readonly fence: Fence) {
    super(`job ${fence.jobId}: run ${fence.attempt} no longer owns the job (another run started it, or it ended)`);
    this.name = 'FencedOutError';
  }
}

type Tx = Prisma.TransactionClient;

const fencedWhere = ({ jobId, attempt }: Fence) => ({ id: jobId, attempts: attempt, status: 'running' as const });

/** Runs `update` on the job row only while `fence` holds; throws FencedOutError otherwise. */
async function fenced(tx: Tx, fence: Fence, data: Prisma.MetaTrainJobUpdateManyMutationInput = {}) {
  const rows = await tx.metaTrainJob.updateManyAndReturn({
    where: fencedWhere(fence),
    data: { ...data, updatedAt: new Date() },
    select: { cancelRequestedAt: true },
  });
  if (rows.length === 0) throw new FencedOutError(fence);
  return { cancelRequested: rows[0].cancelRequestedAt !== null };
}

// ---------------------------------------------------------------------------------------------------
// Starting a run

/** What a run starts from. */
export interface StartedRun {
  fence: Fence;
  /** Iterations recorded so far (0, or where a previous run got to). */
  iteration: number;
  iterations: number;
  /** A cancel was requested before this run started: it ends the job `cancelled` at once. */
  cancelRequested: boolean;
}

/**
 * Claims the job for a new run: status running, attempts + 1 (the fencing token), startedAt set on
 * the first start. Null when the job does not exist or has already ended.
 */
export async function startAttempt(db: Db, jobId: string): Promise<StartedRun | null> {
  const rows = await db.prisma.$queryRaw<{ attempts: number; iteration: number; iterations: number; cancel_requested: boolean }[]>`
    UPDATE meta_train_jobs
       SET status = 'running', attempts = attempts + 1, started_at = COALESCE(started_at, now()), updated_at = now()
     WHERE id = ${jobId} AND status IN ('queued', 'running')
 RETURNING attempts, iteration, iterations, cancel_requested_at IS NOT NULL AS cancel_requested`;
  const row = rows[0];
  if (!row) return null;
  return { fence: { jobId, attempt: row.attempts }, iteration: row.iteration, iterations: row.iterations, cancelRequested: row.cancel_requested };
}

/** A family as stored, in the engine's FamilySpec form (dataset tasks decoded from their bytes). */
export interface StoredFamily {
  id: string;
  spec: FamilySpec;
}

/** The job row's training inputs and its families in the job's order (missing ids are left out). */
export interface RunInputs {
  tenantId: string;
  name: string;
  algorithm: string;
  model: Prisma.JsonValue;
  hyper: Prisma.JsonValue;
  familyIds: string[];
  families: StoredFamily[];
  /** The study the job is a trial of, or null. */
  studyId: string | null;
  /** A study trial of its study's top rung: one of the finalists, among which the winner is picked. */
  topRungTrial: boolean;
}

/** Loads what the run trains on; null when the job is gone. Families belong to the job's tenant. */
export async function loadRunInputs(db: Db, jobId: string): Promise<RunInputs | null> {
  const job = await db.prisma.metaTrainJob.findUnique({
    where: { id: jobId },
    select: { tenantId: true, name: true, algorithm: true, model: true, hyper: true, familyIds: true, studyId: true, studyTrial: { select: { rung: true, study: { select: { settings: true } } } } },
  });
  if (!job) return null;
  const { studyTrial, ...row } = job;
  const rungs = (studyTrial?.study.settings as { rungs?: unknown[] } | undefined)?.rungs;
  const topRungTrial = studyTrial !== null && Array.isArray(rungs) && studyTrial.rung === rungs.length - 1;
  const specs = await loadFamilySpecs(db, job.tenantId, job.familyIds);
  const families = job.familyIds.flatMap((id) => {
    const spec = specs.get(id);
    return spec ? [{ id, spec }] : [];
  });
  return { ...row, families, topRungTrial };
}

// ---------------------------------------------------------------------------------------------------
// During a run

/**
 * Records iterations done. Returns whether a cancel has been requested meanwhile (a lost cancel
 * message is noticed here).
 */
export async function recordProgress(db: Db, fence: Fence, iteration: number): Promise<{ cancelRequested: boolean }> {
  return fenced(db.prisma, fence, { iteration });
}

/** Thrown for metrics or parameters that are NaN or infinite (the run fails instead of storing them). */
export class NonFiniteValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NonFiniteValueError';
  }
}

/** Every number of an evaluation point must be finite: NaN is never stored. */
function checkFiniteMetrics(metrics: MetricsPoint): void {
  for (const [name, value] of Object.entries(metrics)) {
    if (value !== undefined && !Number.isFinite(value)) throw new NonFiniteValueError(`metric ${name} is ${value} at iteration ${metrics.iteration}`);
  }
}

/** The job's copy of its best evaluation so far (both columns, always together). */
const bestColumns = (best: MetricsPoint) => ({ bestIteration: best.iteration, bestMetrics: metricsJson(best) });

/**
 * Appends a metrics row and copies it to the job, with the run's best evaluation so far (`best`,
 * which may be this one). A resumed run recomputes the iterations after its checkpoint, so a row
 * for the same iteration is replaced, not duplicated, and the best is the engine's again.
 */
export async function recordMetrics(db: Db, fence: Fence, metrics: MetricsPoint, best?: MetricsPoint): Promise<void> {
  checkFiniteMetrics(metrics);
  if (best) checkFiniteMetrics(best);
  const row = {
    trainLoss: metrics.trainLoss,
    valLoss: metrics.valLoss,
    valLossCi95: metrics.valLossCi95 ?? null,
    valAccuracy: metrics.valAccuracy ?? null,
    valAccuracyCi95: metrics.valAccuracyCi95 ?? null,
    at: new Date(),
  };
  await db.prisma.$transaction(async (tx) => {
    await fenced(tx, fence, { lastMetrics: metricsJson(metrics), ...(best ? bestColumns(best) : {}) });
    await tx.jobMetric.upsert({
      where: { jobId_iteration: { jobId: fence.jobId, iteration: metrics.iteration } },
      create: { jobId: fence.jobId, iteration: metrics.iteration, ...row },
      update: row,
    });
  });
}

/** The rng and loss state of a checkpoint, stored as JSON next to the two parameter blobs. */
interface ResumeState {
  rng: number;
  /** Adam's step count (its moments are in the optimizer blob). */
  adamStep: number;
  pendingLoss: { sum: number; count: number };
}

const MOMENT_PREFIXES = { m: 'm:', v: 'v:' } as const;

function encodeOptimizer(optimizer: Checkpoint['optimizer']): Uint8Array {
  const named: ParamArrays = {};
  for (const [moment, prefix] of Object.entries(MOMENT_PREFIXES) as ['m' | 'v', string][]) {
    for (const [name, value] of Object.entries(optimizer[moment])) named[prefix + name] = value;
  }
  return encodeParams(named);
}

function decodeOptimizer(bytes: Uint8Array, step: number): Checkpoint['optimizer'] {
  const out: Checkpoint['optimizer'] = { t: step, m: {}, v: {} };
  for (const [name, value] of Object.entries(decodeParams(bytes))) {
    const moment = name.startsWith(MOMENT_PREFIXES.m) ? 'm' : name.startsWith(MOMENT_PREFIXES.v) ? 'v' : null;
    if (moment === null) throw new RangeError(`optimizer state holds an unexpected entry '${name}'`);
    out[moment][name.slice(MOMENT_PREFIXES[moment].length)] = value;
  }
  return out;
}

/**
 * Stores a checkpoint (parameters, Adam moments and the best evaluation's meta-parameters through
 * the params codec, which refuses NaN) and drops the older ones: the latest is all a resume needs.
 */
export async function saveCheckpoint(db: Db, fence: Fence, checkpoint: Checkpoint): Promise<void> {
  const data = checkpointRow(checkpoint);
  await db.prisma.$transaction(async (tx) => {
    await fenced(tx, fence);
    await keepOnlyCheckpoint(tx, fence.jobId, checkpoint.iteration, data);
  });
}

/** Replaces the job's checkpoints with this one. */
async function keepOnlyCheckpoint(tx: Tx, jobId: string, iteration: number, data: ReturnType<typeof checkpointRow>): Promise<void> {
  await tx.checkpoint.upsert({ where: { jobId_iteration: { jobId, iteration } }, create: { jobId, iteration, ...data }, update: data });
  await tx.checkpoint.deleteMany({ where: { jobId, iteration: { not: iteration } } });
}

/** A checkpoint's columns. @throws NonFiniteValueError (or CodecError) for a non-finite state. */
function checkpointRow(checkpoint: Checkpoint) {
  const params = encodeParams(checkpoint.params);
  const optimizerState = encodeOptimizer(checkpoint.optimizer);
  const state: ResumeState = { rng: checkpoint.rngState, adamStep: checkpoint.optimizer.t, pendingLoss: checkpoint.pendingLoss };
  if (![state.rng, state.adamStep, state.pendingLoss.sum, state.pendingLoss.count].every(Number.isFinite)) {
    throw new NonFiniteValueError(`checkpoint at iteration ${checkpoint.iteration} holds a non-finite training state`);
  }
  const { best } = checkpoint;
  if (best) checkFiniteMetrics(best.point);
  const data = {
    params: new Uint8Array(params),
    optimizerState: new Uint8Array(optimizerState),
    rngState: { ...state },
    bestMetrics: best ? metricsJson(best.point) : Prisma.DbNull,
    bestParams: best ? new Uint8Array(encodeParams(best.params)) : null,
    createdAt: new Date(),
  };
  return data;
}

/**
 * The job's latest checkpoint as the engine's resume state, or null if it has none.
 * @throws CodecError when its bytes are corrupt.
 */
export async function loadLatestCheckpoint(db: Db, jobId: string): Promise<Checkpoint | null> {
  const row = await db.prisma.checkpoint.findFirst({ where: { jobId }, orderBy: { iteration: 'desc' } });
  if (!row) return null;
  const state = row.rngState as unknown as ResumeState;
  const checkpoint: Checkpoint = {
    iteration: row.iteration,
    params: decodeParams(row.params),
    optimizer: decodeOptimizer(row.optimizerState, state.adamStep),
    rngState: state.rng,
    pendingLoss: { sum: state.pendingLoss.sum, count: state.pendingLoss.count },
  };
  // Both or neither are written; a checkpoint from before keepBest has neither (the run's best starts again from its resume).
  if (row.bestParams !== null && row.bestMetrics !== null) checkpoint.best = { point: row.bestMetrics as unknown as MetricsPoint, params: decodeParams(row.bestParams) };
  return checkpoint;
}

// ---------------------------------------------------------------------------------------------------
// Ending a run

/** What a successful run stores as a meta-model version: the engine's result and its evaluations. */
export interface TrainedModel {
  model: MetaModel;
  /** The evaluation of `model`'s parameters (the meta-model's metrics): the best one (keepBest) or the last. */
  metrics: MetricsPoint;
  /** Set when `model` holds the best evaluation's parameters (keepBest): its iteration, the meta-model's bestIteration. */
  bestIteration?: number;
  /** The run's last evaluation (the job's metrics). Default `metrics`. */
  last?: MetricsPoint;
  /** The run's best evaluation (the job's best). Default: the job's is left as it is. */
  best?: MetricsPoint;
  /** The state after the last iteration, kept instead of dropped (a study's trial: a promotion resumes from it). */
  checkpoint?: Checkpoint;
  /** The engine that ran the training (job and meta-model name it). */
  engine?: string;
}

/** Attempts at the version insert when another job of the same name takes the number first. */
const VERSION_RETRIES = 5;

/**
 * Ends the job `succeeded` and stores its meta-model in one transaction: the next version of the
 * job's name in its tenant, alias `latest` moved to it (not for a study's trial: a dropped trial is
 * no result to follow; the study moves `latest` to its winner), checkpoints dropped (or replaced by
 * `trained.checkpoint`, a study trial's final state, while its study runs). Retries when a
 * concurrent job of the same name took the version number.
 * @returns the new meta-model's id and version.
 */
export async function finishSucceeded(db: Db, fence: Fence, trained: TrainedModel): Promise<{ id: string; version: number }> {
  const { model, metrics, bestIteration, best, checkpoint, engine } = trained;
  const last = trained.last ?? metrics;
  for (const point of [metrics, last, ...(best ? [best] : [])]) checkFiniteMetrics(point);
  const kept = checkpoint ? checkpointRow(checkpoint) : undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.prisma.$transaction(async (tx) => {
        await fenced(tx, fence, { status: 'succeeded', iteration: last.iteration, lastMetrics: metricsJson(last), ...(best ? bestColumns(best) : {}), ...(engine ? { engine } : {}), finishedAt: new Date() });
        const job = await tx.metaTrainJob.findUniqueOrThrow({ where: { id: fence.jobId }, select: { tenantId: true, name: true, studyId: true } });
        const created = await insertMetaModelVersion(tx, { tenantId: job.tenantId, name: job.name, jobId: fence.jobId, model, metrics, bestIteration, engine }, job.studyId !== null);
        if (checkpoint && (await studyRunning(tx, job.studyId))) await keepOnlyCheckpoint(tx, fence.jobId, checkpoint.iteration, kept!);
        else await tx.checkpoint.deleteMany({ where: { jobId: fence.jobId } });
        return created;
      });
    } catch (error) {
      if (!isUniqueViolation(error) || attempt >= VERSION_RETRIES) throw error;
    }
  }
}

/**
 * Whether the trial's study still runs, so its checkpoint may yet be resumed. Read under a share lock
 * on the study row: a cancel (which takes the row for update and then drops its ended trials'
 * checkpoints) either committed before, and the trial keeps none, or waits for this transaction and
 * drops the one kept here.
 */
async function studyRunning(tx: Prisma.TransactionClient, studyId: string | null): Promise<boolean> {
  if (studyId === null) return false;
  const rows = await tx.$queryRaw<{ status: string }[]>`SELECT status FROM studies WHERE id = ${studyId} FOR SHARE`;
  return rows[0]?.status === 'running';
}

async function finish(db: Db, fence: Fence, data: Prisma.MetaTrainJobUpdateManyMutationInput): Promise<void> {
  await db.prisma.$transaction(async (tx) => {
    await fenced(tx, fence, { ...data, finishedAt: new Date() });
    await tx.checkpoint.deleteMany({ where: { jobId: fence.jobId } });
  });
}

/** Ends the job `failed` at `iteration` (the last one completed) with a readable reason; nothing else is stored. */
export async function finishFailed(db: Db, fence: Fence, error: string, iteration: number): Promise<void> {
  await finish(db, fence, { status: 'failed', iteration, error: truncateReason(error) });
}

/** Ends the job `cancelled` (its cancel was requested) at `iteration`. */
export async function finishCancelled(db: Db, fence: Fence, iteration: number): Promise<void> {
  await finish(db, fence, { status: 'cancelled', iteration });
}

// ---------------------------------------------------------------------------------------------------
// Reconciler

/**
 * Ids of jobs Postgres says are queued or running and that nothing has written since
 * `notUpdatedSince` (a run making progress writes every few hundred ms), oldest id first, `limit` at a
 * time after `afterId`.
 */
export async function listUnfinishedJobIds(db: Db, notUpdatedSince: Date, limit: number, afterId?: string): Promise<string[]> {
  const rows = await db.prisma.metaTrainJob.findMany({
    where: { status: { in: ['queued', 'running'] }, updatedAt: { lt: notUpdatedSince }, ...(afterId === undefined ? {} : { id: { gt: afterId } }) },
    orderBy: { id: 'asc' },
    take: limit,
    select: { id: true },
  });
  return rows.map((row) => row.id);
}
