/** GET /healthz (the process answers) and GET /readyz (its dependencies answer too). */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { lastLine } from '../../util/error-reason.js';
import { withTimeout } from '../../util/timeout.js';
import { PROBLEM_CONTENT_TYPE } from '../schemas/problem.js';
import { Health, NotReady, Ready, type DependencyCheck } from '../schemas/health.js';
import type { ReadinessProbes } from '../deps.js';
import { chooseEngine } from '../../meta/engine.js';

/** Runs one probe, bounded by `timeoutMs`: a dependency that hangs counts as down. */
async function check(probe: () => Promise<unknown>, timeoutMs: number): Promise<DependencyCheck> {
  const started = performance.now();
  try {
    await withTimeout(probe(), timeoutMs);
    return { status: 'up', latencyMs: Math.round(performance.now() - started) };
  } catch (error) {
    // One line saying why: the last (see lastLine).
    return { status: 'down', latencyMs: Math.round(performance.now() - started), error: lastLine(error) || 'failed' };
  }
}

export interface HealthRoutesOptions {
  probes: ReadinessProbes;
  timeoutMs: number;
}

const health: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, { probes, timeoutMs }) => {
  app.get('/healthz', {
    schema: { operationId: 'getHealth', tags: ['operations'], summary: 'The process is up', security: [], response: { 200: Health } },
  }, async () => ({ status: 'ok' as const }));

  app.get('/readyz', {
    schema: {
      operationId: 'getReadiness',
      tags: ['operations'],
      summary: 'Postgres and Redis answer and a TensorFlow.js backend is loaded',
      security: [],
      response: {
        200: Ready,
        503: { description: 'A dependency is down; `checks` says which and why', content: { [PROBLEM_CONTENT_TYPE]: { schema: NotReady } } },
      },
    },
  }, async (request, reply) => {
    const backend = probes.backend();
    const engine = backend === null ? null : chooseEngine();
    const engines = backend === null ? null : { mlp: chooseEngine('auto', undefined, 'mlp'), conv: chooseEngine('auto', undefined, 'conv') };
    const [postgres, redis] = await Promise.all([check(probes.postgres, timeoutMs), check(probes.redis, timeoutMs)]);
    const tfjs: DependencyCheck = backend
      ? { status: 'up', latencyMs: 0 }
      : { status: 'down', latencyMs: 0, error: 'no TensorFlow.js backend initialised' };
    const checks = { postgres, redis, tfjs };
    const down = Object.entries(checks).filter(([, c]) => c.status === 'down');
    if (down.length === 0) return { status: 'ready' as const, checks, backend, engine, engines };

    request.log.warn({ checks }, 'not ready');
    return reply.code(503).type(PROBLEM_CONTENT_TYPE).send({
      type: 'about:blank',
      title: 'Service Unavailable',
      status: 503 as const,
      detail: `Not ready: ${down.map(([name, c]) => `${name} (${c.error})`).join(', ')}`,
      instance: request.url.split('?')[0],
      checks,
      backend,
      engine,
      engines,
    });
  });
};

export default health;
