/**
 * The adapt processor: turns one adaptation row (a task's support set) into the task's next adapted
 * head version, then announces it on `<prefix>:adapted` for the API process waiting on it.
 *
 * The round trip is latency-bound, so the path is short: one read for the adaptation and its task,
 * the meta-model from the in-process hot cache (Postgres and one decode only on a miss), the engine's
 * inner loop (batched with concurrent adaptations of the same meta-model), one transaction for the
 * write, one PUBLISH. Only what the algorithm adapts is stored (the head alone for ANIL and
 * ProtoNets); prediction merges it with the meta-model's body.
 *
 * How an adaptation ends:
 * - adapted and stored: `succeeded` with a new head version;
 * - the engine diverges or the inputs cannot be adapted (no NaN is ever stored), or the task's
 *   meta-model is gone or corrupt: `failed` with a readable reason, no retry;
 * - Postgres or Redis fails: thrown, so BullMQ retries; the last attempt also records `failed`.
 */
import { UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Db } from '../db/client.js';
import type { MetaModelCache } from '../db/meta-model-cache.js';
import * as adaptations from '../db/repositories/adaptations.js';
import { continueReadapt } from '../db/repositories/task-examples.js';
import { loadMetaModel } from '../db/repositories/meta-models.js';
import { CodecError, encodeParams, NonFiniteError, type MetaModel } from '../meta/index.js';
import { errorMessage } from '../util/error-reason.js';
import { AdaptBatcher } from './adapt-batcher.js';
import { publishAdapted, type AdaptedMessage, type AdaptTimings } from './adapted.js';
import type { JobHandler } from './worker.js';

export interface AdaptDeps {
  db: Db;
  /** Where outcomes are published (a normal, non-subscribed connection). */
  redis: Redis;
  /** Redis key prefix (config.queuePrefix). */
  prefix: string;
  logger: Logger;
  /** This process's decoded meta-models. */
  metaModels: MetaModelCache;
  /**
   * Queues the next adaptation of a readapt-auto chain, whose previous adaptation was picked up at
   * `previousStart` (epoch ms): see {@link chainDelayMs}. Without it the row stays queued for the
   * reconciler.
   */
  enqueueReadapt?: (taskId: string, adaptationId: string, previousStart: number) => Promise<unknown>;
}

/**
 * The delay of a readapt-auto chain's next adaptation: READAPT_DELAY_MS after the previous one was
 * picked up, or none once that has passed. The examples appended while the previous one ran are
 * coalesced by then, and a delayed BullMQ job waits for its promotion (tens of ms beyond its delay,
 * measured by bench:living) where a job without a delay starts at once. The chain's first adaptation,
 * queued by an append, waits the whole delay for the rest of its burst.
 */
export function chainDelayMs(readaptDelayMs: number, previousStart: number, now = Date.now()): number {
  return Math.max(0, readaptDelayMs - (now - previousStart));
}

/** How a run ended (the BullMQ job's return value). */
export type AdaptOutcome =
  | { outcome: 'succeeded'; headVersion: number }
  | { outcome: 'failed'; error: string }
  /** The adaptation does not exist or had already ended: nothing written. */
  | { outcome: 'skipped' };

/** The adaptation cannot succeed: it ends `failed` with this message and is not retried. */
class AdaptationFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdaptationFailure';
  }
}

/** The BullMQ handler for the `adapt` queue. */
export function createAdaptHandler(deps: AdaptDeps): JobHandler<'adapt'> {
  return async (job) => {
    const outcome = await runAdaptation(deps, job.data.adaptationId, {
      enqueuedAt: job.timestamp,
      lastAttempt: job.attemptsMade + 1 >= (job.opts.attempts ?? 1),
    });
    // Failed in Postgres: fail the BullMQ job too (visible in Redis), without retries.
    if (outcome.outcome === 'failed') throw new UnrecoverableError(outcome.error);
    return outcome;
  };
}

export interface RunAdaptationOptions {
  /** When the job was enqueued (ms since the epoch), for the queue-wait timing. Default: now. */
  enqueuedAt?: number;
  /** No retry follows: an unexpected error also ends the adaptation `failed`. Default true. */
  lastAttempt?: boolean;
}

/**
 * Runs adaptation `adaptationId` to its end (see the module comment); one started by readapt auto
 * is followed by the next of its chain when newer examples were stored meanwhile (continueReadapt).
 */
