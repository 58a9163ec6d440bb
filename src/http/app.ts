/**
 * The Fastify app factory. It only composes: core plugins (errors, request ids, OpenAPI), the shared
 * dependencies as decorations, then the routes. It never listens; main.ts and tests decide that.
 */
import Fastify from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Db } from '../db/client.js';
import type { Queues } from '../jobs/queues.js';
import { JobEventReader } from '../jobs/event-reader.js';
import { createRedis } from '../jobs/redis.js';
import type { AppDeps } from './deps.js';
import adminBoard from './plugins/admin-board.js';
import adapted from './plugins/adapted.js';
import auth from './plugins/auth.js';
import errors, { clientErrors, frameworkErrors } from './plugins/errors.js';
import metrics from './plugins/metrics.js';
import openapi from './plugins/openapi.js';
import rateLimit from './plugins/rate-limit.js';
import requestIdPlugin, { requestId } from './plugins/request-id.js';
import { loggerOptions } from './logger.js';
import { RequestLogging } from './request-logging.js';
import adapt from './routes/adapt.js';
import dashboard from './routes/dashboard.js';
import health from './routes/health.js';
import evaluations from './routes/evaluations.js';
import metaModels from './routes/meta-models.js';
import metaTrainEvents from './routes/meta-train-events.js';
import metaTrain from './routes/meta-train.js';
import modelExport from './routes/model-export.js';
import predict from './routes/predict.js';
import studies from './routes/studies.js';
import studyEvents from './routes/study-events.js';
import tasks from './routes/tasks.js';
import taskExamples from './routes/task-examples.js';
import taskFamilies from './routes/task-families.js';
import { validatorCompiler } from './validation.js';

declare module 'fastify' {
  interface FastifyInstance {
    config: Config;
    db: Db;
    queues: Queues;
  }
}

/** Builds the app, ready for `inject` or `listen`. The caller owns closing the deps it passed. */
export async function buildApp(deps: AppDeps) {
  const { config } = deps;
  const app = Fastify({
    ...(deps.logger
      ? { loggerInstance: deps.logger }
      : { logger: loggerOptions(config.logLevel) }),
    genReqId: requestId,
    bodyLimit: config.limits.maxBodyBytes,
    // Path parameters are bounded by their schemas (ids 128, meta-model refs 300), which name the
    // field; the router's own cut-off (default 100) would answer a bare 414 first.
    routerOptions: { maxParamLength: 1024 },
    frameworkErrors,
    // Refusals Node makes before a request exists (headers over 16 KiB) answer problem+json too.
    clientErrorHandler: clientErrors,
    // Hot routes (predictions) log failures and slow requests only: see request-logging.ts.
    logController: new RequestLogging(),
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  // Only JSON bodies are part of the contract: anything else gets 415 rather than a confusing 400.
  app.removeContentTypeParser('text/plain');

  await app.register(errors);
  await app.register(requestIdPlugin);
  await app.register(openapi);

  app.decorate('config', config);
  app.decorate('db', deps.db);
  app.decorate('queues', deps.queues);
  // Before every route, so its timing hook sees them all.
  await app.register(metrics, { backend: deps.probes.backend });

  await app.register(auth);
  // One subscription per process to adaptation outcomes: adapt waiters and the predict cache.
  await app.register(adapted);

  await app.register(health, { probes: deps.probes, timeoutMs: config.readyTimeoutMs });
  // Operator pages: the queue board checks the admin key itself; the dashboard page is static and
  // calls the API with the key its user types in.
  await app.register(adminBoard);
  await app.register(dashboard);
  // Meta-training's cancel requests and event streams talk to Redis directly (PUBLISH, XREAD), on a
  // connection of the routes' own; every event stream of the process is read by one more connection
  // (XREAD BLOCK holds it). Both close with the app.
  const jobsRedis = createRedis(config.redisUrl, 'api-jobs', app.log as unknown as Logger);
  const eventsRedis = createRedis(config.redisUrl, 'api-events', app.log as unknown as Logger);
  const eventReader = new JobEventReader(eventsRedis, jobsRedis, app.log as unknown as Logger);
  app.addHook('onClose', async () => {
    eventReader.close();
    eventsRedis.disconnect();
    await jobsRedis.quit().catch(() => jobsRedis.disconnect());
  });
  // Resource routes, every one of them here (no route file registers another): each needs an API
  // key and acts for its tenant (request.tenant).
  await app.register(async (api) => {
    api.addHook('onRequest', api.authenticate);
    // Before the routes: it limits the routes registered after it, per key, once the key is known.
    await api.register(rateLimit);
    await api.register(taskFamilies);
    await api.register(metaTrain, { redis: jobsRedis });
    await api.register(metaTrainEvents, { redis: jobsRedis, reader: eventReader });
    await api.register(metaModels);
    await api.register(evaluations);
    await api.register(studies, { redis: jobsRedis });
    await api.register(studyEvents, { redis: jobsRedis });
    await api.register(tasks);
    await api.register(taskExamples);
    await api.register(adapt);
    await api.register(predict);
    await api.register(modelExport);
  });
  return app;
}

/** The app type routes are written against (TypeBox type provider). */
export type App = Awaited<ReturnType<typeof buildApp>>;
