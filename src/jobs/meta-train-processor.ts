/**
 * The meta-train processor: runs one meta-training job on the engine's training generator, with
 * Postgres as the record and Redis as transport.
 *
 * A run claims the job (a new fencing token), rebuilds its families from their rows, resumes from the
 * latest checkpoint if there is one, and writes progress (throttled), metrics, checkpoints and finally
 * a meta-model version, each write fenced so a stale run stops at once. The generator yields to the
 * event loop every iteration, so BullMQ keeps renewing the job's lock through a long CPU-bound run.
 *
 * How a run ends:
 * - the generator finishes: `succeeded` with a meta-model;
 * - the engine or the job's inputs fail (a diverging run's NaN, a family that cannot make the
 *   requested episodes): `failed` with the reason, nothing stored, no retry;
 * - its cancel was requested (pub/sub or the row): `cancelled`;
 * - this process shuts down: the state is checkpointed and the job goes back to the queue, still
 *   `running` in Postgres, for another worker to resume;
 * - another run took the job over: it stops without writing more.
 * Anything else (Postgres or Redis unreachable) is thrown, so BullMQ retries it.
 */
import { UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Db } from '../db/client.js';
import * as training from '../db/repositories/training.js';
import {
  CodecError,
  createFamily,
  metaTrain,
  resolveHyper,
  runtimeAborted,
  taskSource,
  TrainingAbortedError,
  type AlgorithmName,
  type Checkpoint,
  type HyperParams,
  type MetaModel,
  type MetricsPoint,
  type ModelConfig,
  type TrainConfig,
  type TrainEvent,
  validationOf,
} from '../meta/index.js';
import { countMetaTrainIterations } from '../metrics/worker.js';
import { errorMessage } from '../util/error-reason.js';
import { calibrateMetaModel } from './calibrate.js';
import { CANCEL, type CancelListener, type TrackedRun } from './cancel.js';
import { publishJobEvent, type JobEventMap, type JobEventType } from './events.js';
import type { JobHandler } from './worker.js';

/** Starts of one job after which it fails instead of running again (a job that keeps killing its worker). */
export const MAX_RUNS_PER_JOB = 25;

export interface MetaTrainDeps {
  db: Db;
  /** Where job events are published (a normal, non-subscribed connection). */
  redis: Redis;
  /** Redis key prefix (config.queuePrefix). */
  prefix: string;
  logger: Logger;
  cancels: CancelListener;
  /** Least ms between two progress writes (config.progressIntervalMs). Default 250. */
  progressIntervalMs?: number;
}

/** How a run ended (the BullMQ job's return value). */
export type RunOutcome =
  | { outcome: 'succeeded'; metaModelId: string; version: number }
  | { outcome: 'failed'; error: string }
  | { outcome: 'cancelled'; iteration: number }
  /** The job had ended (or does not exist): nothing to do. */
  | { outcome: 'skipped' }
  /** Another run took the job over, or it ended meanwhile; this run stopped without writing. */
  | { outcome: 'fenced-out' };

/** The job cannot succeed: it ends `failed` with this message and is not retried. */
class JobFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JobFailure';
  }
}

/** The BullMQ handler for the `meta-train` queue. */
export function createMetaTrainHandler(deps: MetaTrainDeps): JobHandler<'meta-train'> {
  return async (job, _token, signal) => {
    const outcome = await runMetaTrainJob(deps, job.data.jobId, signal, { lastAttempt: job.attemptsMade + 1 >= (job.opts.attempts ?? 1) });
    // Failed in Postgres: fail the BullMQ job too (visible in Redis), without retries.
    if (outcome.outcome === 'failed') throw new UnrecoverableError(outcome.error);
    return outcome;
  };
}

/**
 * Runs (or resumes) job `jobId` until it ends, `signal` aborts (this process is leaving: the
 * error is rethrown after checkpointing) or another run takes over.
 * @param options.lastAttempt - no retry follows: an unexpected error also ends the job `failed`. Default true.
 */
export async function runMetaTrainJob(deps: MetaTrainDeps, jobId: string, signal: AbortSignal, options: { lastAttempt?: boolean } = {}): Promise<RunOutcome> {
  const { db, logger } = deps;
  const started = await training.startAttempt(db, jobId);
  if (!started) {
    logger.info({ jobId }, 'meta-train job already ended or missing: nothing to run');
    return { outcome: 'skipped' };
  }
  const run = new Run(deps, started);
  const tracked = deps.cancels.track(jobId);
  try {
    return await run.execute(signal, tracked);
  } catch (error) {
    if (error instanceof training.FencedOutError) {
      logger.warn({ jobId, attempt: started.fence.attempt }, 'meta-train run fenced out: another run owns the job');
      return { outcome: 'fenced-out' };
    }
    if (error instanceof JobFailure) return run.fail(error.message);
    // Shutting down: whatever stopped the run, the job goes back to the queue unfinished.
    if (signal.aborted) throw error;
    if (options.lastAttempt ?? true) {
      logger.error({ jobId, err: error }, 'meta-train run failed on its last attempt');
      try {
        return await run.fail(`the worker failed: ${errorMessage(error)}`);
      } catch {
        // Postgres may be what failed: the job stays unfinished there and the reconciler requeues it.
      }
    }
    throw error;
  } finally {
    tracked.release();
  }
}

