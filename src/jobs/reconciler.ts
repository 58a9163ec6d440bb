/**
 * Postgres is the truth, Redis only transport: the reconciler re-enqueues every meta-training job,
 * adaptation and evaluation Postgres says is queued or running but whose BullMQ job is gone (Redis
 * was wiped, or the enqueue after the row was written never happened) or already finished in BullMQ
 * while the row is not. Without it an adaptation queued when Redis restarted would stay `queued` for ever.
 *
 * It runs at worker start and every interval, and looks only at jobs nothing wrote during the last
 * interval: a run in progress writes every few hundred ms, and a job the API has just written is
 * being enqueued right now. So a lost job is back in the queue within two intervals. An adaptation
 * a worker picked up lately is left to it (adaptRunMs): Redis wiped mid-run loses the job, not the
 * run. Re-adding uses
 * the row id as BullMQ job id, so it is idempotent; a short Redis lock still keeps several workers
 * from doing the same pass at once.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Db } from '../db/client.js';
import { listUnfinishedAdaptations } from '../db/repositories/adaptations.js';
import { listUnfinishedEvaluationIds } from '../db/repositories/evaluations.js';
import { listUnfinishedJobIds } from '../db/repositories/training.js';
import { PeriodicPass } from './periodic.js';
import { enqueue, enqueueEvaluation, type QueueName, type Queues } from './queues.js';

/** Jobs read from Postgres per page. */
const PAGE = 200;

/** BullMQ states of a job that will still run (or is running) without help. */
const ALIVE = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

export interface ReconcilerOptions {
  db: Db;
  queues: Queues;
  /** A normal (non-subscribed) connection for the lock. */
  redis: Redis;
  /** Redis key prefix (config.queuePrefix). */
  prefix: string;
  logger: Logger;
  /** Pause between passes (config.reconcileIntervalMs). Default 60000. */
  intervalMs?: number;
  /**
   * How long after a worker picked an adaptation up it is taken to be still running there even when
   * Redis lost its BullMQ job (wiped mid-run): re-adding it then would run it twice at once. Past
   * this (or the interval, if longer) a lost one whose worker died too is re-added. Default 60000.
   */
  adaptRunMs?: number;
}

/** What one pass did. */
export interface ReconcileReport {
  /** False when another worker held the lock and this pass did nothing. */
  ran: boolean;
  checked: number;
  /** Meta-training job ids re-enqueued, with the BullMQ state each was found in (`missing` when there was none). */
  requeued: { id: string; found: string }[];
  /** Adaptation ids re-enqueued, the same way. */
  requeuedAdaptations: { id: string; found: string }[];
  /** Evaluation ids re-enqueued, the same way. */
  requeuedEvaluations: { id: string; found: string }[];
}

// Deletes the lock only if this pass still owns it (it may have expired and been taken meanwhile).
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

export class Reconciler {
  private readonly periodic: PeriodicPass;

  constructor(private readonly options: ReconcilerOptions) {
    this.periodic = new PeriodicPass(() => this.reconcile(), options.intervalMs ?? 60_000, (err) => options.logger.warn({ err }, 'reconciler pass failed'));
  }

  private get lockKey(): string {
    return `${this.options.prefix}:reconciler:lock`;
  }

