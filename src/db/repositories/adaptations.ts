/**
 * Adaptations, the `adaptations` table: the API writes a queued adaptation carrying the task's
 * support set and reads it back; the worker loads it with its task's shape and ends it, either with
 * a new adapted head version (written to `adapted_heads`, the task pointed at it) or as failed.
 *
 * Versions of one task never interleave: the head write locks the task row (SELECT ... FOR UPDATE)
 * before it numbers the version, so concurrent adaptations of a task queue up on that lock and get
 * consecutive versions. Each adaptation ends at most once: the write that ends it matches only a row
 * still `queued` or `running`, so a second run of the same job (a retry after a lost acknowledgement)
 * writes nothing.
 *
 * The adaptation round trip is latency-bound, so the insert, the worker's read and the head write are
 * one statement each, prepared once per connection and sent through node-postgres directly (Prisma's
 * per-query overhead was most of their cost).
 */
import { randomBytes } from 'node:crypto';
import type { Examples, GuardPolicy, SupportLossTrace, TaskKind } from '../../meta/index.js';
import { float32Bytes, float32sFromBytes } from '../../util/float32.js';
import { finiteOrNull } from '../../util/numbers.js';
import type { Db } from '../client.js';
import { truncateReason } from '../../util/error-reason.js';
import { loadStoredSet } from './task-examples.js';
import type { AdaptTarget } from './tasks.js';

/** An adaptation's statuses (the database enum and the adaptation resource's `status`). */
export const ADAPTATION_STATUSES = ['queued', 'running', 'succeeded', 'failed'] as const;
export type AdaptationStatus = (typeof ADAPTATION_STATUSES)[number];

// ---------------------------------------------------------------------------------------------------
// Requested and read back (the API)

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
export function uuidv7(): string {
  const bytes = randomBytes(16);
  const ms = Date.now();
  bytes.writeUIntBE(ms, 0, 6);
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const INSERT_ADAPTATION = `
  INSERT INTO adaptations (id, tenant_id, task_id, steps, inner_lr, guard, support_size, support_x, support_y, from_examples)
  VALUES ($1, $2, $3, $4, $5, $6::guard_policy, $7, $8, $9, $10)
  RETURNING created_at`;

/**
 * Writes a queued adaptation (it carries the support set to the worker, or `stored`: the worker reads
 * the task's stored examples, `size` of them now) and answers it as a view.
 * Every adaptation request writes one, so it is a prepared statement on node-postgres rather than a
 * Prisma call (Prisma's per-query work was several times the insert's own cost).
 */
export async function createAdaptation(
  db: Db,
  target: AdaptTarget,
  input: { support: SupportArrays | { stored: true; size: number }; steps: number; innerLr: number; guard: GuardPolicy },
): Promise<AdaptationView> {
  const id = uuidv7();
  const { support } = input;
  const sent = 'stored' in support ? null : support;
  const size = 'stored' in support ? support.size : support.n;
  const { rows } = await db.sql.query<{ created_at: Date }>({
    name: 'adaptation-create',
    text: INSERT_ADAPTATION,
    values: [id, target.tenantId, target.taskId, input.steps, input.innerLr, input.guard, size, float32Bytes(sent?.x ?? []), float32Bytes(sent?.y ?? []), sent === null],
  });
  return {
    id,
    taskId: target.taskId,
    status: 'queued',
    steps: input.steps,
    innerLr: input.innerLr,
    guard: input.guard,
    supportSize: size,
    fromExamples: sent === null,
    examplesThrough: null,
    headVersion: null,
    supportLoss: null,
    durationMs: null,
    error: null,
    createdAt: rows[0].created_at.toISOString(),
    startedAt: null,
    finishedAt: null,
  };
}

/**
 * A stored head's support losses as the API shows them: before and after the inner loop, and the
 * guard's record (the trace with non-finite steps as null, since JSON has no NaN).
 */
export interface SupportLossView {
  before: number;
  after: number;
  trace: (number | null)[];
  bestStep: number;
  diverged: boolean;
}

/** The view of a head's losses (`trace` as the engine or the table holds it). */
export function supportLossView(before: number, after: number, record: SupportLossTrace): SupportLossView {
  return { before, after, trace: record.trace.map(finiteOrNull), bestStep: record.bestStep, diverged: record.diverged };
}

export interface AdaptationView {
  id: string;
  taskId: string;
  status: AdaptationStatus;
  steps: number;
  innerLr: number;
  guard: GuardPolicy;
  supportSize: number;
  /** Adapts on the task's stored examples. */
  fromExamples: boolean;
  /** The newest stored example it adapted on (fromExamples, once it ran). */
  examplesThrough: number | null;
  /** The head version it stored (succeeded only). */
  headVersion: number | null;
  /** Mean support loss before and after the inner loop, and its trace (succeeded only). */
  supportLoss: SupportLossView | null;
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
    select: {
      id: true, taskId: true, status: true, steps: true, innerLr: true, guard: true, supportSize: true, fromExamples: true, examplesThrough: true, headVersion: true, error: true,
      createdAt: true, startedAt: true, finishedAt: true,
    },
  });
  if (!row) return null;
  const head = row.status === 'succeeded' && row.headVersion !== null
    ? await db.prisma.adaptedHead.findUnique({
      where: { taskId_version: { taskId, version: row.headVersion } },
      select: { supportLossBefore: true, supportLossAfter: true, supportLossTrace: true, bestStep: true, diverged: true, durationMs: true, steps: true },
    })
    : null;
  return {
    ...row,
    examplesThrough: row.examplesThrough === null ? null : Number(row.examplesThrough),
    // The steps that actually ran (ProtoNets' closed-form head runs none).
    steps: head?.steps ?? row.steps,
    supportLoss: head ? supportLossView(head.supportLossBefore, head.supportLossAfter, { trace: head.supportLossTrace, bestStep: head.bestStep, diverged: head.diverged }) : null,
    durationMs: head?.durationMs ?? null,
    createdAt: row.createdAt.toISOString(),
    startedAt: row.startedAt?.toISOString() ?? null,
    finishedAt: row.finishedAt?.toISOString() ?? null,
  };
}