export async function runAdaptation(deps: AdaptDeps, adaptationId: string, options: RunAdaptationOptions = {}): Promise<AdaptOutcome> {
  const pickedAt = Date.now();
  const ran = await runOnce(deps, adaptationId, options, pickedAt);
  const { work } = ran;
  if (work?.autoReadapt && ran.outcome.outcome !== 'skipped') {
    // Failed too: only newer examples start another, so a support set that cannot adapt does not loop.
    const next = await continueReadapt(deps.db, work.taskId, work.examplesThrough ?? Number.MAX_SAFE_INTEGER, { steps: work.steps, innerLr: work.innerLr, guard: work.guard });
    if (next && deps.enqueueReadapt) {
      await deps.enqueueReadapt(work.taskId, next, pickedAt).catch((err: unknown) => deps.logger.warn({ err, adaptationId: next }, 'could not enqueue the next readapt; the reconciler will'));
    }
  }
  return ran.outcome;
}

async function runOnce(deps: AdaptDeps, adaptationId: string, options: RunAdaptationOptions, pickedAt: number): Promise<{ outcome: AdaptOutcome; work: adaptations.AdaptationWork | null }> {
  let work: adaptations.AdaptationWork | null = null;
  const outcome = await runLoaded(deps, adaptationId, options, pickedAt, (loaded) => {
    work = loaded;
  });
  return { outcome, work };
}

/** `pickedAt`: when the worker picked the job up (ms since the epoch): timings, and the chain's next delay. */
async function runLoaded(deps: AdaptDeps, adaptationId: string, options: RunAdaptationOptions, pickedAt: number, loaded: (work: adaptations.AdaptationWork) => void): Promise<AdaptOutcome> {
  const startedAt = new Date(pickedAt);
  const clock = new Stopwatch();
  const { db, logger } = deps;
  let work: adaptations.AdaptationWork | null = null;
  try {
    work = await loadOrFail(db, adaptationId);
    if (!work || work.status === 'succeeded' || work.status === 'failed') {
      logger.info({ adaptationId, status: work?.status ?? null }, 'adaptation missing or already ended: nothing to run');
      return { outcome: 'skipped' };
    }
    loaded(work);
    if (work.support.n === 0) throw new AdaptationFailure('the task has no stored examples to adapt on');
    const model = await metaModelFor(deps, work);
    const loadMs = clock.lap();

    const { params, supportLossBefore, supportLossAfter, supportLoss, steps } = await adaptOrFail(model, work);
    const bytes = encodeOrFail(params);
    const adaptMs = clock.lap();

    const durationMs = Date.now() - pickedAt;
    const headVersion = await adaptations.recordHead(db, {
      adaptationId,
      taskId: work.taskId,
      params: bytes,
      supportLossBefore,
      supportLossAfter,
      supportLoss,
      steps,
      innerLr: work.innerLr,
      durationMs,
      startedAt,
      ...(work.fromExamples ? { storedSet: { support: work.support, through: work.examplesThrough ?? 0 } } : {}),
    });
    const writeMs = clock.lap();
    if (headVersion === null) {
      logger.info({ adaptationId }, 'adaptation ended meanwhile (another run stored it): nothing written');
      return { outcome: 'skipped' };
    }
    const timings: AdaptTimings = { queuedMs: Math.max(0, pickedAt - (options.enqueuedAt ?? pickedAt)), loadMs, adaptMs, writeMs };
    // The message's duration includes the write (the stored one cannot include its own write).
    const totalMs = Date.now() - pickedAt;
    publish(deps, { ...identity(work), headVersion, status: 'succeeded', supportLoss: adaptations.supportLossView(supportLossBefore, supportLossAfter, supportLoss), steps, durationMs: totalMs, timings });
    logger.debug({ adaptationId, taskId: work.taskId, headVersion, ...timings }, 'adaptation stored');
    return { outcome: 'succeeded', headVersion };
  } catch (error) {
    if (error instanceof AdaptationFailure) return fail(deps, adaptationId, work, error.message, startedAt);
    if (options.lastAttempt ?? true) {
      logger.error({ adaptationId, err: error }, 'adaptation failed on its last attempt');
      try {
        return await fail(deps, adaptationId, work, `the worker failed: ${errorMessage(error)}`, startedAt);
      } catch {
        // Postgres may be what failed: the row stays unfinished and the API's wait falls back to 202.
      }
    }
    throw error;
  }
}