  /** One pass; safe to run from several processes at once. */
  async reconcile(): Promise<ReconcileReport> {
    const { db, queues, redis, logger, intervalMs = 60_000, adaptRunMs = 60_000 } = this.options;
    const owner = randomUUID();
    // Held at most one interval (and at least 10 s), so a worker that dies mid-pass blocks no one for long.
    const acquired = await redis.set(this.lockKey, owner, 'PX', Math.max(intervalMs, 10_000), 'NX');
    if (acquired !== 'OK') return { ran: false, checked: 0, requeued: [], requeuedAdaptations: [], requeuedEvaluations: [] };
    const report: ReconcileReport = { ran: true, checked: 0, requeued: [], requeuedAdaptations: [], requeuedEvaluations: [] };
    // A row written during the last interval is either just enqueued or being run: leave it be.
    const notUpdatedSince = new Date(Date.now() - intervalMs);
    const notPickedUpSince = new Date(Date.now() - Math.max(intervalMs, adaptRunMs));
    try {
      const byId = (ids: string[]) => ids.map((id) => ({ id }));
      await this.sweep(report, report.requeued, 'meta-train', async (after) => byId(await listUnfinishedJobIds(db, notUpdatedSince, PAGE, after)), ({ id }) =>
        enqueue(queues, 'meta-train', { jobId: id }, id));
      // The API's priority: an adaptation is latency-bound, ahead of meta-training.
      // Missing from BullMQ but picked up lately: a worker may run it still (Redis wiped mid-run loses
      // the job, not the run). Ended there (failed, completed), no worker runs it: re-added at once.
      await this.sweep(report, report.requeuedAdaptations, 'adapt', (after) => listUnfinishedAdaptations(db, notUpdatedSince, PAGE, after), ({ id, taskId }) =>
        enqueue(queues, 'adapt', { taskId, adaptationId: id }, id, { priority: 1 }), ({ startedAt }) => startedAt !== null && startedAt > notPickedUpSince);
      await this.sweep(report, report.requeuedEvaluations, 'evaluate', async (after) => byId(await listUnfinishedEvaluationIds(db, notUpdatedSince, PAGE, after)), ({ id }) =>
        enqueueEvaluation(queues, id));
    } finally {
      await redis.eval(RELEASE, 1, this.lockKey, owner);
    }
    const requeued = { requeued: report.requeued, requeuedAdaptations: report.requeuedAdaptations, requeuedEvaluations: report.requeuedEvaluations, checked: report.checked };
    if (report.requeued.length + report.requeuedAdaptations.length + report.requeuedEvaluations.length > 0) logger.warn(requeued, 'reconciler re-enqueued jobs Redis had lost');
    else logger.debug({ checked: report.checked }, 'reconciler: queue matches Postgres');
    return report;
  }

  /**
   * Pages through the unfinished rows of one table (`page`, by id after the last one seen) and
   * re-adds each row's BullMQ job that Redis lost (`add`), noting it in `requeued`.
   */
  private async sweep<T extends { id: string }>(
    report: ReconcileReport,
    requeued: ReconcileReport['requeued'],
    queue: QueueName,
    page: (after: string | undefined) => Promise<T[]>,
    add: (row: T) => Promise<unknown>,
    mayRunStill: (row: T) => boolean = () => false,
  ): Promise<void> {
    for (let after: string | undefined; ; ) {
      const rows = await page(after);
      if (rows.length === 0) return;
      after = rows[rows.length - 1]!.id;
      for (const row of rows) {
        const found = await this.requeueIfLost(queue, row.id, () => add(row), mayRunStill(row));
        if (found) requeued.push({ id: row.id, found });
      }
      report.checked += rows.length;
    }
  }

  /**
   * Re-adds BullMQ job `id` of `queue` unless it is alive there; returns the state it was found in
   * when it re-added it, else null.
   */
  private async requeueIfLost(queue: QueueName, id: string, add: () => Promise<unknown>, mayRunStill: boolean): Promise<string | null> {
    const job = await this.options.queues[queue].getJob(id);
    const state = job ? await job.getState() : 'missing';
    if (ALIVE.has(state) || (state === 'missing' && mayRunStill)) return null;
    // Finished in BullMQ but not in Postgres (e.g. failed for good while Postgres was away):
    // remove the old entry, or adding the same id would be a no-op.
    if (job && (state === 'completed' || state === 'failed')) await job.remove();
    await add();
    return state;
  }

  /** Runs a pass now and then every interval until stop(); a failed pass is logged and retried next time. */
  start(): this {
    this.periodic.start();
    return this;
  }

  /** Stops the timer and waits for a pass in progress. */
  async stop(): Promise<void> {
    await this.periodic.stop();
  }
}
