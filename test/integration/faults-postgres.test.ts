/**
 * Postgres goes away under a running API (a private server, stopped with a fast shutdown): /readyz
 * says 503 naming postgres, every request that needs the database answers 503 problem+json with
 * Retry-After (none hangs, none is a 500, the process stays up), and once the server is back the
 * same app serves everything again without a restart, data intact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InjectOptions } from 'fastify';
import { pino } from 'pino';
import { Redis } from 'ioredis';
import { createDb, type Db } from '../../src/db/client.js';
import { createApiKey } from '../../src/db/repositories/api-keys.js';
import { buildApp, type App } from '../../src/http/app.js';
import { closeQueues, createQueues, type Queues } from '../../src/jobs/queues.js';
import { SINE } from './support/api-app.js';
import { PrivatePostgres } from './support/private-postgres.js';
import { SHARED_REDIS_URL, freePort, removePrefix, testConfig, uniquePrefix } from './support/services.js';

const prefix = uniquePrefix('faults-pg');
let server: PrivatePostgres;
let db: Db;
let redis: Redis;
let queues: Queues;
let app: App;
let headers: Record<string, string>;

beforeAll(async () => {
  server = new PrivatePostgres(await freePort());
  await server.start();
  server.migrate();
  db = createDb(server.url);
  redis = new Redis(SHARED_REDIS_URL, { maxRetriesPerRequest: null });
  queues = createQueues({ connection: redis, prefix, logger: pino({ level: 'silent' }) });
  app = await buildApp({
    config: testConfig({ DATABASE_URL: server.url, QUEUE_PREFIX: prefix }),
    db,
    queues,
    probes: { postgres: () => db.ping(), redis: () => redis.ping(), backend: () => 'cpu' },
  });
  await app.ready();
  headers = { authorization: `Bearer ${(await createApiKey(db, 'faults')).key}` };
}, 120_000);

afterAll(async () => {
  await app?.close();
  await closeQueues(queues);
  await redis?.quit();
  await db?.close();
  await server?.destroy();
  await removePrefix(SHARED_REDIS_URL, prefix);
});

async function timed(request: InjectOptions) {
  const started = performance.now();
  const response = await app.inject(request);
  return { response, ms: performance.now() - started };
}

describe('Postgres stopped and started again', () => {
  it('answers 503 problem+json while it is down and recovers fully when it is back', async () => {
    const created = await app.inject({ method: 'POST', url: '/task-families', headers, payload: SINE });
    expect(created.statusCode).toBe(201);
    const familyId = (created.json() as { id: string }).id;
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);

    await server.stop();

    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(503);
    expect(ready.json()).toMatchObject({ status: 503, checks: { postgres: { status: 'down' }, redis: { status: 'up' } } });
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);

    const requests = [
      { method: 'GET' as const, url: '/task-families' },
      { method: 'GET' as const, url: `/task-families/${familyId}` },
      { method: 'POST' as const, url: '/task-families', payload: SINE },
      { method: 'POST' as const, url: '/meta-train', payload: { familyIds: [familyId], algorithm: 'maml' } },
      { method: 'GET' as const, url: '/meta-models' },
    ];
    for (const request of requests) {
      const { response, ms } = await timed({ ...request, headers });
      expect(response.statusCode, `${request.method} ${request.url}: ${response.body}`).toBe(503);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.headers['retry-after']).toBe('5');
      expect(response.json()).toMatchObject({ status: 503, title: 'Service Unavailable', dependency: 'postgres', instance: request.url.split('?')[0] });
      expect(response.json().detail).toMatch(/database is unavailable/);
      // Refused connections fail at once; nothing waits for the server to come back.
      expect(ms, `${request.method} ${request.url}`).toBeLessThan(6_000);
    }

    await server.start();
    const deadline = Date.now() + 20_000;
    while ((await app.inject({ method: 'GET', url: '/readyz' })).statusCode !== 200) {
      if (Date.now() > deadline) throw new Error('not ready again 20 s after Postgres returned');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const again = await app.inject({ method: 'GET', url: `/task-families/${familyId}`, headers });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ id: familyId, name: 'sine' });
    expect((await app.inject({ method: 'POST', url: '/task-families', headers, payload: SINE })).statusCode).toBe(201);
    expect(((await app.inject({ method: 'GET', url: '/task-families', headers })).json() as { items: unknown[] }).items).toHaveLength(2);
  });
});
