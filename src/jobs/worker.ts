/**
 * The worker pool: one BullMQ Worker per queue, each running the handler the table names for it.
 * Adaptation gets its own worker, so a client waiting on one is never stuck behind meta-training.
 */
import { WaitingError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { Logger } from 'pino';
import { runtimeAborted } from '../meta/index.js';
import { QUEUE_NAMES, type JobData, type QueueName } from './queues.js';

/**
 * Runs one job. `signal` aborts when the job is cancelled or the process shuts down
 * (`signal.reason === SHUTDOWN`): a long handler then saves a checkpoint and throws, and the job goes
 * back to the queue to resume elsewhere instead of failing. A short handler may simply finish.
 */
export type JobHandler<Q extends QueueName> = (job: Job<JobData<Q>, unknown, Q>, token: string, signal: AbortSignal) => Promise<unknown>;

/** Exactly one handler per queue. */
export type HandlerTable = { readonly [Q in QueueName]: JobHandler<Q> };

/** The abort reason a handler sees when the process, not the job, is ending. */
export const SHUTDOWN = 'shutdown';

/** A queue without a handler, or a handler for a queue that does not exist. */
export class HandlerTableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HandlerTableError';
  }
}

/**
 * Start-up check: refuses a table that misses a queue (its jobs would wait forever) or names one
 * that does not exist (a typo that would leave the real queue unserved).
 */
export function assertHandlerTable(table: Readonly<Record<string, unknown>>): asserts table is HandlerTable {
  const missing = QUEUE_NAMES.filter((name) => typeof table[name] !== 'function');
  const unknown = Object.keys(table).filter((name) => !(QUEUE_NAMES as readonly string[]).includes(name));
  const problems = [
    ...(missing.length ? [`no handler for queue ${missing.map((n) => `"${n}"`).join(', ')}`] : []),
    ...(unknown.length ? [`handler for unknown queue ${unknown.map((n) => `"${n}"`).join(', ')}`] : []),
  ];
  if (problems.length) throw new HandlerTableError(`Worker handler table: ${problems.join('; ')}`);
}

export interface WorkerPoolOptions {
  connection: ConnectionOptions;
  /** Redis key prefix; must match the queues' (config.queuePrefix). */
  prefix: string;
  /** Meta-training jobs run at once in this process (config.workerConcurrency). Default 1. */
  concurrency?: number;
  /** Adaptations run at once in this process (config.adaptConcurrency). Default 4. */
  adaptConcurrency?: number;
  /** Lock lifetime of a running job, renewed every half of it (config.lockDurationMs). Default 30000. */
  lockDuration?: number;
  /** How often to look for jobs whose lock expired (config.stalledIntervalMs). Default 15000. */
  stalledInterval?: number;
  /** Recoveries from a dead worker before a job fails (config.maxStalledCount). Default 10. */
  maxStalledCount?: number;
  /**
   * A handler's WebAssembly runtime aborted ({@link runtimeAborted}): its job failed this attempt
   * and this process must stop computing (main.ts shuts it down with exit code 1, for its supervisor
   * to start a fresh one). Default: nothing more.
   */
  onRuntimeAborted?: (error: unknown) => void;
  logger: Logger;
}

export interface WorkerPool {
  readonly workers: readonly Worker[];
  /**
   * Stops taking jobs, asks running ones to stop (abort reason {@link SHUTDOWN}), and resolves when
   * each has finished or been handed back to its queue.
   */
  close(): Promise<void>;
}

function processorFor<Q extends QueueName>(queue: Q, handler: JobHandler<Q>, logger: Logger, stopping: () => boolean, onRuntimeAborted: (error: unknown) => void) {
  // Stopped because this process is leaving, not because the job failed: hand the job back
  // (attempts unchanged) so another worker runs or resumes it from its checkpoint.
  const handBack = async (job: Job<JobData<Q>, unknown, Q>, token: string): Promise<never> => {
    await job.moveToWait(token);
    logger.info({ queue, jobId: job.id }, 'job handed back to the queue for shutdown');
    throw new WaitingError();
  };
  // Three declared parameters: BullMQ passes an AbortSignal only to processors that take one.
  return async (job: Job<JobData<Q>, unknown, Q>, token?: string, signal?: AbortSignal) => {
    if (token === undefined || signal === undefined) throw new Error(`BullMQ gave the ${queue} processor no lock token or signal`);
    // A fetch already in flight when close() began can still deliver a job: don't start it.
    if (stopping()) return handBack(job, token);
    try {
      return await handler(job, token, signal);
    } catch (error) {
      if (signal.aborted && signal.reason === SHUTDOWN) return handBack(job, token);
      // The process's fault more than the job's: the job fails this attempt (a retry runs elsewhere,
      // a meta-train job from its checkpoint; the last attempt is recorded failed, so a job that
      // aborts every runtime cannot take down worker after worker), and this process stops.
      if (runtimeAborted(error)) {
        logger.fatal({ queue, jobId: job.id, err: error }, 'the WebAssembly runtime aborted: this process stops computing');
        onRuntimeAborted(error);
      }
      throw error;
    }
  };
}

/**
 * Starts one worker per queue. The type demands a handler per queue; the same is checked at run time
 * for tables put together dynamically.
 */
export function startWorkers(table: HandlerTable, options: WorkerPoolOptions): WorkerPool {
  assertHandlerTable(table as unknown as Readonly<Record<string, unknown>>);
  const { connection, prefix, concurrency = 1, adaptConcurrency = 4, lockDuration = 30_000, stalledInterval = 15_000, maxStalledCount = 10, logger, onRuntimeAborted = () => undefined } = options;
  let stopping = false;

  const open = <Q extends QueueName>(queue: Q): Worker => {
    const worker = new Worker<JobData<Q>, unknown, Q>(queue, processorFor(queue, table[queue], logger, () => stopping, onRuntimeAborted), {
      connection,
      prefix,
      concurrency: queue === 'adapt' ? adaptConcurrency : concurrency,
      lockDuration,
      stalledInterval,
      maxStalledCount,
    });
    // Adaptations are many and short (their outcome is in Postgres and in the metrics): their
    // start/end lines are debug, so a busy worker does not spend more on logging than on adapting.
    const lifecycle = queue === 'adapt' ? 'debug' : 'info';
    worker.on('active', (job) => logger[lifecycle]({ queue, jobId: job.id, attempt: job.attemptsStarted }, 'job started'));
    worker.on('completed', (job) => logger[lifecycle]({ queue, jobId: job.id, ms: Date.now() - (job.processedOn ?? Date.now()) }, 'job completed'));
    worker.on('failed', (job, err) => logger.warn({ queue, jobId: job?.id, err, attemptsMade: job?.attemptsMade }, 'job failed'));
    worker.on('error', (err) => logger.error({ queue, err }, 'worker error'));
    worker.on('stalled', (jobId) => logger.warn({ queue, jobId }, 'job stalled (its worker stopped renewing the lock): back in the queue'));
    return worker as unknown as Worker;
  };
  const workers = QUEUE_NAMES.map((queue) => open(queue));
  logger.info({ queues: QUEUE_NAMES, concurrency, adaptConcurrency }, 'workers started');

  return {
    workers,
    async close() {
      stopping = true;
      const closed = workers.map((worker) => worker.close());
      for (const worker of workers) worker.cancelAllJobs(SHUTDOWN);
      await Promise.all(closed);
    },
  };
}
