/**
 * Meta-models, the `meta_models` and `meta_model_aliases` tables: store a new version (when its job
 * succeeds, inside that job's final transaction, training.ts), read and list versions, resolve
 * references, move aliases, and decode one for the engine (loadMetaModel, which both the API and the
 * worker cache through MetaModelCache). A reference is an id, `name@version` (e.g. `sine@3`) or
 * `name@alias` (e.g. `sine@production`); aliases start with a letter, so the two forms never collide.
 */
import {
  CodecError,
  decodeParams,
  encodeParams,
  getAlgorithm,
  modelConfigOf,
  modelShapes,
  modelSpec,
  storedModelConfig,
  type AlgorithmName,
  type Calibration,
  type MetaModel,
  type MetricsPoint,
  type StoredModelConfig,
  type TaskKind,
} from '../../meta/index.js';
import { decodeCalibration } from '../calibration-json.js';
import { isForeignKeyViolation, type Db, type Prisma } from '../client.js';
import type { LoadedMetaModel } from '../meta-model-cache.js';
import { keyset, toPage, type Page, type PageRequest } from './pagination.js';

/** Alias names: a letter, then letters, digits, `_`, `.`, `-`; at most 64 characters. */
export const ALIAS_PATTERN = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

export interface MetaModelView {
  id: string;
  name: string;
  version: number;
  jobId: string;
  algorithm: AlgorithmName;
  kind: TaskKind;
  inputDim: number;
  nWay?: number;
  model: StoredModelConfig;
  metrics: Record<string, unknown>;
  /** The iteration of the best validation evaluation it holds (keepBest); null: the last iteration's. */
  bestIteration: number | null;
  /** The engine that meta-trained it; null for versions stored before engines were recorded. */
  engine: string | null;
  /** Fitted on validation tasks (src/meta/calibration.ts); null when it has none. */
  calibration: Calibration | null;
  aliases: string[];
  createdAt: string;
}

/** A parsed reference. */
export type MetaModelRef = { id: string } | { name: string; version: number } | { name: string; alias: string };

/** Parses `id`, `name@version` or `name@alias`; null for a malformed one (e.g. `sine@`). */
export function parseMetaModelRef(ref: string): MetaModelRef | null {
  const at = ref.lastIndexOf('@');
  if (at === -1) return ref === '' ? null : { id: ref };
  const name = ref.slice(0, at);
  const tail = ref.slice(at + 1);
  if (name === '') return null;
  if (/^[1-9]\d{0,8}$/.test(tail)) return { name, version: Number(tail) };
  return ALIAS_PATTERN.test(tail) ? { name, alias: tail } : null;
}

const SELECT = {
  id: true,
  name: true,
  version: true,
  jobId: true,
  algorithm: true,
  kind: true,
  inputDim: true,
  nWay: true,
  model: true,
  metrics: true,
  bestIteration: true,
  engine: true,
  calibration: true,
  createdAt: true,
  aliases: { select: { alias: true }, orderBy: { alias: 'asc' as const } },
} as const;

interface Row {
  id: string;
  name: string;
  version: number;
  jobId: string;
  algorithm: AlgorithmName;
  kind: TaskKind;
  inputDim: number;
  nWay: number | null;
  model: unknown;
  metrics: unknown;
  bestIteration: number | null;
  engine: string | null;
  calibration: unknown;
  createdAt: Date;
  aliases: { alias: string }[];
}

function view(row: Row): MetaModelView {
  return {
    id: row.id,
    name: row.name,
    version: row.version,
    jobId: row.jobId,
    algorithm: row.algorithm,
    kind: row.kind,
    inputDim: row.inputDim,
    ...(row.nWay === null ? {} : { nWay: row.nWay }),
    model: storedModelConfig(row.model),
    metrics: row.metrics as MetaModelView['metrics'],
    bestIteration: row.bestIteration,
    engine: row.engine,
    calibration: decodeCalibration(row.calibration) ?? null,
    aliases: row.aliases.map((a) => a.alias),
    createdAt: row.createdAt.toISOString(),
  };
}

/**
 * The id a reference names for this tenant, or null (unknown, malformed, or another tenant's).
 * Every route that accepts a meta-model id resolves it through here.
 */