// ---------------------------------------------------------------------------------------------------
// Run and ended (the worker; the API too ends one as failed when it cannot enqueue it)

/** One adaptation as the worker runs it. */
export interface AdaptationWork {
  id: string;
  tenantId: string;
  taskId: string;
  metaModelId: string;
  status: AdaptationStatus;
  steps: number;
  innerLr: number;
  guard: GuardPolicy;
  support: Examples;
  /** Adapted on the task's stored examples (read when it runs; `support` holds them then). */
  fromExamples: boolean;
  /** Started by readapt auto: another follows while newer examples exist (readapt.ts). */
  autoReadapt: boolean;
  /** The newest stored example in `support` (fromExamples only). */
  examplesThrough: number | null;
  /** The task's shape, checked against the meta-model before adapting. */
  kind: TaskKind;
  inputDim: number;
  nWay: number | null;
}

/** Stored bytes that cannot be what the row says they are (a support set of the wrong length). */
export class StoredDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoredDataError';
  }
}

interface AdaptationRow {
  id: string;
  tenant_id: string;
  task_id: string;
  status: AdaptationStatus;
  steps: number;
  inner_lr: number;
  guard: GuardPolicy;
  support_size: number;
  support_x: Uint8Array;
  support_y: Uint8Array;
  meta_model_id: string;
  kind: TaskKind;
  input_dim: number;
  n_way: number | null;
  from_examples: boolean;
  auto_readapt: boolean;
}

/** Little-endian float32 bytes as `count` numbers. @throws StoredDataError for any other length. */
function float32s(bytes: Uint8Array, count: number, what: string): Float32Array {
  if (bytes.byteLength !== count * 4) throw new StoredDataError(`${what} holds ${bytes.byteLength} bytes, expected ${count * 4}`);
  return float32sFromBytes(bytes);
}

