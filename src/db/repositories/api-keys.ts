/**
 * API keys. A key is `fa_<prefix>_<secret>`: the prefix (not secret) finds its row with one indexed
 * lookup, then the SHA-256 of the whole key is compared in constant time. Only the hash is stored;
 * the key itself is shown once, when it is created.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from '../client.js';

const KEY_PATTERN = /^fa_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function randomPrefix(): string {
  // 12 characters of 62: collisions are negligible and the unique constraint catches the rest.
  return Array.from(randomBytes(12), (byte) => ALPHANUMERIC[byte % ALPHANUMERIC.length]).join('');
}

export interface CreatedApiKey {
  /** The key to hand to the client; it cannot be recovered later. */
  key: string;
  keyId: string;
  tenantId: string;
}

/**
 * Creates a key. Without `tenantId` it also creates the tenant, named `tenantName`.
 * Used by tests and the demo until key management has its own routes.
 */
export async function createApiKey(
  db: Db,
  tenantName: string,
  options: { tenantId?: string; name?: string } = {},
): Promise<CreatedApiKey> {
  const tenantId = options.tenantId ?? (await db.prisma.tenant.create({ data: { name: tenantName } })).id;
  const prefix = `fa_${randomPrefix()}`;
  const key = `${prefix}_${randomBytes(32).toString('base64url')}`;
  const row = await db.prisma.apiKey.create({
    data: { tenantId, prefix, keyHash: sha256(key), name: options.name ?? null },
  });
  return { key, keyId: row.id, tenantId };
}

/** Who a key belongs to. */
export interface KeyOwner {
  tenantId: string;
  keyId: string;
  lastUsedAt: Date | null;
}

/**
 * The tenant of a valid, unrevoked key, or null. A malformed key never reaches the database, and a
 * known prefix with the wrong secret costs the same comparison as the right one.
 */
export async function findKeyOwner(db: Db, key: string): Promise<KeyOwner | null> {
  const match = KEY_PATTERN.exec(key);
  if (!match) return null;
  const row = await db.prisma.apiKey.findUnique({ where: { prefix: `fa_${match[1]}` } });
  if (!row || row.revokedAt !== null) return null;
  const expected = Buffer.from(row.keyHash, 'hex');
  const actual = Buffer.from(sha256(key), 'hex');
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return null;
  return { tenantId: row.tenantId, keyId: row.id, lastUsedAt: row.lastUsedAt };
}

/** Records that a key was used (at most the caller's choice of how often). */
export async function touchApiKey(db: Db, keyId: string, at: Date = new Date()): Promise<void> {
  await db.prisma.apiKey.update({ where: { id: keyId }, data: { lastUsedAt: at } });
}

/** Revokes a key: it is refused from then on. Returns false when no such key exists. */
export async function revokeApiKey(db: Db, keyId: string): Promise<boolean> {
  const { count } = await db.prisma.apiKey.updateMany({ where: { id: keyId, revokedAt: null }, data: { revokedAt: new Date() } });
  return count === 1;
}

/** One key as an operator sees it: never the key or its hash. */
export interface ApiKeySummary {
  id: string;
  prefix: string;
  name: string | null;
  tenantId: string;
  tenantName: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

const SUMMARY_SELECT = {
  id: true, prefix: true, name: true, tenantId: true, createdAt: true, lastUsedAt: true, revokedAt: true,
  tenant: { select: { name: true } },
} as const;

function toSummary(row: { tenant: { name: string } } & Omit<ApiKeySummary, 'tenantName'>): ApiKeySummary {
  const { tenant, ...rest } = row;
  return { ...rest, tenantName: tenant.name };
}

/** Every key, oldest first, optionally only those of tenants named `tenantName`. */
export async function listApiKeys(db: Db, options: { tenantName?: string } = {}): Promise<ApiKeySummary[]> {
  const rows = await db.prisma.apiKey.findMany({
    where: options.tenantName === undefined ? {} : { tenant: { name: options.tenantName } },
    select: SUMMARY_SELECT,
    orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
  });
  return rows.map(toSummary);
}

/** Tenants with exactly this name (names are labels, not unique). */
export async function findTenantsByName(db: Db, name: string): Promise<{ id: string; name: string }[]> {
  return db.prisma.tenant.findMany({ where: { name }, select: { id: true, name: true }, orderBy: { createdAt: 'asc' } });
}

/** Whether a tenant with this id exists. */
export async function tenantExists(db: Db, tenantId: string): Promise<boolean> {
  return (await db.prisma.tenant.count({ where: { id: tenantId } })) === 1;
}

/** What {@link revokeApiKeyByRef} did. */
export type RevokeOutcome =
  | { outcome: 'revoked' | 'already-revoked'; key: ApiKeySummary }
  | { outcome: 'missing' };

/**
 * Revokes the key named by its id, its prefix (`fa_XXXXXXXXXXXX`) or the whole key. Revoking twice
 * is harmless: the second time says so and keeps the first revocation time.
 */
export async function revokeApiKeyByRef(db: Db, ref: string): Promise<RevokeOutcome> {
  const prefix = /^(fa_[A-Za-z0-9]{12})(_|$)/.exec(ref)?.[1];
  const where = prefix !== undefined ? { prefix } : /^[0-9a-f-]{36}$/i.test(ref) ? { id: ref } : undefined;
  if (!where) return { outcome: 'missing' };
  const row = await db.prisma.apiKey.findUnique({ where, select: SUMMARY_SELECT });
  if (!row) return { outcome: 'missing' };
  if (row.revokedAt !== null) return { outcome: 'already-revoked', key: toSummary(row) };
  await revokeApiKey(db, row.id);
  const updated = await db.prisma.apiKey.findUniqueOrThrow({ where: { id: row.id }, select: SUMMARY_SELECT });
  return { outcome: 'revoked', key: toSummary(updated) };
}