export async function resolveMetaModelRef(db: Db, tenantId: string, ref: string): Promise<string | null> {
  const parsed = parseMetaModelRef(ref);
  if (!parsed) return null;
  if ('id' in parsed) {
    const row = await db.prisma.metaModel.findFirst({ where: { id: parsed.id, tenantId }, select: { id: true } });
    return row?.id ?? null;
  }
  if ('version' in parsed) {
    const row = await db.prisma.metaModel.findUnique({
      where: { tenantId_name_version: { tenantId, name: parsed.name, version: parsed.version } },
      select: { id: true },
    });
    return row?.id ?? null;
  }
  const alias = await db.prisma.metaModelAlias.findUnique({
    where: { tenantId_name_alias: { tenantId, name: parsed.name, alias: parsed.alias } },
    select: { metaModelId: true },
  });
  return alias?.metaModelId ?? null;
}

/** The meta-model a reference names, or null. */
export async function getMetaModel(db: Db, tenantId: string, ref: string): Promise<MetaModelView | null> {
  const id = await resolveMetaModelRef(db, tenantId, ref);
  if (id === null) return null;
  const row = await db.prisma.metaModel.findFirst({ where: { id, tenantId }, select: SELECT });
  return row ? view(row) : null;
}

/** The tenant's meta-models, newest first, optionally of one name. @throws InvalidCursorError */
export async function listMetaModels(db: Db, tenantId: string, page: PageRequest & { name?: string }): Promise<Page<MetaModelView>> {
  const { after, orderBy } = keyset(page.cursor);
  const rows = await db.prisma.metaModel.findMany({
    where: { tenantId, ...(page.name === undefined ? {} : { name: page.name }), ...after },
    orderBy,
    take: page.limit + 1,
    select: SELECT,
  });
  return toPage(rows, page.limit, view);
}

/**
 * Points `alias` of the model's name at the model `ref` names (creating the alias or moving it from
 * another version). Returns the model with its aliases, or null when `ref` names none.
 */
export async function moveAlias(db: Db, tenantId: string, ref: string, alias: string): Promise<MetaModelView | null> {
  const id = await resolveMetaModelRef(db, tenantId, ref);
  if (id === null) return null;
  const model = await db.prisma.metaModel.findFirst({ where: { id, tenantId }, select: { name: true } });
  if (!model) return null;
  await pointAlias(db.prisma, tenantId, model.name, alias, id);
  return getMetaModel(db, tenantId, id);
}

/** A meta-model version to store: the engine's result and its final evaluation. */
export interface NewMetaModel {
  tenantId: string;
  /** The job's name: versions are numbered per (tenant, name). */
  name: string;
  jobId: string;
  /** Architecture, meta-parameters and the inner-loop settings it was meta-trained with. */
  model: MetaModel;
  /** The evaluation of `model`'s parameters. */
  metrics: MetricsPoint;
  /** Set when `model` holds the best validation evaluation's parameters (keepBest): its iteration. */
  bestIteration?: number;
  /** The engine that meta-trained it. */
  engine?: string;
}

/** The JSON a metrics point is stored as (each optional field only when there is one). */
export function metricsJson(m: MetricsPoint): Prisma.InputJsonObject {
  const optional = { valLossCi95: m.valLossCi95, valAccuracy: m.valAccuracy, valAccuracyCi95: m.valAccuracyCi95 };
  return { iteration: m.iteration, trainLoss: m.trainLoss, valLoss: m.valLoss, ...Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)) };
}

/**
 * Inserts the next version of the model's name in its tenant and moves alias `latest` to it (unless
 * `keepLatest`: a study's trial, whose study moves `latest` to its winner when it ends), in the
 * caller's transaction. Two writers of one name may pick the same number: the loser's insert breaks
 * the (tenant, name, version) unique constraint (see isUniqueViolation) and it retries.
 * @throws CodecError when a parameter is not finite.
 */
export async function insertMetaModelVersion(tx: Prisma.TransactionClient, input: NewMetaModel, keepLatest = false): Promise<{ id: string; version: number }> {
  const { tenantId, name, model } = input;
  const { spec } = model;
  const latest = await tx.metaModel.aggregate({ where: { tenantId, name }, _max: { version: true } });
  const version = (latest._max.version ?? 0) + 1;
  const created = await tx.metaModel.create({
    data: {
      tenantId,
      name,
      version,
      jobId: input.jobId,
      algorithm: model.algorithm,
      kind: spec.kind,
      inputDim: spec.inputDim,
      nWay: spec.kind === 'classification' ? spec.outputDim : null,
      model: modelConfigOf(spec) as unknown as Prisma.InputJsonValue,
      innerSteps: model.inner.steps,
      innerLr: model.inner.lr,
      metrics: metricsJson(input.metrics),
      bestIteration: input.bestIteration ?? null,
      engine: input.engine ?? null,
      params: new Uint8Array(encodeParams(model.params)),
      ...(model.calibration ? { calibration: model.calibration as unknown as Prisma.InputJsonValue } : {}),
    },
    select: { id: true, version: true },
  });
  if (!keepLatest) await pointAlias(tx, tenantId, name, 'latest', created.id);
  return created;
}

