/**
 * The meta-model registry, API side: read versions, resolve references, move aliases. Versions are
 * written by the worker when a job succeeds (training.ts). A reference is an id, `name@version`
 * (e.g. `sine@3`) or `name@alias` (e.g. `sine@production`); aliases start with a letter, so the two
 * forms never collide.
 */
import type { Db } from '../client.js';
import type { Activation, AlgorithmName, TaskKind } from '../../meta/index.js';
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
  model: { hidden: number[]; activation: Activation };
  metrics: Record<string, unknown>;
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
    model: row.model as MetaModelView['model'],
    metrics: row.metrics as MetaModelView['metrics'],
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
  await db.prisma.metaModelAlias.upsert({
    where: { tenantId_name_alias: { tenantId, name: model.name, alias } },
    create: { tenantId, name: model.name, alias, metaModelId: id },
    update: { metaModelId: id },
  });
  return getMetaModel(db, tenantId, id);
}
