/**
 * Tasks, the `tasks` table: create, read and list tasks; what adapting one needs to know; the latest
 * adapted head for serving (the head versions are written when an adaptation ends, adaptations.ts).
 * A task's kind, input size and ways are copied from its meta-model when it is created, so reading a
 * task needs no join. Its stored examples and prequential totals are task-examples.ts's.
 */
import type { Db } from '../client.js';
import { decodeParams, type ParamArrays, type TaskKind } from '../../meta/index.js';
import { keyset, toPage, type Page, type PageRequest } from './pagination.js';
import { liveView, type LiveView } from './task-live.js';

/** When a task adapts again after examples are appended (the database enum). */
export const READAPT_POLICIES = ['manual', 'auto'] as const;
export type ReadaptPolicy = (typeof READAPT_POLICIES)[number];

export interface TaskView {
  id: string;
  metaModelId: string;
  name?: string;
  kind: TaskKind;
  inputDim: number;
  nWay?: number;
  /** The latest adapted head version; null until the first adaptation succeeds. */
  headVersion: number | null;
  /** The head version served when pinned; null: the latest serves. */
  pinnedVersion: number | null;
  /** Class names in index order (classification tasks created with names). */
  labels?: string[];
  readapt: ReadaptPolicy;
  exampleCount: number;
  live: LiveView;
  createdAt: string;
}

interface TaskRow {
  id: string;
  metaModelId: string;
  name: string | null;
  kind: TaskKind;
  inputDim: number;
  nWay: number | null;
  headVersion: number | null;
  pinnedVersion: number | null;
  labels: string[];
  readapt: ReadaptPolicy;
  exampleCount: number;
  liveScored: number;
  liveCorrect: number;
  liveSquaredError: number;
  liveRecent: number[];
  createdAt: Date;
}

function taskView(row: TaskRow): TaskView {
  return {
    id: row.id,
    metaModelId: row.metaModelId,
    ...(row.name === null ? {} : { name: row.name }),
    kind: row.kind,
    inputDim: row.inputDim,
    ...(row.nWay === null ? {} : { nWay: row.nWay }),
    headVersion: row.headVersion,
    pinnedVersion: row.pinnedVersion,
    ...(row.labels.length === 0 ? {} : { labels: row.labels }),
    readapt: row.readapt,
    exampleCount: row.exampleCount,
    live: liveView(row.kind, { scored: row.liveScored, correct: row.liveCorrect, squaredError: row.liveSquaredError, recent: row.liveRecent }),
    createdAt: row.createdAt.toISOString(),
  };
}

/** The meta-model a new task would copy its shape from (to check label names against), or null. */
export async function metaModelShape(db: Db, tenantId: string, metaModelId: string): Promise<{ kind: TaskKind; inputDim: number; nWay: number | null } | null> {
  return db.prisma.metaModel.findFirst({ where: { id: metaModelId, tenantId }, select: { kind: true, inputDim: true, nWay: true } });
}

/**
 * Creates a task bound to the meta-model `metaModelId` (already resolved for this tenant, see
 * resolveMetaModelRef). Returns null when that model is not the tenant's. `labels` are checked by the
 * caller against the model's ways.
 */
export async function createTask(
  db: Db,
  tenantId: string,
  input: { metaModelId: string; name?: string; labels?: string[]; readapt?: ReadaptPolicy },
): Promise<TaskView | null> {
  const model = await metaModelShape(db, tenantId, input.metaModelId);
  if (!model) return null;
  const row = await db.prisma.task.create({
    data: {
      tenantId, metaModelId: input.metaModelId, name: input.name ?? null, kind: model.kind, inputDim: model.inputDim, nWay: model.nWay,
      labels: input.labels ?? [], readapt: input.readapt ?? 'manual',
    },
  });
  return taskView(row);
}

/**
 * Deletes one of the tenant's tasks; its examples, heads and adaptations go with it (foreign keys
 * cascade). Returns the ids of its adaptations (their queue jobs are named by them), or null when
 * there was no such task.
 */
export async function deleteTask(db: Db, tenantId: string, id: string): Promise<{ adaptationIds: string[] } | null> {
  return db.prisma.$transaction(async (tx) => {
    const adaptations = await tx.adaptation.findMany({ where: { taskId: id, tenantId }, select: { id: true } });
    const { count } = await tx.task.deleteMany({ where: { id, tenantId } });
    return count === 0 ? null : { adaptationIds: adaptations.map((a) => a.id) };
  });
}