/** Points alias `alias` of the model's name at `metaModelId`, in the caller's transaction. */
export async function pointAlias(tx: Prisma.TransactionClient, tenantId: string, name: string, alias: string, metaModelId: string): Promise<void> {
  await tx.metaModelAlias.upsert({
    where: { tenantId_name_alias: { tenantId, name, alias } },
    create: { tenantId, name, alias, metaModelId },
    update: { metaModelId },
  });
}

/** A meta-model as the engine adapts from it, with the bytes its decoded parameters take. */
export interface StoredMetaModel extends LoadedMetaModel {
  id: string;
}

/**
 * Meta-model `id` decoded for the engine: architecture, meta-parameters and the inner-loop settings
 * it was meta-trained with (adaptation's defaults). Null when it does not exist.
 * @throws CodecError when its parameters are corrupt or do not fit its architecture.
 */
export async function loadMetaModel(db: Db, id: string): Promise<StoredMetaModel | null> {
  const row = await db.prisma.metaModel.findUnique({
    where: { id },
    select: { algorithm: true, kind: true, inputDim: true, nWay: true, model: true, params: true, innerSteps: true, innerLr: true, calibration: true },
  });
  if (!row) return null;
  const algorithm = getAlgorithm(row.algorithm);
  const spec = modelSpec(row.kind, row.inputDim, storedModelConfig(row.model), row.nWay ?? undefined);
  const params = decodeParams(row.params);
  // Meta-SGD adds its learned rates (lr.*); an algorithm without a meta-trained head (ProtoNets)
  // stores none. Every other model parameter must be there, shaped as the architecture says.
  const problems = modelShapes(spec)
    .filter(([name, shape]) => {
      const got = Object.hasOwn(params, name) ? params[name] : undefined;
      if (!got) return algorithm.metaTrainsHead || !name.startsWith('head.');
      return got.shape.length !== shape.length || got.shape.some((d, i) => d !== shape[i]);
    })
    .map(([name, shape]) => `'${name}' [${shape}]`);
  if (problems.length > 0) throw new CodecError(`meta-model ${id}: parameters missing or misshapen: ${problems.join(', ')}`);
  const bytes = Object.values(params).reduce((sum, p) => sum + p.data.byteLength, 0);
  const calibration = decodeCalibration(row.calibration);
  return { id, model: { algorithm: algorithm.name, spec, params, inner: { steps: row.innerSteps, lr: row.innerLr }, ...(calibration ? { calibration } : {}) }, bytes };
}

/** The task families meta-model `id` was meta-trained on (its job's, in the job's order); null when it does not exist. */
export async function metaModelFamilyIds(db: Db, id: string): Promise<string[] | null> {
  const row = await db.prisma.metaModel.findUnique({ where: { id }, select: { job: { select: { familyIds: true } } } });
  return row?.job.familyIds ?? null;
}

export type DeleteMetaModelOutcome = { status: 'missing' } | { status: 'in-use'; tasks: number; aliases: string[] } | { status: 'deleted'; id: string };

/**
 * Deletes a meta-model version that no task and no alias (`latest` included: the newest version of
 * a name always has it) uses; its evaluations go with it. The check and the delete are one
 * statement; a task created from it meanwhile makes the delete fail on the foreign key, answered as
 * in use.
 */
export async function deleteMetaModel(db: Db, tenantId: string, ref: string): Promise<DeleteMetaModelOutcome> {
  const id = await resolveMetaModelRef(db, tenantId, ref);
  if (id === null) return { status: 'missing' };
  const inUse = async (): Promise<DeleteMetaModelOutcome> => {
    const [tasks, aliases] = await Promise.all([
      db.prisma.task.count({ where: { metaModelId: id } }),
      db.prisma.metaModelAlias.findMany({ where: { metaModelId: id }, select: { alias: true } }),
    ]);
    return { status: 'in-use', tasks, aliases: aliases.map((a) => a.alias) };
  };
  try {
    const { rowCount } = await db.sql.query(
      `DELETE FROM meta_models m WHERE m.id = $1 AND m.tenant_id = $2
         AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.meta_model_id = m.id)
         AND NOT EXISTS (SELECT 1 FROM meta_model_aliases a WHERE a.meta_model_id = m.id)`,
      [id, tenantId],
    );
    return rowCount === 1 ? { status: 'deleted', id } : await inUse();
  } catch (error) {
    if (isForeignKeyViolation(error)) return inUse();
    throw error;
  }
}
