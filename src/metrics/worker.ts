/**
 * Metrics of the worker side: meta-training throughput and adaptation latency, kept in this process
 * and published to Redis (see snapshots.ts) so the API's /metrics shows every worker's.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { publishSnapshot, SNAPSHOT_TTL_INTERVALS } from './snapshots.js';

/** This process's worker metrics; published, never served directly. */
export const workerRegistry = new Registry();

const metaTrainIterations = new Counter({
  name: 'fastadapt_meta_train_iterations_total',
  help: 'Meta-training outer-loop iterations run by this worker',
  registers: [workerRegistry],
});

const metaTrainIterationRate = new Gauge({
  name: 'fastadapt_meta_train_iterations_per_second',
  help: 'Meta-training outer-loop iterations per second on this worker over its last publish interval',
  registers: [workerRegistry],
});

/**
 * Adaptation from the moment the API enqueued it to the moment a worker finished it (queue wait,
 * inner loop, head write): what a client waiting on POST /tasks/:id/adapt spends outside HTTP.
 * Buckets centre on the 15 ms p50 / 40 ms p99 targets.
 */
const adaptationDuration = new Histogram({
  name: 'fastadapt_adaptation_duration_seconds',
  help: 'Adaptation jobs from enqueue to finish, by result (completed | failed)',
  labelNames: ['result'] as const,
  buckets: [0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.06, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [workerRegistry],
});

/** `fastadapt_tfjs_backend_info{backend, role}`: shared by the API's registry and this one. */
export const BACKEND_INFO = { name: 'fastadapt_tfjs_backend_info', help: 'The TensorFlow.js backend this process runs on (value 1)' } as const;

const backendInfo = new Gauge({ ...BACKEND_INFO, labelNames: ['backend', 'role'] as const, registers: [workerRegistry] });

/** Counts outer-loop iterations (the meta-train processor calls this once per iteration). */
export function countMetaTrainIterations(iterations = 1): void {
  if (iterations > 0) metaTrainIterations.inc(iterations);
}

function observeAdaptation(job: Job, result: 'completed' | 'failed'): void {
  const seconds = ((job.finishedOn ?? Date.now()) - job.timestamp) / 1000;
  if (Number.isFinite(seconds) && seconds >= 0) adaptationDuration.observe({ result }, seconds);
}

/** Times every job the pool's `adapt` worker finishes, from BullMQ's own timestamps. */
export function instrumentWorkers(workers: readonly Worker[]): void {
  for (const worker of workers) {
    if (worker.name !== 'adapt') continue;
    worker.on('completed', (job) => observeAdaptation(job, 'completed'));
    worker.on('failed', (job) => {
      if (job) observeAdaptation(job, 'failed');
    });
  }
}

export interface WorkerMetricsPublisherOptions {
  redis: Redis;
  /** Redis key prefix (config.queuePrefix). */
  prefix: string;
  /** How often to publish (config.workerMetricsIntervalMs). Default 5000. */
  intervalMs?: number;
  /** The active tfjs backend's name, or null before one is initialised. */
  backend: () => string | null;
  logger: Logger;
  /** The `worker` label of this process's series. Default `<hostname>:<pid>`. */
  workerId?: string;
}

/** Publishes this process's worker metrics to Redis on an interval, and once more on close. */
export class WorkerMetricsPublisher {
  readonly workerId: string;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private last: { total: number; at: number } | undefined;
  private failing = false;

  constructor(private readonly options: WorkerMetricsPublisherOptions) {
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}`;
    this.intervalMs = options.intervalMs ?? 5_000;
  }

  start(): this {
    void this.publish();
    this.timer = setInterval(() => void this.publish(), this.intervalMs);
    // Metrics never keep a process alive that has nothing else to do.
    this.timer.unref();
    return this;
  }

  /** Publishes a snapshot now; a failure (Redis away) is logged once per outage, never thrown. */
  async publish(): Promise<void> {
    const { redis, prefix, backend, logger } = this.options;
    try {
      await this.updateRate();
      backendInfo.reset();
      const name = backend();
      if (name !== null) backendInfo.set({ backend: name, role: 'worker' }, 1);
      const ttlMs = Math.max(this.intervalMs * SNAPSHOT_TTL_INTERVALS, 15_000);
      await publishSnapshot(redis, prefix, this.workerId, await workerRegistry.getMetricsAsJSON(), ttlMs);
      if (this.failing) logger.info('worker metrics published again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) logger.warn({ err }, 'could not publish worker metrics');
      this.failing = true;
    }
  }

  private async updateRate(): Promise<void> {
    const total = (await metaTrainIterations.get()).values[0]?.value ?? 0;
    const at = performance.now();
    if (this.last && at > this.last.at) metaTrainIterationRate.set(((total - this.last.total) * 1000) / (at - this.last.at));
    this.last = { total, at };
  }

  /** Stops publishing after one last snapshot (so the final counts are scraped before it expires). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.publish();
  }
}
