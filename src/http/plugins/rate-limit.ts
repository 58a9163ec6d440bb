/**
 * Rate limiting per API key: RATE_LIMIT_MAX requests per RATE_LIMIT_WINDOW_MS, counted in Redis so
 * every API process shares one budget per key. Beyond it: 429 problem+json with Retry-After, and
 * the key's further requests in that window are refused from memory (rate-limit-store.ts).
 *
 * Register it inside the authenticated scope, after `authenticate`: it adds its check to each route
 * registered after it there, and route hooks run after the scope's, so `request.tenant` is known and
 * a bad key is a 401 that costs no Redis round trip.
 *
 * While Redis is unreachable the limiter lets requests through (skipOnError): the routes that need
 * Redis answer 503 by themselves, and the rest should not fail because the counter is missing.
 */
import fp from 'fastify-plugin';
import fastifyRateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Redis } from 'ioredis';
import { HttpProblem } from '../problem.js';
import { refusalFrontedRedisStore } from '../rate-limit-store.js';

/** Most the limiter waits for its Redis connection at start-up; a Redis that is down must not block boot. */
const CONNECT_WAIT_MS = 2_000;

/**
 * A connection that fails fast: while Redis is away a count fails at once (and the request goes
 * through) instead of waiting in an offline queue.
 */
function counterConnection(url: string): Redis {
  return new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 1_000,
    connectionName: 'fastadapt:rate-limit',
  });
}

async function connected(redis: Redis, ms: number): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      redis.off('ready', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    redis.once('ready', done);
  });
}

function describeWindow(ms: number): string {
  if (ms % 3_600_000 === 0) return ms === 3_600_000 ? 'hour' : `${ms / 3_600_000} hours`;
  if (ms % 60_000 === 0) return ms === 60_000 ? 'minute' : `${ms / 60_000} minutes`;
  if (ms % 1_000 === 0) return ms === 1_000 ? 'second' : `${ms / 1_000} seconds`;
  return `${ms} ms`;
}

async function rateLimit(app: FastifyInstance): Promise<void> {
  const { rateLimitMax: max, rateLimitWindowMs: windowMs, redisUrl, queuePrefix } = app.config;
  if (max === 0) return;

  const redis = counterConnection(redisUrl);
  redis.on('error', (err: Error) => app.log.debug({ err }, 'rate-limit redis connection error'));
  app.addHook('onClose', async () => {
    await redis.quit().catch(() => redis.disconnect());
  });
  await connected(redis, CONNECT_WAIT_MS);

  const window = describeWindow(windowMs);
  await app.register(fastifyRateLimit, {
    max,
    timeWindow: windowMs,
    // Under the queue prefix: deployments (and test runs) sharing one Redis keep separate counts.
    // A key already over its budget is refused from memory until its window ends (no round trip).
    store: refusalFrontedRedisStore(redis, `${queuePrefix}:rate-limit:`),
    keyGenerator: (request: FastifyRequest) => request.tenant.keyId,
    skipOnError: true,
    errorResponseBuilder: (_request, context) =>
      new HttpProblem(context.statusCode, `Rate limit of ${max} requests per ${window} exceeded for this API key; retry in ${context.after}`, {
        extensions: { limit: max, windowMs },
      }),
  });
}

export default fp(rateLimit, { name: 'rate-limit', fastify: '5.x', dependencies: ['auth'] });
