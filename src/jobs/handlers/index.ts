/**
 * The job name -> handler table the worker role runs. Each queue's real handler lives in its own file
 * here and replaces its entry below: meta-train (the engine's training loop, checkpointing on abort)
 * and adapt (the inner loop on a support set) arrive with their issues.
 */
import { UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Db } from '../../db/client.js';
import type { CancelListener } from '../cancel.js';
import { createMetaTrainHandler } from '../meta-train-processor.js';
import type { HandlerTable, JobHandler } from '../worker.js';
import type { QueueName } from '../queues.js';

/** What handlers may use; they get everything else from the rows their job ids name. */
export interface HandlerDeps {
  db: Db;
  logger: Logger;
  /** For publishing job events (a normal, non-subscribed connection). */
  redis: Redis;
  /** Redis key prefix (config.queuePrefix). */
  queuePrefix: string;
  /** This process's running jobs, cancelled across processes through Redis pub/sub. */
  cancels: CancelListener;
  /** Least ms between two progress writes of a meta-training run (config.progressIntervalMs). Default 250. */
  progressIntervalMs?: number;
}

/**
 * A queue whose handler has not landed yet: its jobs fail at once, visibly and without retries,
 * instead of waiting forever or pretending to succeed.
 */
function notYetImplemented<Q extends QueueName>(queue: Q): JobHandler<Q> {
  return async (job) => {
    throw new UnrecoverableError(`The ${queue} handler is not implemented yet (job ${job.id})`);
  };
}

/** Builds the table; startWorkers() refuses it if any queue lacks a handler. */
export function createHandlers(deps: HandlerDeps): HandlerTable {
  return {
    'meta-train': createMetaTrainHandler({ ...deps, prefix: deps.queuePrefix }),
    adapt: notYetImplemented('adapt'),
  };
}
