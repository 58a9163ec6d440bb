/**
 * Tasks, API side: create, read and list tasks; write the adaptation request a worker picks up; read
 * an adaptation back; load the latest adapted head for serving. The worker writes heads
 * (adaptation.ts); a task's kind, input size and ways are copied from its meta-model when it is
 * created, so reading a task needs no join.
 */
import { randomBytes } from 'node:crypto';
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

/** float32 little-endian, whatever the host's byte order (the format Adaptation documents). */
function float32Bytes(values: Float32Array): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  return bytes;
}

/** A validated support set: `x` row-major [n, inputDim], `y` [n]. */
export interface SupportArrays {
  n: number;
  x: Float32Array;
  y: Float32Array;
}

/**
 * A UUIDv7 (RFC 9562) as the schema's `@default(uuid(7))` makes: 48 bits of Unix milliseconds, then
 * random bits, so ids stay time-ordered like every other row's.
 */
function uuidv7(): string {
  const bytes = randomBytes(16);
  const ms = Date.now();
  bytes.writeUIntBE(ms, 0, 6);
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const INSERT_ADAPTATION = `
  INSERT INTO adaptations (id, tenant_id, task_id, steps, inner_lr, support_size, support_x, support_y)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
  RETURNING created_at`;

/**
 * Writes a queued adaptation (it carries the support set to the worker) and answers it as a view.
 * Every adaptation request writes one, so it is a prepared statement on node-postgres rather than a
 * Prisma call (Prisma's per-query work was several times the insert's own cost).
 */
export async function createAdaptation(
  db: Db,
  target: AdaptTarget,
  input: { support: SupportArrays; steps: number; innerLr: number },
): Promise<AdaptationView> {
  const id = uuidv7();
  const { rows } = await db.sql.query<{ created_at: Date }>({
    name: 'adaptation-create',
    text: INSERT_ADAPTATION,
    values: [id, target.tenantId, target.taskId, input.steps, input.innerLr, input.support.n, float32Bytes(input.support.x), float32Bytes(input.support.y)],
  });
  return {
    id,
    taskId: target.taskId,
    status: 'queued',
    steps: input.steps,
    innerLr: input.innerLr,
    supportSize: input.support.n,
    headVersion: null,
    supportLoss: null,
    durationMs: null,
    error: null,
    createdAt: rows[0].created_at.toISOString(),
    startedAt: null,
    finishedAt: null,
  };
}

export type AdaptationStatus = 'queued' | 'running' | 'succeeded' | 'failed';

export interface AdaptationView {
  id: string;
  taskId: string;
  status: AdaptationStatus;
  steps: number;
  innerLr: number;
  supportSize: number;
  /** The head version it stored (succeeded only). */
  headVersion: number | null;
  /** Mean support loss before and after the inner loop (succeeded only). */
  supportLoss: { before: number; after: number } | null;
  /** Time the worker spent adapting (succeeded only). */
  durationMs: number | null;
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** One adaptation of one of the tenant's tasks, with the losses of the head it stored; null if none. */
export async function getAdaptation(db: Db, tenantId: string, taskId: string, adaptationId: string): Promise<AdaptationView | null> {
  const row = await db.prisma.adaptation.findFirst({
    where: { id: adaptationId, taskId, tenantId },
    select: { id: true, taskId: true, status: true, steps: true, innerLr: true, supportSize: true, headVersion: true, error: true, createdAt: true, startedAt: true, finishedAt: true },
  });
  if (!row) return null;
  const head = row.status === 'succeeded' && row.headVersion !== null
    ? await db.prisma.adaptedHead.findUnique({
      where: { taskId_version: { taskId, version: row.headVersion } },
      select: { supportLossBefore: true, supportLossAfter: true, durationMs: true, steps: true },
    })
    : null;
  return {
    ...row,
    // The steps that actually ran (ProtoNets' closed-form head runs none).
    steps: head?.steps ?? row.steps,
    supportLoss: head ? { before: head.supportLossBefore, after: head.supportLossAfter } : null,
    durationMs: head?.durationMs ?? null,
    createdAt: row.createdAt.toISOString(),
    startedAt: row.startedAt?.toISOString() ?? null,
    finishedAt: row.finishedAt?.toISOString() ?? null,
  };
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
