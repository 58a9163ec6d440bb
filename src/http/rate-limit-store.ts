/**
 * The rate limiter's Redis store: counts taken from Redis in small leases, with a local memory of
 * refusals in front.
 *
 * Within its budget a key is counted in Redis (the budget is shared by every API process), but not on
 * every request: a process reserves the next `leaseSize(max)` counts with one INCRBY and hands them
 * out locally (1 for budgets under 200, so small limits stay exact; at most 64, about 1% of the
 * budget). Reserved counts are never given twice, so the limit is never exceeded; counts a process
 * reserved and did not use before the window ends can make a key be refused up to that many requests
 * early. Once Redis answers that a key is over its budget, that answer holds until the window's
 * TTL runs out (the window is fixed: an over-limit request does not extend it), so this process
 * refuses the key's further requests from memory until then: a client hammering past its limit costs
 * no Redis round trip per request. The count it reports keeps growing locally, so headers look the
 * same as Redis would make them.
 */
import { createRequire } from 'node:module';
import type { FastifyRateLimitOptions, FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { Redis } from 'ioredis';
import { Lru } from '../util/lru.js';

type RedisStoreCtor = new (continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, key: string) => FastifyRateLimitStore;
// The plugin's own store (the same Lua script), which it does not export by name.
const RedisStore = createRequire(import.meta.url)('@fastify/rate-limit/store/RedisStore') as RedisStoreCtor;

/** Counts one Redis round trip reserves for this process: 1 below a budget of 200, at most 64. */
export function leaseSize(max: number): number {
  return Math.max(1, Math.min(64, Math.floor(max / 100)));
}

/** INCRBY the lease; a window starts with the first lease (fixed window: later ones keep its TTL). */
const LEASE_LUA = `
  local current = redis.call('INCRBY', KEYS[1], ARGV[2])
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    ttl = tonumber(ARGV[1])
  end
  return {current, ttl}
`;

type Callback = (error: Error | null, result?: Result) => void;

/** Counts `next..last` reserved by this process, valid until `until` (ms since the epoch). */
interface Lease {
  next: number;
  last: number;
  until: number;
}

/**
 * Most keys a process remembers (leases, refusals). When full, stale ones leave first, then the one
 * stored longest ago: reads `peek`, so a request costs no reordering, and a key moves up when its
 * lease is renewed or its refusal recorded.
 */
const MAX_REMEMBERED_KEYS = 10_000;

type LeaseRedis = Redis & { rateLimitLease(key: string, windowMs: number, count: number, cb: (error: Error | null, result: [number, number]) => void): void };

/** Fixed-window counts in Redis, reserved `leaseSize(max)` at a time (see the module comment). */
class LeasedRedisCounter implements FastifyRateLimitStore {
  /** The counts this process reserved and has not handed out yet, by key. */
  private readonly leases = new Lru<string, Lease>({ maxEntries: MAX_REMEMBERED_KEYS, isStale: (l) => l.until <= Date.now() || l.next > l.last });
  /** Requests waiting for a lease already asked for (one round trip per key at a time). */
  private readonly waiting = new Map<string, Callback[]>();
  private readonly redis: LeaseRedis;

  constructor(redis: Redis, private readonly nameSpace: string) {
    if (!('rateLimitLease' in redis)) redis.defineCommand('rateLimitLease', { numberOfKeys: 1, lua: LEASE_LUA });
    this.redis = redis as LeaseRedis;
  }

  incr(key: string, callback: Callback, timeWindow: number, max: number): void {
    const lease = this.leases.peek(key);
    const now = Date.now();
    if (lease && lease.until > now && lease.next <= lease.last) {
      callback(null, { current: lease.next++, ttl: lease.until - now });
      return;
    }
    const queued = this.waiting.get(key);
    if (queued) {
      queued.push(callback);
      return;
    }
    this.waiting.set(key, [callback]);
    const count = leaseSize(max);
    this.redis.rateLimitLease(this.nameSpace + key, timeWindow, count, (error, result) => {
      const callbacks = this.waiting.get(key) ?? [];
      this.waiting.delete(key);
      if (error) {
        for (const waiter of callbacks) waiter(error);
        return;
      }
      const [current, ttl] = result;
      const fresh: Lease = { next: current - count + 1, last: current, until: Date.now() + ttl };
      this.leases.set(key, fresh);
      for (const waiter of callbacks) {
        if (fresh.next <= fresh.last) waiter(null, { current: fresh.next++, ttl });
        else this.incr(key, waiter, timeWindow, max); // more requests than the lease held: reserve again
      }
    });
  }

  child(routeOptions: Parameters<FastifyRateLimitStore['child']>[0]): FastifyRateLimitStore {
    // What the plugin passes at run time (its typings say otherwise): the route under `routeInfo`.
    const { routeInfo } = routeOptions as unknown as { routeInfo: { method: string; url: string } };
    return new LeasedRedisCounter(this.redis, `${this.nameSpace}${routeInfo.method}${routeInfo.url}-`);
  }
}

type Result = { current: number; ttl: number };

class RefusalFront implements FastifyRateLimitStore {
  private readonly refused = new Lru<string, { current: number; until: number }>({ maxEntries: MAX_REMEMBERED_KEYS, isStale: (r) => r.until <= Date.now() });

  constructor(
    private readonly inner: FastifyRateLimitStore,
    /** False when Redis may extend a window past its TTL (continueExceeding, exponentialBackoff). */
    private readonly fixedWindow: boolean,
  ) {}

  incr(key: string, callback: (error: Error | null, result?: Result) => void, timeWindow: number, max: number): void {
    const now = Date.now();
    const held = this.refused.peek(key);
    if (held !== undefined) {
      if (held.until > now) {
        held.current++;
        callback(null, { current: held.current, ttl: held.until - now });
        return;
      }
      this.refused.delete(key);
    }
    this.inner.incr(key, (error, result) => {
      if (!error && result && this.fixedWindow && result.current > max && result.ttl > 0) this.refused.set(key, { current: result.current, until: now + result.ttl });
      callback(error, result);
    }, timeWindow, max);
  }

  child(routeOptions: Parameters<FastifyRateLimitStore['child']>[0]): FastifyRateLimitStore {
    return new RefusalFront(this.inner.child(routeOptions), this.fixedWindow);
  }
}

/** A `store` for @fastify/rate-limit: leased counts in Redis under `nameSpace`, fronted by this process's refusals. */
export function refusalFrontedRedisStore(redis: Redis, nameSpace: string): FastifyRateLimitStoreCtor {
  return class extends RefusalFront {
    constructor(options: FastifyRateLimitOptions) {
      // Both are plugin options the typings leave off the store's constructor argument.
      const { continueExceeding = false, exponentialBackoff = false } = options as { continueExceeding?: boolean; exponentialBackoff?: boolean };
      const fixedWindow = !continueExceeding && !exponentialBackoff;
      // Leases need a fixed window; the plugin's own store handles windows that move.
      super(fixedWindow ? new LeasedRedisCounter(redis, nameSpace) : new RedisStore(continueExceeding, exponentialBackoff, redis, nameSpace), fixedWindow);
    }
  };
}
