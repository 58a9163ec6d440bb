/**
 * The rate limiter's Redis store with a local memory of refusals in front of it.
 *
 * Within its budget a key is counted in Redis on every request (the budget is shared by every API
 * process). Once Redis answers that a key is over its budget, that answer holds until the window's
 * TTL runs out (the window is fixed: an over-limit request does not extend it), so this process
 * refuses the key's further requests from memory until then: a client hammering past its limit costs
 * no Redis round trip per request. The count it reports keeps growing locally, so headers look the
 * same as Redis would make them.
 */
import { createRequire } from 'node:module';
import type { FastifyRateLimitOptions, FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { Redis } from 'ioredis';

type RedisStoreCtor = new (continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, key: string) => FastifyRateLimitStore;
// The plugin's own store (the same Lua script), which it does not export by name.
const RedisStore = createRequire(import.meta.url)('@fastify/rate-limit/store/RedisStore') as RedisStoreCtor;

/** Most refused keys remembered; beyond it expired ones are swept, then the oldest dropped. */
const MAX_REFUSED_KEYS = 10_000;

type Result = { current: number; ttl: number };

class RefusalFront implements FastifyRateLimitStore {
  private readonly refused = new Map<string, { current: number; until: number }>();

  constructor(
    private readonly inner: FastifyRateLimitStore,
    /** False when Redis may extend a window past its TTL (continueExceeding, exponentialBackoff). */
    private readonly fixedWindow: boolean,
  ) {}

  incr(key: string, callback: (error: Error | null, result?: Result) => void, timeWindow: number, max: number): void {
    const now = Date.now();
    const held = this.refused.get(key);
    if (held !== undefined) {
      if (held.until > now) {
        held.current++;
        callback(null, { current: held.current, ttl: held.until - now });
        return;
      }
      this.refused.delete(key);
    }
    this.inner.incr(key, (error, result) => {
      if (!error && result && this.fixedWindow && result.current > max && result.ttl > 0) this.remember(key, result.current, now + result.ttl);
      callback(error, result);
    }, timeWindow, max);
  }

  child(routeOptions: Parameters<FastifyRateLimitStore['child']>[0]): FastifyRateLimitStore {
    return new RefusalFront(this.inner.child(routeOptions), this.fixedWindow);
  }

  private remember(key: string, current: number, until: number): void {
    if (this.refused.size >= MAX_REFUSED_KEYS) {
      const now = Date.now();
      for (const [k, v] of this.refused) if (v.until <= now) this.refused.delete(k);
      for (const oldest of this.refused.keys()) {
        if (this.refused.size < MAX_REFUSED_KEYS) break;
        this.refused.delete(oldest);
      }
    }
    this.refused.set(key, { current, until });
  }
}

/** A `store` for @fastify/rate-limit: Redis under `nameSpace`, fronted by this process's refusals. */
export function refusalFrontedRedisStore(redis: Redis, nameSpace: string): FastifyRateLimitStoreCtor {
  return class extends RefusalFront {
    constructor(options: FastifyRateLimitOptions) {
      // Both are plugin options the typings leave off the store's constructor argument.
      const { continueExceeding = false, exponentialBackoff = false } = options as { continueExceeding?: boolean; exponentialBackoff?: boolean };
      super(new RedisStore(continueExceeding, exponentialBackoff, redis, nameSpace), !continueExceeding && !exponentialBackoff);
    }
  };
}
