/**
 * Studies, the `studies` and `study_trials` tables: the API writes a study with its first rung's
 * trials; the scheduler (src/jobs/study-scheduler.ts) moves it on with {@link advanceStudy}: it
 * starts waiting trials as the tenant's job quota allows, decides a rung once every trial of it has
 * ended (records each trial's validation, promotes the best, which resume from their checkpoints
 * as new jobs of the next rung), creates the winner's evaluation after the last rung, and judges it.
 *
 * Every step runs in one transaction holding the study row's lock (`FOR UPDATE SKIP LOCKED`: a
 * second worker skips a study another is moving) and reads only what Postgres holds, so it happens
 * once whichever worker runs it, and a killed worker or a wiped Redis loses nothing: the next pass
 * of any scheduler finds the study where it was (trial jobs are re-enqueued by the reconciler).
 */
import {
  apiHyper,
  EVALUATION_BASELINES,
  validationMetric,
  validationOf,
  type AlgorithmName,
  type ApiHyperParams,
  type EvaluationRow,
  type HyperParams,
  type MetricsPoint,
  type StoredModelConfig,
  type TaskKind,
  type Validation,
} from '../../meta/index.js';
import { evaluationSteps, judgeEvaluation, promoted, type BaselineVerdict, type Interval, type Rung } from '../../meta/study.js';
import { truncateReason } from '../../util/error-reason.js';
import { isUniqueViolation, Prisma, type Db } from '../client.js';
import { pointAlias } from './meta-models.js';
import { ActiveJobLimitError, keyedRow, lockActiveJobs, newJobRow, type Idempotency, type JobStatus } from './jobs.js';
import { keyset, toPage, type Page, type PageRequest } from './pagination.js';

type Tx = Prisma.TransactionClient;

/** A candidate as the study stores it: every hyper-parameter resolved (`iterations`: the top rung's). */
export interface StoredCandidate {
  algorithm: AlgorithmName;
  hyper: HyperParams;
}

/** A study's request after defaults, and its schedule. */
export interface StudySettings {
  kind: TaskKind;
  model: StoredModelConfig;
  /** Support examples per task (or class): every trial trains with them and the evaluation measures them. */
  shots: number;
  /** Reduction factor of successive halving. */
  eta: number;
  budget: { iterations: number; trials: number };
  rungs: Rung[];
  /** Meta-iterations the schedule runs, all trials and rungs together. */
  cost: number;
  candidates: StoredCandidate[];
  /** The alias the winner is moved to when it beats every baseline; null: none is moved. */
  promote: string | null;
  /** The winner's evaluation on the test split. */
  evaluation: { tasks: number; queryShots: number; seed: number };
}

/** The trial's place: waiting for a job slot, its job's status, or the rung's decision about it. */
export type TrialStatus = 'pending' | JobStatus | 'promoted' | 'dropped' | 'pruned' | 'winner';
type TrialOutcome = Extract<TrialStatus, 'promoted' | 'dropped' | 'pruned' | 'winner' | 'cancelled'>;

export interface TrialView {
  jobId: string | null;
  candidate: number;
  algorithm: AlgorithmName;
  hyper: ApiHyperParams;
  rung: number;
  /** The rung's milestone: the iterations the trial has run when it ends. */
  iterations: number;
  /** The job's best validation evaluation so far (at the rung's decision: the one it was ranked by). */
  validation: Validation | null;
  status: TrialStatus;
}

export interface StudyDecision {
  promoted: boolean;
  alias: string | null;
  reason: string;
  metric: Validation['metric'];
  winner: Interval;
  baselines: BaselineVerdict[];
}

