/**
 * Rate limiting on the real Redis: each API key gets RATE_LIMIT_MAX requests per window, shared by
 * every API process; beyond it 429 problem+json with Retry-After; other keys, bad keys and the
 * operations routes are not affected; the budget comes back after the window.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/db/repositories/api-keys.js';
import { buildApp, type App } from '../../src/http/app.js';
import { newTenant, startApi, type TestApi } from './support/api-app.js';
import { testConfig } from './support/services.js';

const MAX = 4;
const WINDOW_MS = 1_500;
let api: TestApi;
/** A second API process on the same Redis prefix. */
let other: App;

beforeAll(async () => {
  const env = { RATE_LIMIT_MAX: String(MAX), RATE_LIMIT_WINDOW_MS: String(WINDOW_MS) };
  api = await startApi('rate-limit', env);
  other = await buildApp({
    config: testConfig({ QUEUE_PREFIX: api.prefix, ...env }),
    db: api.db,
    queues: api.queues,
    probes: { postgres: () => api.db.ping(), redis: () => api.redis.ping(), backend: () => 'cpu' },
  });
  await other.ready();
});

afterAll(async () => {
  await other?.close();
  await api?.close();
});

const list = (app: App, headers: Record<string, string>) => app.inject({ method: 'GET', url: '/task-families', headers });

describe('rate limit per API key', () => {
  it('answers 429 problem+json with Retry-After once a key used its budget, across API processes', async () => {
    const tenant = await newTenant(api.db);
    const bystander = await newTenant(api.db);
    const remaining: string[] = [];
    // Half the budget through each process: they share one count in Redis.
    for (const app of [api.app, other, api.app, other]) {
      const response = await list(app, tenant.headers);
      expect(response.statusCode).toBe(200);
      expect(response.headers['x-ratelimit-limit']).toBe(String(MAX));
      remaining.push(String(response.headers['x-ratelimit-remaining']));
    }
    expect(remaining).toEqual(['3', '2', '1', '0']);

    const refused = await list(other, tenant.headers);
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
    const retryAfter = Number(refused.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(Math.ceil(WINDOW_MS / 1000));
    expect(refused.json()).toMatchObject({ status: 429, title: 'Too Many Requests', limit: MAX, windowMs: WINDOW_MS, instance: '/task-families' });
    expect(refused.json().detail).toMatch(/Rate limit of 4 requests per 1500 ms exceeded for this API key; retry in/);
    // A refused POST is not processed: no family is written.
    const post = await api.app.inject({ method: 'POST', url: '/task-families', headers: tenant.headers, payload: { name: 'x', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid' } } });
    expect(post.statusCode).toBe(429);
    expect(await api.db.prisma.taskFamily.count({ where: { tenantId: tenant.tenantId } })).toBe(0);

    // Another tenant, and another key of the same tenant, have budgets of their own.
    expect((await list(api.app, bystander.headers)).statusCode).toBe(200);
    const secondKey = await createApiKey(api.db, '', { tenantId: tenant.tenantId });
    expect((await list(api.app, { authorization: `Bearer ${secondKey.key}` })).statusCode).toBe(200);

    // Operations routes and bad keys are not counted against anyone (a bad key is a 401 first).
    for (let i = 0; i < MAX + 2; i++) expect((await api.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect((await list(api.app, { authorization: 'Bearer fa_AAAAAAAAAAAA_x' })).statusCode).toBe(401);

    // After the window the key may call again.
    await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000 + 100));
    expect((await list(api.app, tenant.headers)).statusCode).toBe(200);
  });

  it('refuses a key over its budget from memory until its window ends: Redis is not asked again', async () => {
    const tenant = await newTenant(api.db);
    const counter = `${api.prefix}:rate-limit:${tenant.keyId}`;
    for (let i = 0; i < MAX; i++) expect((await list(api.app, tenant.headers)).statusCode).toBe(200);
    expect((await list(api.app, tenant.headers)).statusCode).toBe(429);
    expect(await api.redis.get(counter)).toBe(String(MAX + 1));
    for (let i = 0; i < 5; i++) {
      const refused = await list(api.app, tenant.headers);
      expect(refused.statusCode).toBe(429);
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(refused.headers['x-ratelimit-remaining']).toBe('0');
    }
    // Answered from this process's memory: the shared count did not move.
    expect(await api.redis.get(counter)).toBe(String(MAX + 1));
    // The other process has not seen the refusal yet: it asks Redis, which refuses too.
    expect((await list(other, tenant.headers)).statusCode).toBe(429);
    expect(await api.redis.get(counter)).toBe(String(MAX + 2));
  });

  it('keeps its counters under the queue prefix', async () => {
    const tenant = await newTenant(api.db);
    await list(api.app, tenant.headers);
    const keys = await api.redis.keys(`${api.prefix}:rate-limit:*`);
    expect(keys).toContain(`${api.prefix}:rate-limit:${tenant.keyId}`);
  });

  it('is off with RATE_LIMIT_MAX=0', async () => {
    const unlimited = await startApi('rate-limit-off', { RATE_LIMIT_MAX: '0' });
    try {
      const tenant = await newTenant(unlimited.db);
      for (let i = 0; i < MAX + 2; i++) {
        const response = await list(unlimited.app, tenant.headers);
        expect(response.statusCode).toBe(200);
        expect(response.headers['x-ratelimit-limit']).toBeUndefined();
      }
    } finally {
      await unlimited.close();
    }
  });
});
