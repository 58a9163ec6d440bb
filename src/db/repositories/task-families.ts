/**
 * Task families as the API stores them: a generator spec as JSON, dataset tasks as raw float32 bytes
 * (one DatasetTask row per task), or uploaded rows (dataset-chunks.ts), written part by part while the
 * family is `uploading` and usable only once a commit found them valid (`ready`). The engine's
 * createFamily() decides what is valid, both here before storing and in the worker when it rebuilds
 * the family from {@link loadFamilySpec}.
 */
import type pg from 'pg';
import { checkPackedTargets, FamilySpecError, generatorInputShape, seededSplits, type FamilySpec, type GeneratorType, type PackedDataset, type Split, type TaskKind } from '../../meta/index.js';
import { inTransaction, type Db } from '../client.js';
import { chunkGroups, loadPackedRows, replacePartChunks, rowsOutsidePart, setGroupSplits, type ChunkRows } from './dataset-chunks.js';
import { keyset, toPage, type Page, type PageRequest } from './pagination.js';
import { float32Bytes, float32sFromBytes } from '../../util/float32.js';

export type FamilySource = 'generator' | 'tasks' | 'upload';
export type FamilyStatus = 'uploading' | 'ready';

/** A family as clients read it (stored tasks are not echoed back; `taskCount` says how many). */
export interface TaskFamilyView {
  id: string;
  name: string;
  kind: TaskKind;
  inputDim: number;
  nWay?: number;
  /** Image inputs: [height, width, channels] (what a conv body convolves); absent when not images. */
  inputShape?: number[];
  generator?: { type: GeneratorType; params: Record<string, unknown> };
  source: FamilySource;
  /** Only a ready family can be meta-trained on. */
  status: FamilyStatus;
  taskCount: number;
  /** Uploaded rows so far (0 for generator and JSON-task families). */
  rowCount: number;
  createdAt: string;
}

/** What POST /task-families needs to know about a family to validate a job against it. */
export interface FamilySummary {
  id: string;
  name: string;
  kind: TaskKind;
  inputDim: number;
  nWay: number | null;
  /** [height, width, channels] of image inputs; empty when not images. */
  inputShape: number[];
  status: FamilyStatus;
}

const SUMMARY = { id: true, name: true, kind: true, inputDim: true, nWay: true, inputShape: true, status: true } as const;
const VIEW = { ...SUMMARY, generator: true, taskCount: true, uploaded: true, rowCount: true, createdAt: true, tenantId: true } as const;

interface FamilyRow {
  id: string;
  name: string;
  kind: TaskKind;
  inputDim: number;
  nWay: number | null;
  inputShape: number[];
  generator: unknown;
  taskCount: number;
  uploaded: boolean;
  status: FamilyStatus;
  rowCount: number;
  createdAt: Date;
}

function view(row: FamilyRow): TaskFamilyView {
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    inputDim: row.inputDim,
    ...(row.nWay === null ? {} : { nWay: row.nWay }),
    ...(row.inputShape.length === 0 ? {} : { inputShape: row.inputShape }),
    ...(row.generator === null ? {} : { generator: row.generator as TaskFamilyView['generator'] }),
    source: row.uploaded ? 'upload' : row.generator === null ? 'tasks' : 'generator',
    status: row.status,
    taskCount: row.taskCount,
    rowCount: row.rowCount,
    createdAt: row.createdAt.toISOString(),
  };
}

/**
 * Stores a family the caller has already validated with the engine's createFamily (so `spec.tasks`
 * are well-formed rows of `inputDim` numbers and a declared `inputShape` fits them). A generator of
 * images (digits) stores its own shape, so readers need not know the generators.
 */
export async function createTaskFamily(db: Db, tenantId: string, spec: FamilySpec): Promise<TaskFamilyView> {
  const tasks = spec.tasks ?? [];
  const inputShape = spec.inputShape ?? (spec.generator ? generatorInputShape(spec.generator.type) : undefined);
  const row = await db.prisma.taskFamily.create({
    data: {
      tenantId,
      name: spec.name,
      kind: spec.kind,
      inputDim: spec.inputDim,
      nWay: spec.nWay ?? null,
      inputShape: inputShape ? [...inputShape] : [],
      ...(spec.generator ? { generator: { type: spec.generator.type, params: spec.generator.params ?? {} } as object } : {}),
      taskCount: tasks.length,
      tasks: {
        createMany: {
          data: tasks.map((task, index) => ({
            index,
            examples: task.y.length,
            x: float32Bytes(task.x.flat()),
            y: float32Bytes(task.y),
          })),
        },
      },
    },
    select: VIEW,
  });
  return view(row);
}