export interface StudyView {
  id: string;
  name: string;
  status: JobStatus;
  familyIds: string[];
  settings: Omit<StudySettings, 'candidates'> & { candidates: { algorithm: AlgorithmName; hyper: ApiHyperParams }[] };
  /** The rung being trained (or, once evaluating, the last). */
  rung: number;
  trials: TrialView[];
  winner: { jobId: string; metaModelId: string; algorithm: AlgorithmName; hyper: ApiHyperParams } | null;
  evaluationId: string | null;
  decision: StudyDecision | null;
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface NewStudy {
  name: string;
  familyIds: string[];
  settings: StudySettings;
}

const TRIAL_JOB = { select: { status: true, bestMetrics: true, lastMetrics: true, error: true, metaModel: { select: { id: true } } } } as const;
const WITH_TRIALS = { trials: { orderBy: [{ rung: 'asc' }, { candidate: 'asc' }], include: { job: TRIAL_JOB } } } satisfies Prisma.StudyInclude;
type StudyRow = Prisma.StudyGetPayload<{ include: typeof WITH_TRIALS }>;
type TrialRow = StudyRow['trials'][number];

const ACTIVE: readonly JobStatus[] = ['queued', 'running'];
const iso = (date: Date | null) => (date === null ? null : date.toISOString());
// Written by this module only, from StudySettings and StudyDecision values.
const settingsOf = (row: { settings: Prisma.JsonValue }) => row.settings as unknown as StudySettings;

/** The job's best validation evaluation so far (keepBest records it at every evaluation), else its latest. */
function jobValidation(job: NonNullable<TrialRow['job']>): Validation | null {
  const point = (job.bestMetrics ?? job.lastMetrics) as unknown as MetricsPoint | null;
  return point ? validationOf(point) : null;
}

function trialView(trial: TrialRow, settings: StudySettings): TrialView {
  const candidate = settings.candidates[trial.candidate];
  const stored = trial.validation as unknown as Validation | null;
  const status: TrialStatus = (trial.outcome as TrialOutcome | null) ?? (trial.job ? trial.job.status : 'pending');
  return {
    jobId: trial.jobId,
    candidate: trial.candidate,
    algorithm: candidate.algorithm,
    hyper: apiHyper({ ...candidate.hyper, iterations: settings.rungs[trial.rung].iterations }),
    rung: trial.rung,
    iterations: settings.rungs[trial.rung].iterations,
    validation: stored ?? (trial.job ? jobValidation(trial.job) : null),
    status,
  };
}

export function studyView(row: StudyRow): StudyView {
  const settings = settingsOf(row);
  const winnerTrial = row.winnerJobId === null ? undefined : row.trials.find((t) => t.jobId === row.winnerJobId);
  const winnerCandidate = winnerTrial && settings.candidates[winnerTrial.candidate];
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    familyIds: row.familyIds,
    settings: { ...settings, candidates: settings.candidates.map((c) => ({ algorithm: c.algorithm, hyper: apiHyper(c.hyper) })) },
    rung: row.rung,
    trials: row.trials.map((trial) => trialView(trial, settings)),
    winner: winnerTrial?.job?.metaModel && winnerCandidate
      ? { jobId: winnerTrial.jobId!, metaModelId: winnerTrial.job.metaModel.id, algorithm: winnerCandidate.algorithm, hyper: apiHyper(winnerCandidate.hyper) }
      : null,
    evaluationId: row.evaluationId,
    decision: row.decision as unknown as StudyDecision | null,
    error: row.error,
    createdAt: row.createdAt.toISOString(),
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
  };
}

/** The same Idempotency-Key was sent before with a different study request. */
export class StudyIdempotencyConflictError extends Error {
  constructor(readonly studyId: string) {
    super(`Idempotency-Key was already used for study ${studyId} with a different request body`);
    this.name = 'StudyIdempotencyConflictError';
  }
}

/** The study an idempotency key made (within its time to live), as jobs.ts does for jobs. */
async function replay(db: Db, tenantId: string, idempotency: Idempotency): Promise<StudyView | null> {
  const row = await keyedRow(idempotency, {
    find: () => db.prisma.study.findUnique({ where: { tenantId_idempotencyKey: { tenantId, idempotencyKey: idempotency.key } }, include: WITH_TRIALS }),
    release: (id) => db.prisma.study.updateMany({ where: { id, idempotencyKey: idempotency.key }, data: { idempotencyKey: null, requestHash: null } }),
    conflict: (id) => new StudyIdempotencyConflictError(id),
  });
  return row && studyView(row);
}