async function loadOrFail(db: Db, adaptationId: string): Promise<adaptations.AdaptationWork | null> {
  try {
    return await adaptations.loadAdaptation(db, adaptationId);
  } catch (error) {
    if (error instanceof adaptations.StoredDataError) throw new AdaptationFailure(`the stored support set is unreadable: ${error.message}`);
    throw error;
  }
}

/** The task's meta-model, from the hot cache or decoded once from Postgres; checked against the task. */
async function metaModelFor(deps: AdaptDeps, work: adaptations.AdaptationWork): Promise<MetaModel> {
  let model: MetaModel | null;
  try {
    model = await deps.metaModels.get(work.metaModelId, (id) => loadMetaModel(deps.db, id));
  } catch (error) {
    if (error instanceof CodecError || error instanceof RangeError) throw new AdaptationFailure(`the task's meta-model cannot be read: ${errorMessage(error)}`);
    throw error;
  }
  if (!model) throw new AdaptationFailure(`the task's meta-model ${work.metaModelId} no longer exists`);
  const { spec } = model;
  const nWay = spec.kind === 'classification' ? spec.outputDim : null;
  if (spec.kind !== work.kind || spec.inputDim !== work.inputDim || nWay !== work.nWay) {
    throw new AdaptationFailure(`the task (${work.kind}, inputDim ${work.inputDim}) does not match its meta-model (${spec.kind}, inputDim ${spec.inputDim})`);
  }
  return model;
}

/** One per process: the engine (and its backend) is process-wide too. */
const batcher = new AdaptBatcher();

/** The inner loop, batched with the other adaptations that reach it in the same turn (see AdaptBatcher). */
async function adaptOrFail(model: MetaModel, work: adaptations.AdaptationWork) {
  let result;
  try {
    result = await batcher.adapt(model, work.support, { steps: work.steps, lr: work.innerLr, guard: work.guard });
  } catch (error) {
    if (error instanceof RangeError) throw new AdaptationFailure(`the support set cannot be adapted to: ${errorMessage(error)}`);
    throw error;
  }
  if (result instanceof NonFiniteError) throw new AdaptationFailure(`${errorMessage(result)} (innerLr ${work.innerLr}, ${work.steps} steps)`);
  return result;
}

/** The codec refuses non-finite values: a last guard that no NaN is ever stored. */
function encodeOrFail(params: Parameters<typeof encodeParams>[0]): Uint8Array {
  try {
    return encodeParams(params);
  } catch (error) {
    if (error instanceof CodecError) throw new AdaptationFailure(`adaptation produced unusable parameters: ${errorMessage(error)}; use a smaller innerLr or fewer steps`);
    throw error;
  }
}

async function fail(deps: AdaptDeps, adaptationId: string, work: adaptations.AdaptationWork | null, error: string, startedAt: Date): Promise<AdaptOutcome> {
  const ended = await adaptations.recordFailure(deps.db, adaptationId, error, startedAt);
  if (!ended) return { outcome: 'skipped' };
  deps.logger.warn({ adaptationId, error }, 'adaptation failed');
  // Without the row's task we cannot address the message; the API then learns it from the row.
  if (work) publish(deps, { ...identity(work), headVersion: null, status: 'failed', steps: work.steps, durationMs: Date.now() - startedAt.getTime(), error });
  return { outcome: 'failed', error };
}

function identity(work: adaptations.AdaptationWork) {
  return { adaptationId: work.id, taskId: work.taskId, tenantId: work.tenantId };
}

/**
 * The row is the record and already says how it ended, so a failed publish is only logged: the
 * waiting API process falls back to reading the row at its wait limit.
 */
function publish(deps: AdaptDeps, message: AdaptedMessage): void {
  publishAdapted(deps.redis, deps.prefix, message).catch((err: unknown) => {
    deps.logger.warn({ err, adaptationId: message.adaptationId }, 'could not publish an adapted message');
  });
}

/** Milliseconds between laps, with sub-millisecond resolution. */
class Stopwatch {
  private last = performance.now();
  lap(): number {
    const now = performance.now();
    const ms = now - this.last;
    this.last = now;
    return Math.round(ms * 1000) / 1000;
  }
}
