/**
 * The job name -> handler table the worker role runs. Each queue's handler lives in its own file:
 * meta-train (the engine's training loop, checkpointing on abort), adapt (the inner loop on a
 * support set, from meta-models kept hot in this process) and evaluate (a meta-model against
 * baselines on held-out tasks, from the same hot meta-models).
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Db } from '../../db/client.js';
import type { CancelListener } from '../cancel.js';
import { createMetaTrainHandler } from '../meta-train-processor.js';
import { chainDelayMs, createAdaptHandler } from '../adapt-processor.js';
import { createEvaluateHandler } from '../evaluate-processor.js';
import { MetaModelCache } from '../../db/meta-model-cache.js';
import { DEFAULT_READAPT_DELAY_MS, enqueueReadapt, type Queues } from '../queues.js';
import type { HandlerTable } from '../worker.js';

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
  /** Decoded meta-models kept hot for adaptation. Default: a new cache with its default bounds. */
  metaModels?: MetaModelCache;
  /** Where a readapt-auto chain queues its next adaptation. Default: none (the reconciler queues it). */
  queues?: Queues;
  /** The coalescing delay of readapt auto (config.readaptDelayMs). Default 40. */
  readaptDelayMs?: number;
}

/** Builds the table; startWorkers() refuses it if any queue lacks a handler. */
export function createHandlers(deps: HandlerDeps): HandlerTable {
  const metaModels = deps.metaModels ?? new MetaModelCache();
  const { queues } = deps;
  return {
    'meta-train': createMetaTrainHandler({ ...deps, prefix: deps.queuePrefix }),
    adapt: createAdaptHandler({
      db: deps.db, redis: deps.redis, prefix: deps.queuePrefix, logger: deps.logger, metaModels,
      ...(queues ? { enqueueReadapt: (taskId: string, adaptationId: string, previousStart: number) => enqueueReadapt(queues, taskId, adaptationId, chainDelayMs(deps.readaptDelayMs ?? DEFAULT_READAPT_DELAY_MS, previousStart)) } : {}),
    }),
    evaluate: createEvaluateHandler({ db: deps.db, logger: deps.logger, metaModels }),
  };
}