/**
 * Writes a running study with its first rung's trials and starts as many of them as the tenant's
 * job quota (`maxActive` queued or running jobs, trials included) has room for; the rest wait for
 * the scheduler. Returns the jobs to enqueue.
 * @throws ActiveJobLimitError when the tenant has no free job slot at all.
 * @throws StudyIdempotencyConflictError for the same key with a different body.
 */
export async function createStudy(
  db: Db,
  tenantId: string,
  study: NewStudy,
  options: { maxActive: number; idempotency?: Idempotency },
): Promise<{ study: StudyView; created: boolean; jobIds: string[] }> {
  const { idempotency, maxActive } = options;
  if (idempotency) {
    const existing = await replay(db, tenantId, idempotency);
    if (existing) return { study: existing, created: false, jobIds: [] };
  }
  try {
    const { id, jobIds } = await db.prisma.$transaction(async (tx) => {
      const active = await lockActiveJobs(tx, tenantId);
      if (active >= maxActive) throw new ActiveJobLimitError(maxActive, active);
      const row = await tx.study.create({
        data: {
          tenantId,
          name: study.name,
          familyIds: study.familyIds,
          settings: study.settings as unknown as Prisma.InputJsonObject,
          startedAt: new Date(),
          idempotencyKey: idempotency?.key ?? null,
          requestHash: idempotency?.requestHash ?? null,
          trials: { create: study.settings.candidates.map((_, candidate) => ({ candidate, rung: 0 })) },
        },
      });
      return { id: row.id, jobIds: await startWaitingTrials(tx, row, study.settings, maxActive - active) };
    });
    return { study: (await getStudy(db, tenantId, id))!, created: true, jobIds };
  } catch (error) {
    if (idempotency && isUniqueViolation(error)) {
      const winner = await replay(db, tenantId, idempotency);
      if (winner) return { study: winner, created: false, jobIds: [] };
    }
    throw error;
  }
}

/** One study of the tenant, or null (another tenant's too). */
export async function getStudy(db: Db, tenantId: string, id: string): Promise<StudyView | null> {
  const row = await db.prisma.study.findFirst({ where: { id, tenantId }, include: WITH_TRIALS });
  return row ? studyView(row) : null;
}

/** The tenant's studies, newest first. @throws InvalidCursorError */
export async function listStudies(db: Db, tenantId: string, page: PageRequest): Promise<Page<StudyView>> {
  const { after, orderBy } = keyset(page.cursor);
  const rows = await db.prisma.study.findMany({ where: { tenantId, ...after }, orderBy, take: page.limit + 1, include: WITH_TRIALS });
  return toPage(rows, page.limit, studyView);
}

/**
 * Starts up to `free` waiting trials of the study's current rung, lowest candidate first: a job each
 * (a trial of a later rung resumes from its previous rung's final checkpoint). Returns their ids.
 */
async function startWaitingTrials(tx: Tx, study: { id: string; tenantId: string; name: string; familyIds: string[]; rung: number }, settings: StudySettings, free: number): Promise<string[]> {
  if (free <= 0) return [];
  const waiting = await tx.studyTrial.findMany({ where: { studyId: study.id, rung: study.rung, jobId: null, outcome: null }, orderBy: { candidate: 'asc' }, take: free });
  const ids: string[] = [];
  for (const trial of waiting) {
    const { algorithm, hyper } = settings.candidates[trial.candidate];
    const job = { name: study.name, algorithm, familyIds: study.familyIds, model: settings.model, hyper: { ...hyper, iterations: settings.rungs[trial.rung].iterations } };
    const { id } = await tx.metaTrainJob.create({ data: newJobRow(study.tenantId, job, study.id), select: { id: true } });
    if (trial.rung > 0) {
      const previous = await tx.studyTrial.findUnique({ where: { studyId_candidate_rung: { studyId: study.id, candidate: trial.candidate, rung: trial.rung - 1 } }, select: { jobId: true } });
      if (previous?.jobId) await resumeFrom(tx, previous.jobId, id);
    }
    await tx.studyTrial.update({ where: { studyId_candidate_rung: { studyId: study.id, candidate: trial.candidate, rung: trial.rung } }, data: { jobId: id } });
    ids.push(id);
  }
  return ids;
}

