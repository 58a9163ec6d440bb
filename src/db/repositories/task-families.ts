/**
 * Task families as the API stores them: a generator spec as JSON, or dataset tasks as raw float32
 * bytes (one DatasetTask row per task). The engine's createFamily() decides what is valid, both here
 * before storing and in the worker when it rebuilds the family from {@link loadFamilySpec}.
 */
import type { FamilySpec, GeneratorType, TaskKind } from '../../meta/index.js';
import type { Db } from '../client.js';
import { keyset, toPage, type Page, type PageRequest } from './pagination.js';
import { float32Bytes, float32sFromBytes } from '../../util/float32.js';

/** A family as clients read it (stored tasks are not echoed back; `taskCount` says how many). */
export interface TaskFamilyView {
  id: string;
  name: string;
  kind: TaskKind;
  inputDim: number;
  nWay?: number;
  generator?: { type: GeneratorType; params: Record<string, unknown> };
  taskCount: number;
  createdAt: string;
}

/** What POST /task-families needs to know about a family to validate a job against it. */
export interface FamilySummary {
  id: string;
  name: string;
  kind: TaskKind;
  inputDim: number;
  nWay: number | null;
}

const SUMMARY = { id: true, name: true, kind: true, inputDim: true, nWay: true } as const;
const VIEW = { ...SUMMARY, generator: true, taskCount: true, createdAt: true, tenantId: true } as const;

interface FamilyRow {
  id: string;
  name: string;
  kind: TaskKind;
  inputDim: number;
  nWay: number | null;
  generator: unknown;
  taskCount: number;
  createdAt: Date;
}

function view(row: FamilyRow): TaskFamilyView {
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    inputDim: row.inputDim,
    ...(row.nWay === null ? {} : { nWay: row.nWay }),
    ...(row.generator === null ? {} : { generator: row.generator as TaskFamilyView['generator'] }),
    taskCount: row.taskCount,
    createdAt: row.createdAt.toISOString(),
  };
}

/**
 * Stores a family the caller has already validated with the engine's createFamily (so `spec.tasks`
 * are well-formed rows of `inputDim` numbers).
 */
export async function createTaskFamily(db: Db, tenantId: string, spec: FamilySpec): Promise<TaskFamilyView> {
  const tasks = spec.tasks ?? [];
  const row = await db.prisma.taskFamily.create({
    data: {
      tenantId,
      name: spec.name,
      kind: spec.kind,
      inputDim: spec.inputDim,
      nWay: spec.nWay ?? null,
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
 * The tenant's families among `ids` back in the form createFamily() takes, dataset tasks decoded, by
 * id (missing or foreign ids are absent). `tenantId` scopes the lookup where a caller acts for a
 * tenant; the worker, acting for a job, passes the job's.
 * @throws RangeError when a stored task's bytes do not match its sizes.
 */
export async function loadFamilySpecs(db: Db, tenantId: string, ids: readonly string[]): Promise<Map<string, FamilySpec>> {
  const rows = await db.prisma.taskFamily.findMany({
    where: { tenantId, id: { in: [...ids] } },
    include: { tasks: { orderBy: { index: 'asc' } } },
  });
  return new Map(rows.map((row) => {
    const base = { name: row.name, kind: row.kind, inputDim: row.inputDim, ...(row.nWay === null ? {} : { nWay: row.nWay }) };
    const spec: FamilySpec = row.generator === null
      ? { ...base, tasks: row.tasks.map((t) => storedTask(t.examples, row.inputDim, t.x, t.y)) }
      : { ...base, generator: row.generator as unknown as NonNullable<FamilySpec['generator']> };
    return [row.id, spec];
  }));
}

/** One family of the tenant as loadFamilySpecs gives it, or null. */
export async function loadFamilySpec(db: Db, tenantId: string, id: string): Promise<FamilySpec | null> {
  return (await loadFamilySpecs(db, tenantId, [id])).get(id) ?? null;
}
