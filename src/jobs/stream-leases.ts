/**
 * Open event streams per tenant, counted in Redis so the cap holds across API processes. Each open
 * stream is a member of the tenant's sorted set, scored by when its lease expires; the stream renews
 * it on every heartbeat and removes it when it closes. A process that dies without closing its
 * streams only holds their places until the leases expire, and an idle tenant's set expires whole,
 * so nothing accumulates in Redis.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

/** Drops expired leases, then admits one more if fewer than the cap are open. Returns [admitted 0|1, open]. */
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local open = redis.call('ZCARD', KEYS[1])
if open >= tonumber(ARGV[1]) then return {0, open} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, open + 1}
`;

/** Pushes one lease's expiry forward, if it is still held. */
const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 1
`;

/** One held place. */
export interface StreamLease {
  /** Keeps the place for another lease period. */
  renew(): Promise<void>;
  /** Frees the place; idempotent. */
  release(): Promise<void>;
}

export type LeaseAnswer = { admitted: true; open: number; lease: StreamLease } | { admitted: false; open: number };

export class StreamLeases {
  /**
   * @param ttlMs how long a lease lasts without renewal (a few heartbeats).
   */
  constructor(private readonly redis: Redis, private readonly prefix: string, private readonly ttlMs: number) {}

  /** The sorted set of `tenantId`'s open streams. */
  key(tenantId: string): string {
    return `${this.prefix}:event-streams:${tenantId}`;
  }

  /** Takes a place for one more stream of `tenantId`, unless `limit` are open. */
  async acquire(tenantId: string, limit: number): Promise<LeaseAnswer> {
    const key = this.key(tenantId);
    const member = randomUUID();
    const [admitted, open] = await this.redis.eval(ACQUIRE, 1, key, limit, this.ttlMs, member) as [number, number];
    if (admitted !== 1) return { admitted: false, open };
    let released = false;
    return {
      admitted: true,
      open,
      lease: {
        renew: async () => {
          if (!released) await this.redis.eval(RENEW, 1, key, this.ttlMs, member);
        },
        release: async () => {
          if (released) return;
          released = true;
          await this.redis.zrem(key, member);
        },
      },
    };
  }
}