/**
 * Makes job `to` continue where job `from` (the same candidate's previous rung) ended: its final
 * checkpoint (with the best evaluation so far), its learning curve and its progress. Without a
 * checkpoint (none was kept) `to` trains from the start: slower, not wrong.
 */
async function resumeFrom(tx: Tx, from: string, to: string): Promise<void> {
  const checkpoint = await tx.checkpoint.findFirst({ where: { jobId: from }, orderBy: { iteration: 'desc' } });
  if (!checkpoint) return;
  const { iteration, params, optimizerState, rngState, bestMetrics, bestParams } = checkpoint;
  await tx.checkpoint.create({ data: { jobId: to, iteration, params, optimizerState, rngState: rngState as Prisma.InputJsonValue, bestMetrics: bestMetrics ?? Prisma.DbNull, bestParams } });
  await tx.$executeRaw`
    INSERT INTO job_metrics (job_id, iteration, train_loss, val_loss, val_loss_ci95, val_accuracy, val_accuracy_ci95, at)
    SELECT ${to}, iteration, train_loss, val_loss, val_loss_ci95, val_accuracy, val_accuracy_ci95, at FROM job_metrics WHERE job_id = ${from} AND iteration <= ${iteration}`;
  await tx.$executeRaw`
    UPDATE meta_train_jobs AS t SET iteration = ${iteration}, last_metrics = f.last_metrics, best_iteration = f.best_iteration, best_metrics = f.best_metrics
      FROM meta_train_jobs AS f WHERE t.id = ${to} AND f.id = ${from}`;
}

/** What one step of a study did (the caller enqueues what it created). */
export interface StudyStep {
  /** Trial jobs created (queued in Postgres; to enqueue). */
  jobIds: string[];
  /** The winner's evaluation, created (to enqueue). */
  evaluationId?: string;
  /** The rung the study moved on to. */
  rung?: number;
  /** The study ended. */
  ended?: 'succeeded' | 'failed';
}

const IDLE: StudyStep = { jobIds: [] };

/** Ids of the studies still running, oldest first: the scheduler's work list. */
export async function listRunningStudyIds(db: Db): Promise<string[]> {
  const rows = await db.prisma.study.findMany({ where: { status: 'running' }, orderBy: { createdAt: 'asc' }, select: { id: true } });
  return rows.map((row) => row.id);
}

/**
 * Moves study `id` on as far as Postgres allows now; idle when it is not running or another
 * scheduler holds it. `maxActive` is the tenant job quota its trials share with the tenant's jobs.
 */
export async function advanceStudy(db: Db, id: string, options: { maxActive: number }): Promise<StudyStep> {
  return db.prisma.$transaction(async (tx) => {
    const locked = await tx.$queryRaw<{ id: string }[]>`SELECT id FROM studies WHERE id = ${id} AND status = 'running' FOR UPDATE SKIP LOCKED`;
    if (locked.length === 0) return IDLE;
    const row = await tx.study.findUniqueOrThrow({ where: { id }, include: WITH_TRIALS });
    const settings = settingsOf(row);
    if (row.evaluationId !== null) return judge(tx, row, settings);
    const current = row.trials.filter((t) => t.rung === row.rung);
    if (current.some((t) => t.job === null || ACTIVE.includes(t.job.status))) {
      const free = options.maxActive - (await lockActiveJobs(tx, row.tenantId));
      return { jobIds: await startWaitingTrials(tx, row, settings, free) };
    }
    return decideRung(tx, row, settings, current, options.maxActive);
  }, { timeout: 30_000 });
}