/** One family of the tenant, or null (another tenant's family is null too). */
export async function getTaskFamily(db: Db, tenantId: string, id: string): Promise<TaskFamilyView | null> {
  const row = await db.prisma.taskFamily.findFirst({ where: { id, tenantId }, select: VIEW });
  return row ? view(row) : null;
}

/** The tenant's families, newest first. @throws InvalidCursorError */
export async function listTaskFamilies(db: Db, tenantId: string, page: PageRequest): Promise<Page<TaskFamilyView>> {
  const { after, orderBy } = keyset(page.cursor);
  const rows = await db.prisma.taskFamily.findMany({ where: { tenantId, ...after }, orderBy, take: page.limit + 1, select: VIEW });
  return toPage(rows, page.limit, view);
}

/** Summaries of the tenant's families among `ids`, by id (missing or foreign ids are absent). */
export async function summariseFamilies(db: Db, tenantId: string, ids: readonly string[]): Promise<Map<string, FamilySummary>> {
  const rows = await db.prisma.taskFamily.findMany({ where: { tenantId, id: { in: [...ids] } }, select: SUMMARY });
  return new Map(rows.map((row) => [row.id, row]));
}

/** A stored task (`x` examples x inputDim row-major, `y` examples) back in the API's shape. */
function storedTask(examples: number, inputDim: number, xBytes: Uint8Array, yBytes: Uint8Array) {
  const x = float32sFromBytes(xBytes);
  const y = float32sFromBytes(yBytes);
  if (x.length !== examples * inputDim || y.length !== examples) {
    throw new RangeError(`a stored task holds ${x.length} inputs and ${y.length} targets, expected ${examples * inputDim} and ${examples}`);
  }
  return { x: Array.from({ length: examples }, (_, i) => Array.from(x.subarray(i * inputDim, (i + 1) * inputDim))), y: Array.from(y) };
}

/**
 * The tenant's families among `ids` back in the form createFamily() takes, dataset tasks decoded and
 * uploaded rows loaded (through the process's dataset cache), by id (missing or foreign ids, and
 * uploaded families not ready, are absent). `tenantId` scopes the lookup where a caller acts for a
 * tenant; the worker, acting for a job, passes the job's.
 * @throws RangeError when a stored task's bytes do not match its sizes.
 */
export async function loadFamilySpecs(db: Db, tenantId: string, ids: readonly string[]): Promise<Map<string, FamilySpec>> {
  const rows = await db.prisma.taskFamily.findMany({
    where: { tenantId, id: { in: [...ids] }, status: 'ready' },
    include: { tasks: { orderBy: { index: 'asc' } } },
  });
  const out = new Map<string, FamilySpec>();
  for (const row of rows) {
    const base = { name: row.name, kind: row.kind, inputDim: row.inputDim, ...(row.nWay === null ? {} : { nWay: row.nWay }) };
    // A stored or uploaded family's shape is what its creator declared; a generator knows its own.
    const shape = row.inputShape.length === 0 ? {} : { inputShape: row.inputShape };
    const spec: FamilySpec = row.uploaded
      ? { ...base, ...shape, rows: await uploadedRows(db, row.id, row.kind, row.inputDim) }
      : row.generator === null
        ? { ...base, ...shape, tasks: row.tasks.map((t) => storedTask(t.examples, row.inputDim, t.x, t.y)) }
        : { ...base, generator: row.generator as unknown as NonNullable<FamilySpec['generator']> };
    out.set(row.id, spec);
  }
  return out;
}

/**
 * A ready uploaded family's rows: from the process's cache, or loaded once and kept there (the
 * family never changes after its commit, so the cached rows never go stale).
 */
async function uploadedRows(db: Db, id: string, kind: TaskKind, inputDim: number): Promise<PackedDataset> {
  const cached = db.datasets.get(id);
  if (cached) return cached;
  const client = await db.sql.connect();
  try {
    const groups = await chunkGroups(client, id);
    const rows = await loadPackedRows(client, id, inputDim, isClassPool(kind, groups.map((g) => g.groupKey)));
    db.datasets.set(id, rows);
    return rows;
  } finally {
    client.release();
  }
}

