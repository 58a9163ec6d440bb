/**
 * Adaptations, worker side: read what one adaptation needs (its support set, its task, the task's
 * meta-model) and end it, either with a new adapted head version or as failed.
 *
 * Versions of one task never interleave: the head write locks the task row (SELECT ... FOR UPDATE)
 * before it numbers the version, so concurrent adaptations of a task queue up on that lock and get
 * consecutive versions. Each adaptation ends at most once: the write that ends it matches only a row
 * still `queued` or `running`, so a second run of the same job (a retry after a lost acknowledgement)
 * writes nothing.
 *
 * The adaptation round trip is latency-bound, so the read and the head write are one statement each,
 * prepared once per connection and sent through node-postgres directly (Prisma's per-query overhead
 * was most of their cost); the meta-model read is rare (cached) and stays on Prisma.
 */
import {
  CodecError,
  decodeParams,
  modelShapes,
  modelSpec,
  resolveHyper,
  type AlgorithmName,
  type Examples,
  type HyperParams,
  type MetaModel,
  type ModelConfig,
  type TaskKind,
} from '../../meta/index.js';
import type { Db } from '../client.js';

/** Longest error text stored on an adaptation. */
const MAX_ERROR_LENGTH = 2_000;

export type AdaptationStatus = 'queued' | 'running' | 'succeeded' | 'failed';

/** One adaptation as the worker runs it. */
export interface AdaptationWork {
  id: string;
  tenantId: string;
  taskId: string;
  metaModelId: string;
  status: AdaptationStatus;
  steps: number;
  innerLr: number;
  support: Examples;
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
  support_size: number;
  support_x: Uint8Array;
  support_y: Uint8Array;
  meta_model_id: string;
  kind: TaskKind;
  input_dim: number;
  n_way: number | null;
}

