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
 * The latest adapted head of one of the tenant's tasks, in one query. The worker bumps
 * `headVersion` and writes the head in one transaction, so the newest head row is the version the
 * task names.
 * @throws CodecError when the stored head is corrupt.
 */
export async function loadLatestHead(db: Db, tenantId: string, taskId: string): Promise<StoredHeadResult> {
  const row = await db.prisma.task.findFirst({
    where: { id: taskId, tenantId },
    select: { metaModelId: true, headVersion: true, heads: { orderBy: { version: 'desc' }, take: 1, select: { version: true, params: true } } },
  });
  if (!row) return { status: 'missing' };
  const head = row.heads[0];
  if (row.headVersion === null || !head) return { status: 'not-adapted' };
  return { status: 'ready', head: { taskId, metaModelId: row.metaModelId, headVersion: head.version, adapted: decodeParams(head.params) } };
}
