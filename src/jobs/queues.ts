/**
 * The BullMQ queues and what their jobs carry. Job data is ids only: the rows they name in Postgres
 * hold everything else (and tensors never travel through Redis).
 */
import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import { Type, type Static, type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import type { Logger } from 'pino';

/** Every queue; a worker process must have a handler for each (see worker.ts). */
export const QUEUE_NAMES = ['meta-train', 'adapt', 'evaluate'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

const Id = Type.String({ minLength: 1, maxLength: 128 });

/** The data of each queue's jobs, as schemas so a wrong payload is refused before it is queued. */
export const JobDataSchemas = {
  /** `jobId`: the meta-training job row to run (or resume from its last checkpoint). */
  'meta-train': Type.Object({ jobId: Id }, { additionalProperties: false }),
  /** `adaptationId`: the adaptation row (support set, steps, innerLr) of task `taskId`. */
  adapt: Type.Object({ taskId: Id, adaptationId: Id }, { additionalProperties: false }),
  /** `evaluationId`: the evaluation row (meta-model, settings) to run. */
  evaluate: Type.Object({ evaluationId: Id }, { additionalProperties: false }),
} satisfies Record<QueueName, TSchema>;

export type JobData<Q extends QueueName> = Static<(typeof JobDataSchemas)[Q]>;

const checkers = {
  'meta-train': Compile(JobDataSchemas['meta-train']),
  adapt: Compile(JobDataSchemas.adapt),
  evaluate: Compile(JobDataSchemas.evaluate),
};

const HOUR = 3600;

/**
 * Per-queue defaults. BullMQ keeps every finished job forever unless told otherwise; the outcome is
 * in Postgres, so Redis keeps only a recent window for debugging (the last 100 completed meta-training
 * jobs and evaluations, which are few and large; the last 1,000 adaptations, which are many and small). Adaptation is short and a client
 * may be waiting on it, so it retries quickly: only an unexpected error is retried (a support set
 * that cannot adapt fails at once), and the retries span about 4 s (0.25 + 0.5 + 1 + 2) so that a
 * Postgres restart does not end an adaptation as failed with 'the database system is starting up'
 * (with two attempts 0.5 s apart, it did in the fault tests).
 */
export const DEFAULT_JOB_OPTIONS: Record<QueueName, JobsOptions> = {
  'meta-train': {
    attempts: 3,
    backoff: { type: 'exponential', delay: 5_000 },
    removeOnComplete: { age: 24 * HOUR, count: 100 },
    removeOnFail: { age: 7 * 24 * HOUR, count: 5_000 },
  },
  adapt: {
    attempts: 5,
    backoff: { type: 'exponential', delay: 250 },
    removeOnComplete: { age: HOUR, count: 1_000 },
    removeOnFail: { age: 24 * HOUR, count: 1_000 },
  },
  // An evaluation is recomputed from its row's settings, so a retry after a crash is safe.
  evaluate: {
    attempts: 3,
    backoff: { type: 'exponential', delay: 5_000 },
    removeOnComplete: { age: 24 * HOUR, count: 100 },
    removeOnFail: { age: 7 * 24 * HOUR, count: 1_000 },
  },
};

/** Approximate cap of each queue's events stream (BullMQ's default keeps 10 000 entries). */
export const EVENTS_MAX_LEN = 1_000;

export type Queues = { readonly [Q in QueueName]: Queue<JobData<Q>, unknown, Q> };

export interface QueueSetOptions {
  connection: ConnectionOptions;
  /** Redis key prefix (config.queuePrefix). */
  prefix: string;
  /** Events stream cap. Default {@link EVENTS_MAX_LEN}. */
  eventsMaxLen?: number;
  /** Where connection errors go (BullMQ prints them to the console when nobody listens). */
  logger: Logger;
}

/** Opens one Queue per name on a shared connection; the caller closes them with {@link closeQueues}. */
export function createQueues({ connection, prefix, eventsMaxLen = EVENTS_MAX_LEN, logger }: QueueSetOptions): Queues {
  const open = <Q extends QueueName>(name: Q) => {
    const queue = new Queue<JobData<Q>, unknown, Q>(name, {
      connection,
      prefix,
      defaultJobOptions: DEFAULT_JOB_OPTIONS[name],
      streams: { events: { maxLen: eventsMaxLen } },
    });
    queue.on('error', (err) => logger.warn({ err, queue: name }, 'queue error'));
    return queue;
  };
  return { 'meta-train': open('meta-train'), adapt: open('adapt'), evaluate: open('evaluate') };
}

/** A job payload that is not the queue's id-only shape (e.g. carries arrays of numbers). */
export class JobDataError extends Error {
  constructor(queue: QueueName, detail: string) {
    super(`Refusing to enqueue on "${queue}": ${detail}`);
    this.name = 'JobDataError';
  }
}

/**
 * Adds a job after checking its data against the queue's schema. `id` becomes the BullMQ job id, so
 * enqueueing the same row twice (e.g. by the reconciler) does not run it twice while it is queued.
 */
export async function enqueue<Q extends QueueName>(queues: Queues, queue: Q, data: JobData<Q>, id: string, options: JobsOptions = {}) {
  const checker = checkers[queue];
  if (!checker.Check(data)) {
    const first = checker.Errors(data)[0];
    throw new JobDataError(queue, `${first?.instancePath || '(root)'} ${first?.message ?? 'is invalid'}`);
  }
  // BullMQ's generic add() signature cannot relate Q to the queue's own name type here.
  const target = queues[queue] as unknown as Queue;
  return target.add(queue, data, { ...options, jobId: id });
}

/** Closes every queue (their shared connection stays open; its owner quits it). */
export async function closeQueues(queues: Queues): Promise<void> {
  await Promise.all(QUEUE_NAMES.map((name) => queues[name].close()));
}

/**
 * Enqueues the meta-training job row `jobId` (BullMQ job id = row id, so the API and the reconciler
 * can both call this without running it twice while it waits).
 */
export function enqueueMetaTrain(queues: Queues, jobId: string) {
  return enqueue(queues, 'meta-train', { jobId }, jobId);
}

/** readapt auto's coalescing delay when none is configured (config.readaptDelayMs). */
export const DEFAULT_READAPT_DELAY_MS = 40;

/**
 * Enqueues an adaptation of a task's stored examples that readapt auto started, `delayMs` from now
 * so the appends of a burst that arrive meanwhile are in the set it reads. Adaptation priority, as
 * for any adaptation.
 */
export function enqueueReadapt(queues: Queues, taskId: string, adaptationId: string, delayMs: number) {
  return enqueue(queues, 'adapt', { taskId, adaptationId }, adaptationId, { priority: 1, delay: delayMs });
}

/** Removes the adapt queue's jobs of these adaptations (ids = row ids), a batch at a time; an active one stays. */
export async function removeAdaptationJobs(queues: Queues, adaptationIds: readonly string[]): Promise<void> {
  const BATCH = 100;
  for (let i = 0; i < adaptationIds.length; i += BATCH) {
    await Promise.all(adaptationIds.slice(i, i + BATCH).map((id) => queues.adapt.remove(id)));
  }
}

/** Enqueues the evaluation row `evaluationId` (BullMQ job id = row id, as for meta-training). */
export function enqueueEvaluation(queues: Queues, evaluationId: string) {
  return enqueue(queues, 'evaluate', { evaluationId }, evaluationId);
}