/**
 * Every trial of the current rung has ended: records each one's validation and outcome, then either
 * starts the next rung with the best ones or, after the last rung, creates the winner's evaluation.
 * Selection uses the validation split only; a failed or cancelled trial is pruned, not ranked.
 */
async function decideRung(tx: Tx, row: StudyRow, settings: StudySettings, current: TrialRow[], maxActive: number): Promise<StudyStep> {
  const metric = validationMetric(settings.kind);
  const last = row.rung === settings.rungs.length - 1;
  const scored = current.map((trial) => ({ trial, validation: trial.job?.status === 'succeeded' ? jobValidation(trial.job) : null }));
  const up = new Set(promoted(scored.map(({ trial, validation }) => ({ candidate: trial.candidate, mean: validation?.mean ?? null })), metric, last ? 1 : settings.rungs[row.rung + 1].trials));
  for (const { trial, validation } of scored) {
    const outcome: TrialOutcome = up.has(trial.candidate) ? (last ? 'winner' : 'promoted') : validation ? 'dropped' : 'pruned';
    await tx.studyTrial.update({
      where: { studyId_candidate_rung: { studyId: row.id, candidate: trial.candidate, rung: trial.rung } },
      data: { outcome, validation: validation ? ({ ...validation } as Prisma.InputJsonObject) : Prisma.DbNull },
    });
  }
  if (up.size === 0) {
    const errors = [...new Set(current.flatMap((t) => (t.job?.error ? [t.job.error] : [])))];
    await endStudy(tx, row.id, { status: 'failed', error: `every trial of rung ${row.rung} failed, diverged or was cancelled${errors.length ? `: ${errors.slice(0, 3).join('; ')}` : ''}` });
    return { jobIds: [], ended: 'failed' };
  }
  if (last) {
    const winner = scored.find(({ trial }) => up.has(trial.candidate))!.trial;
    const candidate = settings.candidates[winner.candidate];
    const { tasks, queryShots, seed } = settings.evaluation;
    const evaluation = await tx.evaluation.create({
      data: {
        tenantId: row.tenantId,
        metaModelId: winner.job!.metaModel!.id,
        settings: { shots: [settings.shots], steps: [evaluationSteps(candidate)], tasks, queryShots, seed, baselines: [...EVALUATION_BASELINES] },
      },
      select: { id: true },
    });
    await tx.study.update({ where: { id: row.id }, data: { winnerJobId: winner.jobId, evaluationId: evaluation.id } });
    return { jobIds: [], evaluationId: evaluation.id };
  }
  const next = row.rung + 1;
  await tx.studyTrial.createMany({ data: [...up].map((candidate) => ({ studyId: row.id, candidate, rung: next })) });
  await tx.study.update({ where: { id: row.id }, data: { rung: next } });
  const free = maxActive - (await lockActiveJobs(tx, row.tenantId));
  return { jobIds: await startWaitingTrials(tx, { ...row, rung: next }, settings, free), rung: next };
}

/**
 * The winner's evaluation has ended: decides whether it beats every baseline beyond the intervals,
 * moves `latest` to it (always) and the study's `promote` alias (only when it does), and ends the
 * study with the decision.
 */
