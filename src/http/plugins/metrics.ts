/**
 * GET /metrics (Prometheus text) and the hook that times every request by route template.
 * Who may scrape: a Bearer METRICS_API_KEY or ADMIN_API_KEY; with neither configured, clients on
 * this machine only (a scraper in front of a published port must then be given a key).
 */
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { Type } from 'typebox';
import { ApiMetrics } from '../../metrics/api.js';
import { collectProcessMetrics } from '../../metrics/registry.js';
import { HttpProblem } from '../problem.js';
import { problemResponses } from '../schemas/common.js';
import { fromLoopback, presentsOneOf } from './operator-auth.js';

export interface MetricsPluginOptions {
  /** The active tfjs backend's name, or null before one is initialised. */
  backend: () => string | null;
}

const EXAMPLE = [
  '# HELP fastadapt_queue_depth Jobs waiting for a worker in each queue',
  '# TYPE fastadapt_queue_depth gauge',
  'fastadapt_queue_depth{queue="meta-train"} 2',
].join('\n');

async function metrics(app: FastifyInstance, { backend }: MetricsPluginOptions): Promise<void> {
  collectProcessMetrics();
  const { config } = app;
  // Fails fast while Redis is away (one retry), so a scrape reports it down instead of queueing.
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, connectionName: 'fastadapt:metrics' });
  redis.on('error', (err: Error) => app.log.debug({ err }, 'metrics redis connection error'));
  app.addHook('onClose', async () => {
    await redis.quit().catch(() => redis.disconnect());
  });
  const collector = new ApiMetrics({ queues: app.queues, redis, prefix: config.queuePrefix, backend, timeoutMs: config.readyTimeoutMs });

  // Callback style: no promise per request.
  app.addHook('onResponse', (request, reply, done) => {
    collector.observeRequest(request.method, request.routeOptions.url, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });

  const keys = [config.metricsApiKey, config.adminApiKey].filter((key): key is string => key !== null);
  app.get('/metrics', {
    schema: {
      operationId: 'getMetrics',
      summary: 'Prometheus metrics: HTTP timings, queues, workers (iterations/s, adaptation latency), predict cache, tfjs backend',
      description: 'Needs `Authorization: Bearer <METRICS_API_KEY or ADMIN_API_KEY>`; with neither configured, only clients on the same machine are answered.',
      tags: ['operations'],
      security: [{ operatorKey: [] }],
      response: {
        200: { description: 'Prometheus text exposition format 0.0.4', content: { 'text/plain': { schema: Type.String({ examples: [EXAMPLE] }) } } },
        ...problemResponses(403),
      },
    },
  }, async (request, reply) => {
    if (keys.length === 0) {
      if (!fromLoopback(request)) throw new HttpProblem(403, 'Metrics are answered to this machine only: set METRICS_API_KEY to scrape from elsewhere');
    } else if (!presentsOneOf(request, keys)) {
      reply.header('www-authenticate', 'Bearer');
      throw new HttpProblem(401, 'Scraping metrics needs `Authorization: Bearer <METRICS_API_KEY or ADMIN_API_KEY>`');
    }
    const { contentType, text } = await collector.scrape();
    return reply.type(contentType).send(text);
  });
}

export default fp(metrics, { name: 'metrics', fastify: '5.x' });
