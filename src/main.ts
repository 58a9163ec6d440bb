/**
 * Process entry: `tsx src/main.ts [--role api|worker|all]`.
 * api serves HTTP only, worker runs the job handlers only, all (the local default) does both.
 */
import { pino, type Logger } from 'pino';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createDb } from './db/client.js';
import { buildApp } from './http/app.js';
import { loggerOptions } from './http/logger.js';
import { CancelListener } from './jobs/cancel.js';
import { createHandlers } from './jobs/handlers/index.js';
import { closeQueues, createQueues } from './jobs/queues.js';
import { Reconciler } from './jobs/reconciler.js';
import { StudyScheduler } from './jobs/study-scheduler.js';
import { createProbeRedis, createRedis } from './jobs/redis.js';
import { Shutdown } from './jobs/shutdown.js';
import { startWorkers } from './jobs/worker.js';
import { activeBackend, initBackend } from './meta/backend.js';
import { chooseEngine } from './meta/engine.js';
import { instrumentWorkers, WorkerMetricsPublisher } from './metrics/worker.js';

function readConfig(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`fastadapt: ${error.message}\n`);
    process.exit(1);
  }
}

async function start(config: Config, logger: Logger, shutdown: Shutdown): Promise<void> {
  const backend = await initBackend(config.tfjsBackend);
  logger.info({ role: config.role, backend, engine: chooseEngine() }, 'starting');

  // Registered in opening order; Shutdown closes in reverse: workers, HTTP, queues, Redis, Postgres.
  const db = createDb(config.databaseUrl, { datasetCacheMiB: config.datasetCacheMiB });
  shutdown.add('postgres', () => db.close());
  const redis = createRedis(config.redisUrl, config.role, logger);
  shutdown.add('redis', () => redis.quit());

  // The API enqueues; workers need the queues too, for the reconciler's re-enqueue.
  const queues = createQueues({ connection: redis, prefix: config.queuePrefix, logger });
  shutdown.add('queues', () => closeQueues(queues));

  if (config.role !== 'worker') {
    const probe = createProbeRedis(config.redisUrl, logger);
    shutdown.add('redis probe', () => probe.quit());
    const app = await buildApp({
      config,
      db,
      queues,
      logger,
      probes: { postgres: () => db.ping(), redis: () => probe.ping(), backend: activeBackend },
    });
    shutdown.add('http', () => app.close());
    await app.listen({ host: config.host, port: config.port });
  }

  if (config.role !== 'api') {
    const cancels = await CancelListener.start(redis, config.queuePrefix, logger);
    const handlers = createHandlers({ db, logger, redis, queuePrefix: config.queuePrefix, cancels, progressIntervalMs: config.progressIntervalMs, queues, readaptDelayMs: config.readaptDelayMs });
    const pool = startWorkers(handlers, {
      connection: redis,
      prefix: config.queuePrefix,
      concurrency: config.workerConcurrency,
      adaptConcurrency: config.adaptConcurrency,
      lockDuration: config.lockDurationMs,
      stalledInterval: config.stalledIntervalMs,
      maxStalledCount: config.maxStalledCount,
      // A broken runtime computes nothing more here: exit 1, for the supervisor to start a fresh process.
      onRuntimeAborted: () => void shutdown.run('the WebAssembly runtime aborted', 1),
      logger,
    });
    const reconciler = new Reconciler({ db, queues, redis, prefix: config.queuePrefix, logger, intervalMs: config.reconcileIntervalMs }).start();
    const studies = new StudyScheduler({ db, queues, logger, maxActiveJobsPerTenant: config.limits.maxConcurrentJobsPerTenant, intervalMs: config.studyIntervalMs }).start();
    // One step: stop re-enqueueing, let running jobs finish or hand back, then stop listening for cancels.
    // Worker metrics reach the API's /metrics through Redis (see metrics/snapshots.ts).
    instrumentWorkers(pool.workers);
    const metrics = new WorkerMetricsPublisher({ redis, prefix: config.queuePrefix, intervalMs: config.workerMetricsIntervalMs, backend: activeBackend, logger }).start();
    shutdown.add('workers', async () => {
      await reconciler.stop();
      await studies.stop();
      await pool.close();
      await metrics.close();
      await cancels.close();
    });
  }
  logger.info({ role: config.role }, 'started');
}

const config = readConfig();
const logger = pino(loggerOptions(config.logLevel));
// Listening before anything opens: a signal during start-up still closes what was opened so far.
const shutdown = new Shutdown({ logger, timeoutMs: config.shutdownTimeoutMs }).listen();
start(config, logger, shutdown).catch(async (err: unknown) => {
  logger.fatal({ err }, 'start-up failed');
  await shutdown.run('start-up failed', 1);
});