/** Classification rows without a task column: each group is a class of one pool (see upload-rows.ts). */
function isClassPool(kind: TaskKind, groupKeys: readonly string[]): boolean {
  return kind === 'classification' && groupKeys.length > 0 && groupKeys[0].startsWith('class:');
}

// ---------------------------------------------------------------------------------------------------
// Uploads

/** A family created empty, to be filled part by part. */
export interface UploadFamilyInput {
  name: string;
  kind: TaskKind;
  inputDim: number;
  nWay?: number;
  /** Checked by the caller: [height, width, channels] with product inputDim. */
  inputShape?: number[];
}

export async function createUploadFamily(db: Db, tenantId: string, input: UploadFamilyInput): Promise<TaskFamilyView> {
  const row = await db.prisma.taskFamily.create({
    data: { tenantId, name: input.name, kind: input.kind, inputDim: input.inputDim, nWay: input.nWay ?? null, inputShape: input.inputShape ?? [], uploaded: true, status: 'uploading' },
    select: VIEW,
  });
  return view(row);
}

/** The family no longer takes parts: it was committed. */
export class FamilyNotUploadingError extends Error {
  constructor(readonly status: FamilyStatus) {
    super(`the family is ${status}, not uploading: it was committed and can no longer change`);
    this.name = 'FamilyNotUploadingError';
  }
}

/** The family would pass MAX_DATASET_ROWS or MAX_DATASET_BYTES. */
export class DatasetTooLargeError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = 'DatasetTooLargeError';
  }
}

/**
 * The upload cannot be committed: why, in words. Nothing changed: the family is still uploading, so
 * the parts at fault can be replaced (or the family deleted) and the commit asked again.
 */
export class CommitRefusedError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = 'CommitRefusedError';
  }
}

export interface DatasetLimits {
  /** MAX_DATASET_ROWS */
  maxRows: number;
  /** MAX_DATASET_BYTES: rows x (inputDim + 1) x 4 */
  maxBytes: number;
}

interface LockedFamily {
  name: string;
  kind: TaskKind;
  input_dim: number;
  n_way: number | null;
  status: FamilyStatus;
  uploaded: boolean;
}

/** The tenant's uploaded family, locked for this transaction; null when missing or not uploaded. */
async function lockUpload(client: pg.ClientBase, tenantId: string, id: string): Promise<LockedFamily | null> {
  const { rows } = await client.query<LockedFamily>(
    'SELECT name, kind, input_dim, n_way, status, uploaded FROM task_families WHERE id = $1 AND tenant_id = $2 FOR UPDATE',
    [id, tenantId],
  );
  return rows[0]?.uploaded ? rows[0] : null;
}

/**
 * Stores part `part` of an uploading family in one transaction, replacing an earlier upload of the
 * same part; returns the family with its new row count, or null when there is no such uploaded family.
 * @throws FamilyNotUploadingError, DatasetTooLargeError (nothing of the part is stored)
 */
export async function writeUploadPart(db: Db, tenantId: string, id: string, part: number, chunks: readonly ChunkRows[], limits: DatasetLimits): Promise<TaskFamilyView | null> {
  const found = await inTransaction(db, async (client) => {
    const family = await lockUpload(client, tenantId, id);
    if (!family) return false;
    if (family.status !== 'uploading') throw new FamilyNotUploadingError(family.status);
    const rows = (await rowsOutsidePart(client, id, part)) + chunks.reduce((sum, c) => sum + c.examples, 0);
    if (rows > limits.maxRows) throw new DatasetTooLargeError(`the family would hold ${rows} rows, more than MAX_DATASET_ROWS (${limits.maxRows})`);
    const bytes = rows * (family.input_dim + 1) * 4;
    if (bytes > limits.maxBytes) throw new DatasetTooLargeError(`the family would store ${bytes} bytes, more than MAX_DATASET_BYTES (${limits.maxBytes})`);
    await replacePartChunks(client, id, part, chunks);
    await client.query('UPDATE task_families SET row_count = $2 WHERE id = $1', [id, rows]);
    return true;
  });
  return found ? getTaskFamily(db, tenantId, id) : null;
}

