/**
 * Evaluations, the `evaluations` table: the API writes a queued evaluation of a meta-model (its
 * settings after defaults) and reads it back; the worker claims it, finds what it runs on (the
 * meta-model, the families, a multitask baseline) and ends it with the engine's rows or as failed.
 * An evaluation is a pure function of its settings, so a second run of the same row (after a crash
 * or a wiped Redis) computes the same rows; each ends at most once (the final write matches only a
 * row still `running`).
 */
import type { EvaluationRow, EvaluationSettings } from '../../meta/index.js';
import { truncateReason } from '../../util/error-reason.js';
import type { Db, Prisma } from '../client.js';
import type { JobStatus } from './jobs.js';
import { keyset, toPage, type Page, type PageRequest } from './pagination.js';

/** What an evaluation runs with: the engine's settings and, optionally, the family to draw tasks from. */
export interface EvaluationRequest extends EvaluationSettings {
  /** A family of the tenant evaluated on instead of the meta-model's own families. */
  familyId?: string;
}

/** An evaluation as clients read it. */
export interface EvaluationView {
  id: string;
  metaModelId: string;
  status: JobStatus;
  settings: EvaluationRequest;
  /** The meta-model whose rows are the `multitask` baseline; null when there was none (or not yet run). */
  multitaskMetaModelId: string | null;
  /** Shots by shots: adapted (one per step count), unadapted, scratch, multitask, raw; empty until it succeeded. */
  rows: EvaluationRow[];
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

const SELECT = {
  id: true,
  metaModelId: true,
  familyId: true,
  status: true,
  settings: true,
  rows: true,
  multitaskMetaModelId: true,
  error: true,
  createdAt: true,
  startedAt: true,
  finishedAt: true,
} as const;
type Row = Prisma.EvaluationGetPayload<{ select: typeof SELECT }>;

const iso = (date: Date | null) => (date === null ? null : date.toISOString());

function view(row: Row): EvaluationView {
  return {
    id: row.id,
    metaModelId: row.metaModelId,
    status: row.status,
    settings: row.settings as unknown as EvaluationRequest,
    multitaskMetaModelId: row.multitaskMetaModelId,
    rows: (row.rows as unknown as EvaluationRow[] | null) ?? [],
    error: row.error,
    createdAt: row.createdAt.toISOString(),
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
  };
}

/** Writes a queued evaluation of meta-model `metaModelId` (already resolved for this tenant). */
export async function createEvaluation(db: Db, tenantId: string, metaModelId: string, settings: EvaluationRequest): Promise<EvaluationView> {
  const row = await db.prisma.evaluation.create({
    data: { tenantId, metaModelId, familyId: settings.familyId ?? null, settings: { ...settings } as unknown as Prisma.InputJsonObject },
    select: SELECT,
  });
  return view(row);
}

/** One evaluation of the tenant, or null (another tenant's too). */
export async function getEvaluation(db: Db, tenantId: string, id: string): Promise<EvaluationView | null> {
  const row = await db.prisma.evaluation.findFirst({ where: { id, tenantId }, select: SELECT });
  return row ? view(row) : null;
}

/** The evaluations of one meta-model of the tenant, newest first. @throws InvalidCursorError */
export async function listEvaluations(db: Db, tenantId: string, metaModelId: string, page: PageRequest): Promise<Page<EvaluationView>> {
  const { after, orderBy } = keyset(page.cursor);
  const rows = await db.prisma.evaluation.findMany({ where: { tenantId, metaModelId, ...after }, orderBy, take: page.limit + 1, select: SELECT });
  return toPage(rows, page.limit, view);
}

// ---------------------------------------------------------------------------------------------------
// A run (the worker)

/** What the worker needs to run an evaluation it has claimed. */
export interface ClaimedEvaluation {
  id: string;
  tenantId: string;
  metaModelId: string;
  algorithm: string;
  settings: EvaluationRequest;
  /** Families to draw held-out tasks from: the named one, or the meta-model's own. */
  familyIds: string[];
  /** The families the meta-model was meta-trained on (its job's). */
  modelFamilyIds: string[];
}

/**
 * Marks the evaluation running (again, after a crash: it is recomputed from its settings) and returns
 * what it runs on; null when it is gone or has already ended.
 */
export async function claimEvaluation(db: Db, id: string): Promise<ClaimedEvaluation | null> {
  const claimed = await db.prisma.evaluation.updateMany({ where: { id, status: { in: ['queued', 'running'] } }, data: { status: 'running', startedAt: new Date() } });
  if (claimed.count === 0) return null;
  const row = await db.prisma.evaluation.findUnique({
    where: { id },
    select: { id: true, tenantId: true, metaModelId: true, familyId: true, settings: true, metaModel: { select: { algorithm: true, job: { select: { familyIds: true } } } } },
  });
  if (!row) return null;
  return {
    id: row.id,
    tenantId: row.tenantId,
    metaModelId: row.metaModelId,
    algorithm: row.metaModel.algorithm,
    settings: row.settings as unknown as EvaluationRequest,
    familyIds: row.familyId === null ? row.metaModel.job.familyIds : [row.familyId],
    modelFamilyIds: row.metaModel.job.familyIds,
  };
}

/**
 * The newest `multitask` meta-model of the tenant meta-trained on exactly the families `familyIds`
 * name (in any order), or null. A study's trials are left out: a trial stops at its rung, so a
 * multitask candidate dropped after a few iterations would stand in for multitask and make the
 * study's winner look better than it is.
 */
export async function findMultitaskBaseline(db: Db, tenantId: string, familyIds: readonly string[]): Promise<string | null> {
  const candidates = await db.prisma.metaModel.findMany({
    where: { tenantId, algorithm: 'multitask', job: { familyIds: { hasEvery: [...familyIds] }, studyId: null } },
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
    select: { id: true, job: { select: { familyIds: true } } },
    take: 50,
  });
  const wanted = new Set(familyIds);
  const same = candidates.find((c) => c.job.familyIds.length === wanted.size && c.job.familyIds.every((id) => wanted.has(id)));
  return same?.id ?? null;
}

/** Ends a running evaluation with its rows. False when it was not running (ended meanwhile). */
export async function finishEvaluation(db: Db, id: string, rows: EvaluationRow[], multitaskMetaModelId: string | null): Promise<boolean> {
  const done = await db.prisma.evaluation.updateMany({
    where: { id, status: 'running' },
    data: { status: 'succeeded', rows: rows as unknown as Prisma.InputJsonArray, multitaskMetaModelId, finishedAt: new Date() },
  });
  return done.count === 1;
}

/** Ends a running evaluation as failed with the reason. */
export async function failEvaluation(db: Db, id: string, error: string): Promise<boolean> {
  const done = await db.prisma.evaluation.updateMany({ where: { id, status: 'running' }, data: { status: 'failed', error: truncateReason(error), finishedAt: new Date() } });
  return done.count === 1;
}

/** Ids of evaluations queued or running that nothing wrote since `notUpdatedSince`, by id (the reconciler's page). */
export async function listUnfinishedEvaluationIds(db: Db, notUpdatedSince: Date, limit: number, afterId?: string): Promise<string[]> {
  const rows = await db.prisma.evaluation.findMany({
    where: { status: { in: ['queued', 'running'] }, updatedAt: { lt: notUpdatedSince }, ...(afterId === undefined ? {} : { id: { gt: afterId } }) },
    orderBy: { id: 'asc' },
    take: limit,
    select: { id: true },
  });
  return rows.map((row) => row.id);
}