/** One run of a job: its fencing token and what it has reported so far. */
class Run {
  private readonly fence: training.Fence;
  private readonly iterations: number;
  private iteration: number;
  private lastMetrics: MetricsPoint | undefined;
  private lastProgressAt = 0;
  /** The job is a study's trial (set with its configuration). */
  private studyTrial = false;
  /**
   * Its meta-model is calibrated at the end (set with its configuration): an ordinary job's, and a
   * study's finalists' (the winner is one of them); not the trials dropped on the way, which nobody
   * serves (calibration adapts to hundreds of validation tasks: a study has dozens of trials).
   */
  private calibrates = true;
  /** The job's configuration (set when the run starts): what calibration draws validation tasks from. */
  private config: TrainConfig | undefined;

  constructor(
    private readonly deps: MetaTrainDeps,
    private readonly started: training.StartedRun,
  ) {
    this.fence = started.fence;
    this.iterations = started.iterations;
    this.iteration = started.iteration;
  }

  private get log() {
    return this.deps.logger.child({ jobId: this.fence.jobId, attempt: this.fence.attempt });
  }

  async execute(shutdown: AbortSignal, tracked: TrackedRun): Promise<RunOutcome> {
    if (this.started.cancelRequested) return this.cancel();
    if (this.fence.attempt > MAX_RUNS_PER_JOB) {
      throw new JobFailure(`the job was started ${MAX_RUNS_PER_JOB} times without finishing (its workers keep dying); giving up`);
    }
    const config = await this.trainConfig();
    this.config = config;
    const resumeFrom = await this.resumeState();
    this.log.info({ resumeFrom: resumeFrom?.iteration ?? null, iterations: this.iterations }, 'meta-train run started');
    this.publish('status', { status: 'running', iteration: resumeFrom?.iteration ?? this.iteration, iterations: this.iterations });

    // A study's trial keeps its final state: a promotion to the next rung resumes it from there.
    const events = metaTrain(config, { resumeFrom: resumeFrom ?? undefined, signal: AbortSignal.any([shutdown, tracked.signal]), checkpointAtEnd: this.studyTrial });
    try {
      for (;;) {
        let step: IteratorResult<TrainEvent>;
        try {
          step = await events.next();
        } catch (error) {
          if (error instanceof TrainingAbortedError) return await this.aborted(error, shutdown, tracked);
          // This process's runtime broke, not the job: a retry elsewhere resumes it.
          if (runtimeAborted(error)) throw error;
          // The engine refused the configuration or diverged: deterministic, so a retry would too.
          throw new JobFailure(errorMessage(error));
        }
        if (step.done) throw new JobFailure('meta-training ended without a result');
        const outcome = await this.handle(step.value, tracked);
        if (outcome) return outcome;
      }
    } finally {
      await events.return();
    }
  }

  /** Writes one training event; returns the outcome when it ends the run. */
  private async handle(event: TrainEvent, tracked: TrackedRun): Promise<RunOutcome | undefined> {
    const { db } = this.deps;
    switch (event.type) {
      case 'progress': {
        countMetaTrainIterations();
        this.iteration = event.iteration;
        const now = Date.now();
        if (event.iteration < event.iterations && now - this.lastProgressAt < (this.deps.progressIntervalMs ?? 250)) return undefined;
        this.lastProgressAt = now;
        const { cancelRequested } = await training.recordProgress(db, this.fence, event.iteration);
        this.publish('progress', { iteration: event.iteration, iterations: event.iterations });
        // The cancel message may have been lost: the row is the backstop.
        if (cancelRequested) tracked.cancel();
        return undefined;
      }
      case 'metrics': {
        const { type: _type, best, ...point } = event;
        await this.guard(`iteration ${event.iteration}: the evaluation`, () => training.recordMetrics(db, this.fence, point, best));
        this.lastMetrics = point;
        this.publish('metrics', { ...point, bestIteration: best.iteration, bestValidation: validationOf(best) });
        return undefined;
      }
      case 'checkpoint':
        await this.guard(`iteration ${event.checkpoint.iteration}: the training state`, () => training.saveCheckpoint(db, this.fence, event.checkpoint));
        return undefined;
      case 'result':
        return this.succeed(event);
    }
  }

  private async succeed(result: Extract<TrainEvent, { type: 'result' }>): Promise<RunOutcome> {
    if (this.lastMetrics?.iteration !== result.iteration) throw new JobFailure(`meta-training produced no evaluation at its last iteration (${result.iteration})`);
    const { evaluation, last, best, keptBest, engine } = result;
    const model = this.calibrates ? await this.calibrated(result.model) : result.model;
    const stored = await this.guard(`iteration ${result.iteration}: the meta-model`, () =>
      training.finishSucceeded(this.deps.db, this.fence, { model, metrics: evaluation, last, best, ...(keptBest ? { bestIteration: best.iteration } : {}), checkpoint: result.checkpoint, engine }),
    );
    this.log.info({ metaModelId: stored.id, version: stored.version, valLoss: result.valLoss, bestIteration: best.iteration, keptBest, engine }, 'meta-train run succeeded');
    this.publish('status', { status: 'succeeded', iteration: result.iteration, iterations: this.iterations, metaModelId: stored.id });
    return { outcome: 'succeeded', metaModelId: stored.id, version: stored.version };
  }