/** Why the groups of an upload cannot make a family, or null; assigns seeded splits when needed. */
function planSplits(kind: TaskKind, groups: readonly { groupKey: string; splits: (Split | null)[] }[]): string | Map<string, Split> | null {
  if (groups.length === 0) return 'no rows were uploaded';
  const pools = groups.filter((g) => g.groupKey.startsWith('class:')).length;
  if (kind === 'classification' && pools !== 0 && pools !== groups.length) {
    return 'some parts have a task column and others do not: a family is either one pool of classes or tasks of labelled rows';
  }
  const name = (g: { groupKey: string }) => `${g.groupKey.startsWith('class:') ? 'class' : 'task'} '${g.groupKey.slice(g.groupKey.indexOf(':') + 1)}'`;
  const named = groups.filter((g) => g.splits.some((s) => s !== null));
  if (named.length === 0) {
    if (groups.length < 3) return `${groups.length} ${pools > 0 ? 'classes' : 'tasks'} cannot be split into train, val and test: upload at least 3, or a split column`;
    return seededSplits(groups.map((g) => g.groupKey));
  }
  for (const group of groups) {
    if (group.splits.includes(null)) return `${name(group)} has rows without a split while other rows have one: give the split column in every part or in none`;
    if (group.splits.length > 1) return `${name(group)} is in more than one split (${group.splits.join(', ')}): each task or class belongs to one split`;
  }
  return null;
}

/**
 * Validates the whole upload and makes the family usable: fixes the splits (the rows' own, or a
 * seeded 70/15/15 by task or class), checks with the engine that every split can give an episode,
 * and sets it ready. Returns null when there is no such uploaded family.
 * @throws FamilyNotUploadingError; CommitRefusedError, having changed nothing.
 */
export async function commitUpload(db: Db, tenantId: string, id: string): Promise<TaskFamilyView | null> {
  let refused: string | null = null;
  const found = await inTransaction(db, async (client) => {
    const family = await lockUpload(client, tenantId, id);
    if (!family) return false;
    if (family.status !== 'uploading') throw new FamilyNotUploadingError(family.status);
    const groups = await chunkGroups(client, id);
    const plan = planSplits(family.kind, groups);
    if (typeof plan === 'string') {
      refused = plan;
    } else {
      if (plan) await setGroupSplits(client, id, plan);
      // The engine's rule on splits and labels, checked on the targets alone (the inputs were checked
      // row by row as the parts arrived): a commit never holds the whole family in memory.
      const rows = await loadPackedRows(client, id, family.input_dim, isClassPool(family.kind, groups.map((g) => g.groupKey)), true);
      try {
        checkPackedTargets(rows, { kind: family.kind, ...(family.n_way === null ? {} : { ways: family.n_way }) });
      } catch (error) {
        if (!(error instanceof FamilySpecError)) throw error;
        refused = error.detail;
      }
      if (refused === null) {
        await client.query("UPDATE task_families SET status = 'ready', task_count = $2, row_count = $3 WHERE id = $1", [id, groups.length, rows.y.length]);
        return true;
      }
    }
    // A refused commit changes nothing: roll back the seeded split.
    throw new RefusedInTransaction();
  }).catch((error: unknown) => {
    if (error instanceof RefusedInTransaction) return true;
    throw error;
  });
  if (!found) return null;
  if (refused !== null) throw new CommitRefusedError(refused);
  return getTaskFamily(db, tenantId, id);
}

/** Rolls the commit's transaction back (see commitUpload). */
class RefusedInTransaction extends Error {}

/**
 * Deletes an uploaded family that was never committed (still uploading), with its rows. Ready
 * families stay: jobs and meta-models name them.
 */
export async function deleteUncommittedFamily(db: Db, tenantId: string, id: string): Promise<'deleted' | 'missing' | 'ready'> {
  const { count } = await db.prisma.taskFamily.deleteMany({ where: { id, tenantId, status: 'uploading' } });
  if (count > 0) return 'deleted';
  return (await db.prisma.taskFamily.count({ where: { id, tenantId } })) > 0 ? 'ready' : 'missing';
}

/** One family of the tenant as loadFamilySpecs gives it, or null. */
export async function loadFamilySpec(db: Db, tenantId: string, id: string): Promise<FamilySpec | null> {
  return (await loadFamilySpecs(db, tenantId, [id])).get(id) ?? null;
}
