/**
 * Tasks, the `tasks` table: create, read and list tasks; what adapting one needs to know; the latest
 * adapted head for serving (the head versions are written when an adaptation ends, adaptations.ts).
 * A task's kind, input size and ways are copied from its meta-model when it is created, so reading a
 * task needs no join.
 */
import type { Db } from '../client.js';
import { decodeParams, type ParamArrays, type TaskKind } from '../../meta/index.js';
import { keyset, toPage, type Page, type PageRequest } from './pagination.js';

export interface TaskView {
  id: string;
  metaModelId: string;
  name?: string;
  kind: TaskKind;
  inputDim: number;
  nWay?: number;
  /** The latest adapted head version; null until the first adaptation succeeds. */
  headVersion: number | null;
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
    createdAt: row.createdAt.toISOString(),
  };
}

/**
 * Creates a task bound to the meta-model `metaModelId` (already resolved for this tenant, see
 * resolveMetaModelRef). Returns null when that model is not the tenant's.
 */
export async function createTask(db: Db, tenantId: string, input: { metaModelId: string; name?: string }): Promise<TaskView | null> {
  const model = await db.prisma.metaModel.findFirst({ where: { id: input.metaModelId, tenantId }, select: { kind: true, inputDim: true, nWay: true } });
  if (!model) return null;
  const row = await db.prisma.task.create({
    data: { tenantId, metaModelId: input.metaModelId, name: input.name ?? null, kind: model.kind, inputDim: model.inputDim, nWay: model.nWay },
  });
  return taskView(row);
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
}

/** A task's fixed facts (a task never changes meta-model), or null when it is not the tenant's. */
export async function loadAdaptTarget(db: Db, tenantId: string, taskId: string): Promise<AdaptTarget | null> {
  const row = await db.prisma.task.findFirst({ where: { id: taskId, tenantId }, select: { metaModelId: true, kind: true, inputDim: true, nWay: true } });
  return row ? { tenantId, taskId, ...row } : null;
}

/** A task's latest adapted parameters: what adaptation changed (combine with the meta-model via taskParams). */
export interface StoredHead {
  taskId: string;
  metaModelId: string;
  headVersion: number;
  adapted: ParamArrays;
}

export type StoredHeadResult = { status: 'missing' } | { status: 'not-adapted' } | { status: 'ready'; head: StoredHead };

/**
 * The predict cache's miss path: the task (by primary key, checked against the tenant) and its
 * newest head (the last entry of the `(task_id, version)` primary key, read backwards) in one
 * statement, so one round trip and two index probes whatever the number of tasks. Exported so the
 * scale benchmark and a test can EXPLAIN exactly what runs.
 */
export const LATEST_HEAD_SQL = `
  SELECT t.meta_model_id, t.head_version, h.version, h.params
  FROM tasks t
  LEFT JOIN LATERAL (
    SELECT version, params FROM adapted_heads WHERE task_id = t.id ORDER BY version DESC LIMIT 1
  ) h ON true
  WHERE t.id = $1 AND t.tenant_id = $2`;

/**
 * The latest adapted head of one of the tenant's tasks, in one query ({@link LATEST_HEAD_SQL}). The
 * worker bumps `headVersion` and writes the head in one transaction, so the newest head row is the
 * version the task names.
 * @throws CodecError when the stored head is corrupt.
 */
export async function loadLatestHead(db: Db, tenantId: string, taskId: string): Promise<StoredHeadResult> {
  const { rows } = await db.sql.query<{ meta_model_id: string; head_version: number | null; version: number | null; params: Buffer | null }>({
    name: 'task-latest-head',
    text: LATEST_HEAD_SQL,
    values: [taskId, tenantId],
  });
  const row = rows[0];
  if (!row) return { status: 'missing' };
  if (row.head_version === null || row.version === null || row.params === null) return { status: 'not-adapted' };
  return { status: 'ready', head: { taskId, metaModelId: row.meta_model_id, headVersion: row.version, adapted: decodeParams(row.params) } };
}