// Also notes when a worker picked it up (the first time): the reconciler leaves an adaptation picked
// up lately to the worker running it even when Redis lost its job (listUnfinishedAdaptations). In the
// same statement, so picking one up costs no extra round trip (Postgres runs a data-modifying WITH
// whether or not the query reads it; the SELECT sees the row as it was, which is all it needs). The
// note is a hint that a crash may lose, so this statement's commit does not wait for the WAL flush
// (\`nowait\`, set for this transaction only): a flushed commit made the load ~2 ms slower here
// (pgbench, 1 client: 0.16 ms read-only, 2.1 ms with the write flushed, 0.25 ms not waiting).
const LOAD_ADAPTATION = `
  WITH nowait AS (
    SELECT set_config('synchronous_commit', 'off', true)
  ), picked AS (
    UPDATE adaptations SET started_at = now() WHERE id = $1 AND started_at IS NULL AND status IN ('queued', 'running') RETURNING id
  )
  SELECT a.id, a.tenant_id, a.task_id, a.status::text AS status, a.steps, a.inner_lr, a.guard::text AS guard, a.support_size, a.support_x, a.support_y, a.from_examples, a.auto_readapt,
         t.meta_model_id, t.kind::text AS kind, t.input_dim, t.n_way
  FROM adaptations a JOIN tasks t ON t.id = a.task_id CROSS JOIN nowait
  WHERE a.id = $1`;

/**
 * The adaptation `id` with its support set decoded and its task's shape (one statement; a second
 * reads the task's stored examples when it adapts on them), or null when it does not exist.
 * @throws StoredDataError when the support bytes do not match the row's sizes.
 */
export async function loadAdaptation(db: Db, id: string): Promise<AdaptationWork | null> {
  const { rows } = await db.sql.query<AdaptationRow>({ name: 'adaptation-load', text: LOAD_ADAPTATION, values: [id] });
  const row = rows[0];
  if (!row) return null;
  const stored = row.from_examples ? await loadStoredSet(db, row.task_id, row.input_dim) : null;
  const n = row.support_size;
  return {
    id: row.id,
    tenantId: row.tenant_id,
    taskId: row.task_id,
    metaModelId: row.meta_model_id,
    status: row.status,
    steps: row.steps,
    innerLr: row.inner_lr,
    guard: row.guard,
    support: stored ? stored.support : { n, x: float32s(row.support_x, n * row.input_dim, 'support_x'), y: float32s(row.support_y, n, 'support_y') },
    fromExamples: row.from_examples,
    autoReadapt: row.auto_readapt,
    examplesThrough: stored ? stored.through : null,
    kind: row.kind,
    inputDim: row.input_dim,
    nWay: row.n_way,
  };
}

/** A new adapted head version: what adaptation changed, encoded by the engine's codec. */
export interface HeadWrite {
  adaptationId: string;
  taskId: string;
  params: Uint8Array;
  supportLossBefore: number;
  supportLossAfter: number;
  /** The support loss per step, the step stored and whether the raw loss diverged. */
  supportLoss: SupportLossTrace;
  /** Inner steps actually run (0 for ProtoNets, whose head is computed in closed form). */
  steps: number;
  innerLr: number;
  /** Worker time from picking the job up to this write (loading, the inner loop, encoding). */
  durationMs: number;
  /** When the worker picked the job up. */
  startedAt: Date;
  /**
   * Adapted on the stored examples: the set as it was read and the newest one's number, recorded on
   * the adaptation (the examples may be evicted or cleared later; coverage and novelty still need
   * the set this head was adapted on, head-support.ts).
   */
  storedSet?: { support: Examples; through: number };
}