export async function getTask(db: Db, tenantId: string, id: string): Promise<TaskView | null> {
  const row = await db.prisma.task.findFirst({ where: { id, tenantId } });
  return row ? taskView(row) : null;
}

/** The tenant's tasks, newest first, optionally of one meta-model. @throws InvalidCursorError */
export async function listTasks(db: Db, tenantId: string, page: PageRequest & { metaModelId?: string }): Promise<Page<TaskView>> {
  const { after, orderBy } = keyset(page.cursor);
  const rows = await db.prisma.task.findMany({
    where: { tenantId, ...(page.metaModelId === undefined ? {} : { metaModelId: page.metaModelId }), ...after },
    orderBy,
    take: page.limit + 1,
  });
  return toPage(rows, page.limit, taskView);
}

/** What adapting a task needs to know before it writes anything: whose it is, its shape, its meta-model. */
export interface AdaptTarget {
  tenantId: string;
  taskId: string;
  metaModelId: string;
  kind: TaskKind;
  inputDim: number;
  nWay: number | null;
  /** Class names in index order; empty when the task has none. */
  labels: string[];
  readapt: ReadaptPolicy;
}

/** A task's fixed facts (a task never changes meta-model, names or policy), or null when it is not the tenant's. */
export async function loadAdaptTarget(db: Db, tenantId: string, taskId: string): Promise<AdaptTarget | null> {
  const row = await db.prisma.task.findFirst({
    where: { id: taskId, tenantId },
    select: { metaModelId: true, kind: true, inputDim: true, nWay: true, labels: true, readapt: true },
  });
  return row ? { tenantId, taskId, ...row } : null;
}

/** A task's latest adapted parameters: what adaptation changed (combine with the meta-model via taskParams). */
export interface StoredHead {
  taskId: string;
  metaModelId: string;
  headVersion: number;
  adapted: ParamArrays;
  /** The task's class names (empty: none), so a prediction can answer a name. */
  labels: string[];
}

export type StoredHeadResult = { status: 'missing' } | { status: 'not-adapted' } | { status: 'no-version' } | { status: 'ready'; head: StoredHead };

/**
 * The predict cache's miss path: the task (by primary key; its tenant is compared by the caller, so
 * the planner has no other index to weigh) and its
 * served head in one statement, so one round trip and two index probes whatever the number of tasks.
 * The served head is the pinned version when there is one (PUT /tasks/:id/head), else the newest (the
 * last entry of the `(task_id, version)` primary key, read backwards); `$2` asks for one version
 * instead (GET /predict?version=). Exported so the scale benchmark and a test can EXPLAIN exactly what runs.
 */
export const LATEST_HEAD_SQL = `
  SELECT t.tenant_id, t.meta_model_id, t.head_version, t.labels, h.version, h.params
  FROM tasks t
  LEFT JOIN LATERAL (
    SELECT version, params FROM adapted_heads
    WHERE task_id = t.id AND version <= COALESCE($2::int, t.pinned_version, 2147483647)
    ORDER BY version DESC LIMIT 1
  ) h ON true
  WHERE t.id = $1`;

/**
 * The served head of one of the tenant's tasks (the pinned version, else the latest), or version
 * `version` when given, in one query ({@link LATEST_HEAD_SQL}). The worker bumps `headVersion` and
 * writes the head in one transaction, so the newest head row is the version the task names. A
 * version the task does not have answers 'no-version'.
 * @throws CodecError when the stored head is corrupt.
 */
export async function loadLatestHead(db: Db, tenantId: string, taskId: string, version: number | null = null): Promise<StoredHeadResult> {
  const { rows } = await db.sql.query<{ tenant_id: string; meta_model_id: string; head_version: number | null; labels: string[] | null; version: number | null; params: Buffer | null }>({
    name: 'task-latest-head',
    text: LATEST_HEAD_SQL,
    values: [taskId, version],
  });
  const row = rows[0];
  if (!row || row.tenant_id !== tenantId) return { status: 'missing' };
  if (row.head_version === null) return { status: 'not-adapted' };
  if (row.version === null || row.params === null || (version !== null && row.version !== version)) {
    return version === null ? { status: 'not-adapted' } : { status: 'no-version' };
  }
  return { status: 'ready', head: { taskId, metaModelId: row.meta_model_id, headVersion: row.version, adapted: decodeParams(row.params), labels: row.labels ?? [] } };
}
