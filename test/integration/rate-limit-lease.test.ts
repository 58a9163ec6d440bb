/**
 * The rate limiter's counts come from Redis in leases (rate-limit-store.ts): one INCRBY reserves
 * several counts for this process, handed out in order; requests arriving while a lease is being
 * fetched share that round trip; another process gets the counts after the reserved ones, so no
 * count is given twice and the limit is never exceeded. Small budgets lease one count at a time.
 */
import type { FastifyRateLimitOptions, FastifyRateLimitStore } from '@fastify/rate-limit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leaseSize, refusalFrontedRedisStore } from '../../src/http/rate-limit-store.js';
import { SHARED_REDIS_URL, removePrefix, uniquePrefix } from './support/services.js';

const prefix = uniquePrefix('lease');
let redis: Redis;

beforeAll(() => {
  redis = new Redis(SHARED_REDIS_URL);
});

afterAll(async () => {
  await redis.quit();
  await removePrefix(SHARED_REDIS_URL, prefix);
});

/** A store as the plugin makes one: one per API process. */
const newStore = () => new (refusalFrontedRedisStore(redis, `${prefix}:`))({} as FastifyRateLimitOptions);

function incr(store: FastifyRateLimitStore, key: string, max: number, windowMs = 60_000) {
  return new Promise<{ current: number; ttl: number }>((resolve, reject) =>
    store.incr(key, (error, result) => (error ? reject(error) : resolve(result!)), windowMs, max),
  );
}

describe('leased rate-limit counts', () => {
  it('leases 1 below a budget of 200, and at most 64', () => {
    expect([1, 199, 200, 1_000, 6_400, 1_000_000].map(leaseSize)).toEqual([1, 1, 2, 10, 64, 64]);
  });

  it('hands out counts in order with one round trip per lease, shared by concurrent requests', async () => {
    const store = newStore();
    // Five requests at once: one lease of 10 serves them all.
    const first = await Promise.all(Array.from({ length: 5 }, () => incr(store, 'a', 1_000)));
    expect(first.map((r) => r.current)).toEqual([1, 2, 3, 4, 5]);
    expect(Number(await redis.get(`${prefix}:a`))).toBe(10);
    const more = [];
    for (let i = 0; i < 20; i++) more.push((await incr(store, 'a', 1_000)).current);
    expect(more).toEqual(Array.from({ length: 20 }, (_, i) => i + 6));
    expect(Number(await redis.get(`${prefix}:a`))).toBe(30);
    const ttl = await redis.pttl(`${prefix}:a`);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('never gives a count twice across processes, so the budget holds', async () => {
    const [one, two] = [newStore(), newStore()];
    const max = 200; // leases of 2
    const counts: number[] = [];
    for (let i = 0; i < 150; i++) counts.push((await incr(i % 3 === 0 ? two : one, 'b', max)).current);
    expect(new Set(counts).size).toBe(counts.length);
    expect(Math.max(...counts)).toBeLessThanOrEqual(150 + 2);
    // Past the budget every answer is over it, from either process.
    const over = [];
    for (let i = 0; i < 80; i++) over.push((await incr(i % 2 ? one : two, 'b', max)).current);
    expect(over.filter((c) => c <= max).length).toBeLessThanOrEqual(max - 150);
    expect(over.slice(-10).every((c) => c > max)).toBe(true);
  });

  it('counts exactly with a small budget', async () => {
    const [one, two] = [newStore(), newStore()];
    const counts = [];
    for (let i = 0; i < 6; i++) counts.push((await incr(i % 2 ? one : two, 'c', 5)).current);
    expect(counts).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