const RECORD_HEAD = `
  WITH locked AS (
    SELECT id, COALESCE(head_version, 0) + 1 AS version FROM tasks WHERE id = $1 FOR UPDATE
  ), claimed AS (
    UPDATE adaptations a
    SET status = 'succeeded', head_version = locked.version, error = NULL,
        support_size = COALESCE($13::int, a.support_size), support_x = COALESCE($15::bytea, a.support_x), support_y = COALESCE($16::bytea, a.support_y), examples_through = COALESCE($14::bigint, a.examples_through), started_at = COALESCE(a.started_at, $3::timestamptz), finished_at = now()
    FROM locked
    WHERE a.id = $2 AND a.task_id = locked.id AND a.status IN ('queued', 'running')
    RETURNING a.task_id, a.head_version
  ), stored AS (
    INSERT INTO adapted_heads (task_id, version, params, support_loss_before, support_loss_after, steps, inner_lr, duration_ms, support_loss_trace, best_step, diverged)
    SELECT task_id, head_version, $4::bytea, $5::float8, $6::float8, $7::int, $8::float8, $9::float8, $10::float8[], $11::int, $12::boolean
    FROM claimed
    RETURNING task_id, version
  )
  UPDATE tasks t SET head_version = stored.version FROM stored WHERE t.id = stored.task_id
  RETURNING t.head_version`;

/**
 * Stores the next head version of the task, points the task at it and ends the adaptation
 * `succeeded`: one statement, so one round trip and one commit.
 *
 * How it stays correct under concurrency (READ COMMITTED): `locked` takes the task row's lock; a
 * concurrent writer of the same task waits there until the first commits, then reads the committed
 * head_version, so versions are consecutive. `claimed` gates the rest: it matches only an adaptation
 * still `queued` or `running` (re-checked on the newest row version after a wait), so a second run of
 * an adaptation that has ended inserts no head and moves no version.
 * @returns the new version, or null when the adaptation had already ended (nothing written).
 */
export async function recordHead(db: Db, head: HeadWrite): Promise<number | null> {
  for (const [name, value] of [['supportLossBefore', head.supportLossBefore], ['supportLossAfter', head.supportLossAfter], ['durationMs', head.durationMs]] as const) {
    if (!Number.isFinite(value)) throw new RangeError(`${name} must be finite, got ${value}`);
  }
  const { rows } = await db.sql.query<{ head_version: number }>({
    name: 'adaptation-record-head',
    text: RECORD_HEAD,
    values: [
      head.taskId, head.adaptationId, head.startedAt, head.params, head.supportLossBefore, head.supportLossAfter, head.steps, head.innerLr, head.durationMs,
      // node-postgres sends NaN and Infinity as text, which float8[] reads back as the same values.
      head.supportLoss.trace.map(String), head.supportLoss.bestStep, head.supportLoss.diverged,
      head.storedSet?.support.n ?? null, head.storedSet?.through ?? null,
      head.storedSet ? float32Bytes(head.storedSet.support.x) : null, head.storedSet ? float32Bytes(head.storedSet.support.y) : null,
    ],
  });
  return rows[0]?.head_version ?? null;
}

/**
 * Ends the adaptation `failed` with a readable reason; no head is stored.
 * @returns false when it had already ended (nothing written).
 */
export async function recordFailure(db: Db, adaptationId: string, error: string, startedAt: Date): Promise<boolean> {
  const { count } = await db.prisma.adaptation.updateMany({
    where: { id: adaptationId, status: { in: ['queued', 'running'] } },
    data: { status: 'failed', error: truncateReason(error), startedAt, finishedAt: new Date() },
  });
  return count === 1;
}

/**
 * Adaptations still queued or running that were created before `createdBefore`, in id order after
 * `afterId`, with when a worker picked each up: the reconciler's candidates for ones whose BullMQ job
 * Redis lost (an adaptation takes milliseconds, so one this old and unfinished is either lost or
 * waiting behind others; one picked up lately may be running still, see reconciler.ts).
 */
export async function listUnfinishedAdaptations(db: Db, createdBefore: Date, limit: number, afterId?: string): Promise<{ id: string; taskId: string; startedAt: Date | null }[]> {
  return db.prisma.adaptation.findMany({
    where: { status: { in: ['queued', 'running'] }, createdAt: { lt: createdBefore }, ...(afterId === undefined ? {} : { id: { gt: afterId } }) },
    orderBy: { id: 'asc' },
    take: limit,
    select: { id: true, taskId: true, startedAt: true },
  });
}