/** Little-endian float32 bytes as numbers (a copy, so the values are aligned whatever the buffer). */
function float32s(bytes: Uint8Array, count: number, what: string): Float32Array {
  if (bytes.byteLength !== count * 4) throw new StoredDataError(`${what} holds ${bytes.byteLength} bytes, expected ${count * 4}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

const LOAD_ADAPTATION = `
  SELECT a.id, a.tenant_id, a.task_id, a.status::text AS status, a.steps, a.inner_lr, a.support_size, a.support_x, a.support_y,
         t.meta_model_id, t.kind::text AS kind, t.input_dim, t.n_way
  FROM adaptations a JOIN tasks t ON t.id = a.task_id
  WHERE a.id = $1`;

/**
 * The adaptation `id` with its support set decoded and its task's shape (one statement), or null
 * when it does not exist.
 * @throws StoredDataError when the support bytes do not match the row's sizes.
 */
export async function loadAdaptation(db: Db, id: string): Promise<AdaptationWork | null> {
  const { rows } = await db.sql.query<AdaptationRow>({ name: 'adaptation-load', text: LOAD_ADAPTATION, values: [id] });
  const row = rows[0];
  if (!row) return null;
  const n = row.support_size;
  return {
    id: row.id,
    tenantId: row.tenant_id,
    taskId: row.task_id,
    metaModelId: row.meta_model_id,
    status: row.status,
    steps: row.steps,
    innerLr: row.inner_lr,
    support: { n, x: float32s(row.support_x, n * row.input_dim, 'support_x'), y: float32s(row.support_y, n, 'support_y') },
    kind: row.kind,
    inputDim: row.input_dim,
    nWay: row.n_way,
  };
}

/** A meta-model as the engine adapts from it, with the task shape it serves. */
export interface StoredMetaModel {
  id: string;
  model: MetaModel;
  /** Bytes of its decoded parameters (what a cache of decoded meta-models holds). */
  bytes: number;
}

/**
 * Meta-model `id` decoded for the engine: architecture, meta-parameters and the inner-loop settings
 * it was meta-trained with (adaptation's defaults). Null when it does not exist.
 * @throws CodecError when its parameters are corrupt or do not fit its architecture.
 */
export async function loadMetaModel(db: Db, id: string): Promise<StoredMetaModel | null> {
  const row = await db.prisma.metaModel.findUnique({
    where: { id },
    select: { algorithm: true, kind: true, inputDim: true, nWay: true, model: true, params: true, job: { select: { hyper: true } } },
  });
  if (!row) return null;
  const spec = modelSpec(row.kind, row.inputDim, row.model as ModelConfig, row.nWay ?? undefined);
  const params = decodeParams(row.params);
  // Meta-SGD adds its learned rates (lr.*); ProtoNets have no head (it is built from the support
  // set). Every other model parameter must be there, shaped as the architecture says.
  const problems = modelShapes(spec)
    .filter(([name, shape]) => {
      const got = Object.hasOwn(params, name) ? params[name] : undefined;
      if (!got) return !(row.algorithm === 'protonet' && name.startsWith('head.'));
      return got.shape.length !== shape.length || got.shape.some((d, i) => d !== shape[i]);
    })
    .map(([name, shape]) => `'${name}' [${shape}]`);
  if (problems.length > 0) throw new CodecError(`meta-model ${id}: parameters missing or misshapen: ${problems.join(', ')}`);
  const hyper = resolveHyper(row.job.hyper as Partial<HyperParams>);
  const bytes = Object.values(params).reduce((sum, p) => sum + p.data.byteLength, 0);
  return { id, model: { algorithm: row.algorithm as AlgorithmName, spec, params, inner: { steps: hyper.innerSteps, lr: hyper.innerLr } }, bytes };
}

/** A new adapted head version: what adaptation changed, encoded by the engine's codec. */
export interface HeadWrite {
  adaptationId: string;
  taskId: string;
  params: Uint8Array;
  supportLossBefore: number;
  supportLossAfter: number;
  /** Inner steps actually run (0 for ProtoNets, whose head is computed in closed form). */
  steps: number;
  innerLr: number;
  /** Worker time from picking the job up to this write (loading, the inner loop, encoding). */
  durationMs: number;
  /** When the worker picked the job up. */
  startedAt: Date;
}

const RECORD_HEAD = `
  WITH locked AS (
    SELECT id, COALESCE(head_version, 0) + 1 AS version FROM tasks WHERE id = $1 FOR UPDATE
  ), claimed AS (
    UPDATE adaptations a
    SET status = 'succeeded', head_version = locked.version, error = NULL, started_at = COALESCE(a.started_at, $3::timestamptz), finished_at = now()
    FROM locked
    WHERE a.id = $2 AND a.task_id = locked.id AND a.status IN ('queued', 'running')
    RETURNING a.task_id, a.head_version
  ), stored AS (
    INSERT INTO adapted_heads (task_id, version, params, support_loss_before, support_loss_after, steps, inner_lr, duration_ms)
    SELECT task_id, head_version, $4::bytea, $5::float8, $6::float8, $7::int, $8::float8, $9::float8
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
    values: [head.taskId, head.adaptationId, head.startedAt, head.params, head.supportLossBefore, head.supportLossAfter, head.steps, head.innerLr, head.durationMs],
  });
  return rows[0]?.head_version ?? null;
}

/**
 * Ends the adaptation `failed` with a readable reason; no head is stored.
 * @returns false when it had already ended (nothing written).
 */
export async function recordFailure(db: Db, adaptationId: string, error: string, startedAt: Date): Promise<boolean> {
  const text = error.length > MAX_ERROR_LENGTH ? `${error.slice(0, MAX_ERROR_LENGTH - 1)}…` : error;
  const { count } = await db.prisma.adaptation.updateMany({
    where: { id: adaptationId, status: { in: ['queued', 'running'] } },
    data: { status: 'failed', error: text, startedAt, finishedAt: new Date() },
  });
  return count === 1;
}