async function judge(tx: Tx, row: StudyRow, settings: StudySettings): Promise<StudyStep> {
  const evaluation = await tx.evaluation.findUnique({ where: { id: row.evaluationId! }, select: { status: true, rows: true, error: true, multitaskMetaModelId: true } });
  if (evaluation && ACTIVE.includes(evaluation.status)) return IDLE;
  if (!evaluation || evaluation.status !== 'succeeded') {
    await endStudy(tx, row.id, { status: 'failed', error: `the winner's evaluation ${evaluation ? `failed: ${evaluation.error ?? evaluation.status}` : 'is gone'}` });
    return { jobIds: [], ended: 'failed' };
  }
  const winner = row.trials.find((t) => t.jobId === row.winnerJobId)!;
  const metaModelId = winner.job!.metaModel!.id;
  const metric = validationMetric(settings.kind);
  let judged;
  try {
    judged = judgeEvaluation(evaluation.rows as unknown as EvaluationRow[], {
      metric,
      shots: settings.shots,
      algorithm: settings.candidates[winner.candidate].algorithm,
      multitaskIsWinner: evaluation.multitaskMetaModelId === metaModelId,
    });
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    await endStudy(tx, row.id, { status: 'failed', error: `the winner's evaluation cannot be judged: ${error.message}` });
    return { jobIds: [], ended: 'failed' };
  }
  const alias = settings.promote;
  const promote = alias !== null && judged.beatsAll;
  // `latest` follows the study's result, its winner, whatever the decision (its trials left it alone);
  // the promote alias moves only when the winner beats every baseline.
  const { name } = await tx.metaModel.findUniqueOrThrow({ where: { id: metaModelId }, select: { name: true } });
  await pointAlias(tx, row.tenantId, name, 'latest', metaModelId);
  if (promote) await pointAlias(tx, row.tenantId, name, alias, metaModelId);
  const reason = alias === null ? `no alias to move (promote not asked); ${judged.reason}` : `${promote ? `${alias} moved to the winner` : `${alias} not moved`}: ${judged.reason}`;
  const decision: StudyDecision = { promoted: promote, alias, reason, metric, winner: judged.winner, baselines: judged.baselines };
  await endStudy(tx, row.id, { status: 'succeeded', decision: decision as unknown as Prisma.InputJsonObject });
  return { jobIds: [], ended: 'succeeded' };
}

/** Ends the study and drops its trials' kept checkpoints (nothing resumes them any more). */
async function endStudy(tx: Tx, id: string, data: { status: 'succeeded' | 'failed' | 'cancelled'; error?: string; decision?: Prisma.InputJsonObject }): Promise<void> {
  await tx.study.update({ where: { id }, data: { ...data, ...(data.error === undefined ? {} : { error: truncateReason(data.error) }), finishedAt: new Date() } });
  await tx.$executeRaw`DELETE FROM checkpoints WHERE job_id IN (SELECT id FROM meta_train_jobs WHERE study_id = ${id} AND status NOT IN ('queued', 'running'))`;
}

/** What a cancel did: ended the study (its active trial jobs are to be cancelled), found it ended, or found none. */
export type StudyCancelOutcome = { outcome: 'cancelled'; study: StudyView; jobIds: string[] } | { outcome: 'ended'; study: StudyView } | { outcome: 'missing' };

/**
 * Cancels a running study: it ends `cancelled` under its row lock (so no scheduler starts another
 * trial), trials still waiting for a slot are marked cancelled, and the ids of its queued and running
 * trial jobs are returned for the caller to cancel like any job.
 */
export async function cancelStudy(db: Db, tenantId: string, id: string): Promise<StudyCancelOutcome> {
  const result = await db.prisma.$transaction(async (tx) => {
    const locked = await tx.$queryRaw<{ status: JobStatus }[]>`SELECT status FROM studies WHERE id = ${id} AND tenant_id = ${tenantId} FOR UPDATE`;
    if (locked.length === 0) return 'missing' as const;
    if (locked[0].status !== 'running') return 'ended' as const;
    await tx.studyTrial.updateMany({ where: { studyId: id, jobId: null, outcome: null }, data: { outcome: 'cancelled' } });
    await endStudy(tx, id, { status: 'cancelled' });
    const jobs = await tx.metaTrainJob.findMany({ where: { studyId: id, status: { in: [...ACTIVE] } }, select: { id: true } });
    return jobs.map((job) => job.id);
  });
  if (result === 'missing') return { outcome: 'missing' };
  const study = (await getStudy(db, tenantId, id))!;
  return result === 'ended' ? { outcome: 'ended', study } : { outcome: 'cancelled', study, jobIds: result };
}
