/**
 * Revoked API keys, announced on `<prefix>:api-keys:revoked` (the message is the key id). API
 * processes trust a resolved key for AUTH_CACHE_TTL_MS; this message makes a revocation take effect
 * in every running process at once instead. The cache's TTL remains the backstop for a message lost
 * while Redis was unreachable (and a reconnect drops the whole cache).
 */
import type { Redis } from 'ioredis';

export function revokedKeysChannel(prefix: string): string {
  return `${prefix}:api-keys:revoked`;
}

/** Announces that key `keyId` was revoked; resolves to the number of processes that heard it. */
export function publishRevokedKey(redis: Redis, prefix: string, keyId: string): Promise<number> {
  return redis.publish(revokedKeysChannel(prefix), keyId);
}