  /** The meta-model with its calibration on the job's families' validation tasks (calibrate.ts), when one can be fitted. */
  private async calibrated(model: MetaModel): Promise<MetaModel> {
    const config = this.config!;
    const hyper = resolveHyper(config.hyper, config.algorithm);
    const calibration = await calibrateMetaModel(model, taskSource(config.families), hyper, this.log);
    return calibration ? { ...model, calibration } : model;
  }

  /** The generator stopped on the signal: a cancel ends the job, a shutdown hands it back. */
  private async aborted(error: TrainingAbortedError, shutdown: AbortSignal, tracked: TrackedRun): Promise<RunOutcome> {
    this.iteration = error.iteration;
    if (tracked.signal.aborted && tracked.signal.reason === CANCEL) return this.cancel();
    // Shutting down: keep what was computed (when the engine hands over its state), then let the
    // worker put the job back in the queue. Status stays `running`: the next run continues it.
    const state = (error as TrainingAbortedError & { checkpoint?: Checkpoint }).checkpoint;
    if (state) await this.guard(`iteration ${state.iteration}: the training state`, () => training.saveCheckpoint(this.deps.db, this.fence, state));
    this.log.info({ iteration: error.iteration, checkpointed: state?.iteration ?? null, reason: String(shutdown.reason) }, 'meta-train run handed back');
    throw error;
  }

  private async cancel(): Promise<RunOutcome> {
    await training.finishCancelled(this.deps.db, this.fence, this.iteration);
    this.log.info({ iteration: this.iteration }, 'meta-train run cancelled');
    this.publish('status', { status: 'cancelled', iteration: this.iteration, iterations: this.iterations });
    return { outcome: 'cancelled', iteration: this.iteration };
  }

  /** Ends the job `failed` (fenced) and says so. */
  async fail(message: string): Promise<RunOutcome> {
    await training.finishFailed(this.deps.db, this.fence, message, this.iteration);
    this.log.warn({ iteration: this.iteration, error: message }, 'meta-train run failed');
    this.publish('status', { status: 'failed', iteration: this.iteration, iterations: this.iterations, error: message });
    return { outcome: 'failed', error: message };
  }

  /** The engine's configuration from the job row and its families (equal weights across families). */
  private async trainConfig(): Promise<TrainConfig> {
    const inputs = await training.loadRunInputs(this.deps.db, this.fence.jobId);
    if (!inputs) throw new JobFailure('the job row disappeared');
    this.studyTrial = inputs.studyId !== null;
    this.calibrates = !this.studyTrial || inputs.topRungTrial;
    const missing = inputs.familyIds.filter((id) => !inputs.families.some((family) => family.id === id));
    if (missing.length > 0) throw new JobFailure(`task famil${missing.length > 1 ? 'ies' : 'y'} ${missing.join(', ')} no longer exist${missing.length > 1 ? '' : 's'}`);
    try {
      return {
        algorithm: inputs.algorithm as AlgorithmName,
        model: inputs.model as ModelConfig,
        hyper: inputs.hyper as Partial<HyperParams>,
        families: inputs.families.map(({ spec }) => ({ family: createFamily(spec), weight: 1 })),
      };
    } catch (error) {
      throw new JobFailure(`task family: ${errorMessage(error)}`);
    }
  }

  /** The latest checkpoint; a corrupt one is skipped (the run restarts and reaches the same result). */
  private async resumeState(): Promise<Checkpoint | null> {
    try {
      return await training.loadLatestCheckpoint(this.deps.db, this.fence.jobId);
    } catch (error) {
      if (!(error instanceof CodecError) && !(error instanceof RangeError)) throw error;
      this.log.warn({ err: error }, 'checkpoint unreadable: starting from the beginning');
      return null;
    }
  }

  /**
   * A write that refuses non-finite values (the run diverged without the engine's loss check seeing
   * it, e.g. Adam's second moment overflowing float32) fails the job rather than being retried.
   */
  private async guard<T>(what: string, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (error) {
      if (error instanceof training.NonFiniteValueError || error instanceof CodecError) {
        throw new JobFailure(`${what} is not finite (${errorMessage(error)}); lower innerLr or metaLr, or set clipNorm`);
      }
      throw error;
    }
  }

  /**
   * Events are a live view of what Postgres already holds, so training never waits for them (Redis
   * being away must not stall it) and a failed publish is only logged. One connection keeps their order.
   */
  private publish<T extends JobEventType>(type: T, data: JobEventMap[T]): void {
    publishJobEvent(this.deps.redis, this.deps.prefix, this.fence.jobId, type, data).catch((err: unknown) => {
      this.log.warn({ err, type }, 'could not publish a job event');
    });
  }
}
