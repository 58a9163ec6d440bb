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
