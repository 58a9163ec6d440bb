/**
 * /readyz follows its dependencies: a private redis-server (never the shared one) is killed and
 * restarted under a running app, and an unreachable Postgres is reported by name.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { createDb, type Db } from '../../src/db/client.js';
import { buildApp, type App } from '../../src/http/app.js';
import { closeQueues, createQueues, type Queues } from '../../src/jobs/queues.js';
import { createProbeRedis, createRedis } from '../../src/jobs/redis.js';
import { PrivateRedis, TEST_DATABASE_URL, freePort, removePrefix, testConfig, uniquePrefix } from './support/services.js';

const logger = pino({ level: 'silent' });

interface Readiness {
  status: number | string;
  detail?: string;
  backend: string | null;
  engine: string | null;
  engines?: { mlp: string; conv: string } | null;
  checks: Record<'postgres' | 'redis' | 'tfjs', { status: string; error?: string }>;
}

async function readiness(app: App): Promise<{ statusCode: number; contentType: string; body: Readiness }> {
  const response = await app.inject({ method: 'GET', url: '/readyz' });
  return { statusCode: response.statusCode, contentType: String(response.headers['content-type']), body: response.json() };
}

/** Polls until /readyz answers `status` (reconnects take a moment), or fails after `timeoutMs`. */
async function eventually(app: App, status: number, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  let last = await readiness(app);
  while (last.statusCode !== status && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    last = await readiness(app);
  }
  return last;
}

describe('readiness follows Redis', () => {
  let redisServer: PrivateRedis;
  let app: App;
  let db: Db;
  let redis: Redis;
  let probe: Redis;
  let queues: Queues;

  beforeAll(async () => {
    redisServer = new PrivateRedis(await freePort());
    await redisServer.start();
    const config = testConfig({ REDIS_URL: redisServer.url, READY_TIMEOUT_MS: '500' });
    db = createDb(TEST_DATABASE_URL);
    redis = createRedis(config.redisUrl, 'test', logger);
    probe = createProbeRedis(config.redisUrl, logger);
    queues = createQueues({ connection: redis, prefix: uniquePrefix('ready'), logger });
    app = await buildApp({ config, db, queues, probes: { postgres: () => db.ping(), redis: () => probe.ping(), backend: () => 'cpu' } });
    await app.ready();
  });

  afterAll(async () => {
    await app?.close();
    await redisServer.start(); // if a failed assertion left it down, let the queues close cleanly
    await closeQueues(queues);
    await Promise.all([redis.quit(), probe.quit(), db.close()]);
    await redisServer.stop();
  });

  it('is 200, then 503 naming redis while it is down, then 200 when it is back', async () => {
    const up = await eventually(app, 200);
    expect(up.statusCode).toBe(200);
    expect(up.body.checks.redis.status).toBe('up');
    // A CPU backend: meta-training and adaptation run on the fused kernels, and /readyz says so.
    expect(up.body).toMatchObject({ backend: 'cpu', engine: 'fused-wasm', engines: { mlp: 'fused-wasm', conv: 'onnxruntime' } });

    await redisServer.stop();
    const down = await eventually(app, 503);
    expect(down.statusCode).toBe(503);
    expect(down.contentType).toMatch(/^application\/problem\+json/);
    expect(down.body).toMatchObject({ status: 503, checks: { postgres: { status: 'up' }, redis: { status: 'down' } } });
    expect(down.body.checks.redis.error).toMatch(/ECONNREFUSED|writeable|connect|closed/i);
    expect(down.body.detail).toMatch(/^Not ready: redis \(/);

    await redisServer.start();
    const back = await eventually(app, 200);
    expect(back.statusCode).toBe(200);
    expect(back.body.checks.redis.status).toBe('up');
  });
});

describe('readiness names an unreachable Postgres and a missing backend', () => {
  it('is 503 with the postgres and tfjs checks down and why', async () => {
    const port = await freePort(); // nothing listens there
    const db = createDb(`postgresql://postgres@127.0.0.1:${port}/fastadapt_test`);
    const config = testConfig({ READY_TIMEOUT_MS: '2000' });
    const redis = createRedis(config.redisUrl, 'test', logger);
    const probe = createProbeRedis(config.redisUrl, logger);
    const prefix = uniquePrefix('ready-pg');
    const queues = createQueues({ connection: redis, prefix, logger });
    const app = await buildApp({
      config,
      db,
      queues,
      probes: { postgres: () => db.ping(), redis: () => probe.ping(), backend: () => null },
    });
    try {
      const { statusCode, body } = await eventually(app, 503, 3_000);
      expect(statusCode).toBe(503);
      expect(body.checks.postgres.status).toBe('down');
      expect(body.checks.postgres.error).toMatch(/reach|ECONNREFUSED|connect/i);
      expect(body.checks.postgres.error).not.toContain('\n');
      expect(body.checks.tfjs).toMatchObject({ status: 'down', error: 'no TensorFlow.js backend initialised' });
      expect(body.engine).toBeNull();
      expect(body.engines).toBeNull();
      expect(body.detail).toMatch(/postgres \(.+\).*tfjs/);
    } finally {
      await app.close();
      await closeQueues(queues);
      await Promise.all([redis.quit(), probe.quit(), db.close()]);
      await removePrefix(config.redisUrl, prefix);
    }
  });
});
