/**
 * What /metrics answers: this app's HTTP timings and tfjs backend, the queues' job counts (read from
 * Redis at scrape time: they are cluster-wide, the same from every API process), the process-wide
 * registry, and the snapshots every live worker published (see snapshots.ts).
 */
import { AggregatorRegistry, Gauge, Histogram, Registry } from 'prom-client';
import type { Redis } from 'ioredis';
import { withTimeout } from '../util/timeout.js';
import { processRegistry } from './registry.js';
import { readSnapshots, type MetricsJson } from './snapshots.js';
import { BACKEND_INFO } from './worker.js';

/** BullMQ job states counted per queue. */
export const QUEUE_STATES = ['waiting', 'prioritized', 'delayed', 'waiting-children', 'active', 'completed', 'failed'] as const;
/** States of jobs no worker has picked up yet: their sum is the queue's depth. */
const WAITING_STATES = new Set<string>(['waiting', 'prioritized', 'delayed', 'waiting-children']);

/** The route label of requests that matched no route, so probes of random paths add no series. */
export const UNMATCHED_ROUTE = '(unmatched)';

/**
 * The queues whose job counts are exported, by name (BullMQ Queues fit it). Structural, so metrics,
 * which jobs/ builds on, does not import from jobs/.
 */
export type CountedQueues = Readonly<Record<string, { getJobCounts(...states: string[]): Promise<Record<string, number>> }>>;

export interface ApiMetricsOptions {
  queues: CountedQueues;
  /** Where worker snapshots are read (a connection that fails fast rather than queueing commands). */
  redis: Redis;
  /** Redis key prefix (config.queuePrefix): where worker snapshots are read. */
  prefix: string;
  /** The active tfjs backend's name, or null before one is initialised. */
  backend: () => string | null;
  /** How long a scrape waits for Redis before reporting it down. Default 1000. */
  timeoutMs?: number;
}

/** One app's metrics; the HTTP plugin feeds it and serves {@link ApiMetrics.scrape}. */
export class ApiMetrics {
  readonly registry = new Registry();
  private readonly requestDuration = new Histogram({
    name: 'fastadapt_http_request_duration_seconds',
    help: 'HTTP requests by method, route (the path template) and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly queueJobs = new Gauge({
    name: 'fastadapt_queue_jobs',
    help: 'Jobs in each BullMQ queue by state (completed and failed only as far as retention keeps them)',
    labelNames: ['queue', 'state'] as const,
    registers: [this.registry],
  });
  private readonly queueDepth = new Gauge({
    name: 'fastadapt_queue_depth',
    help: 'Jobs waiting for a worker in each queue (waiting, prioritized, delayed, waiting-children)',
    labelNames: ['queue'] as const,
    registers: [this.registry],
  });
  private readonly workersReporting = new Gauge({
    name: 'fastadapt_workers_reporting',
    help: 'Worker processes whose metrics snapshot is live in Redis',
    registers: [this.registry],
  });
  private readonly sourceUp = new Gauge({
    name: 'fastadapt_metrics_source_up',
    help: 'Whether this scrape could read a source (1) or left its series out (0)',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });
  private readonly backendInfo = new Gauge({ ...BACKEND_INFO, labelNames: ['backend', 'role'] as const, registers: [this.registry] });

  constructor(private readonly options: ApiMetricsOptions) {}

  /** Records one answered request. */
  observeRequest(method: string, route: string | undefined, statusCode: number, seconds: number): void {
    this.requestDuration.observe({ method, route: route ?? UNMATCHED_ROUTE, status_code: String(statusCode) }, seconds);
  }

  /** The exposition text. Redis being away leaves its series out (and says so); it never fails the scrape. */
  async scrape(): Promise<{ contentType: string; text: string }> {
    const workerSnapshots = await this.readRedis();
    this.backendInfo.reset();
    const backend = this.options.backend();
    if (backend !== null) this.backendInfo.set({ backend, role: 'api' }, 1);
    // Every series is unique across the inputs (worker series carry a `worker` label), so merging
    // adds nothing up; 'sum' over a single value keeps the ones prom-client would otherwise omit
    // (process_start_time_seconds) when aggregating.
    const local = [...(await this.registry.getMetricsAsJSON()), ...(await processRegistry.getMetricsAsJSON())] as MetricsJson;
    const merged = AggregatorRegistry.aggregate([local.map((metric) => ({ ...metric, aggregator: 'sum' as const })), ...workerSnapshots]);
    return { contentType: this.registry.contentType, text: await merged.metrics() };
  }

  private async readRedis(): Promise<MetricsJson[]> {
    const { queues, redis, prefix, timeoutMs = 1_000 } = this.options;
    this.queueJobs.reset();
    this.queueDepth.reset();
    this.workersReporting.reset();
    try {
      const [counts, snapshots] = await withTimeout(
        Promise.all([
          Promise.all(Object.values(queues).map((queue) => queue.getJobCounts(...QUEUE_STATES))),
          readSnapshots(redis, prefix),
        ]),
        timeoutMs,
      );
      Object.keys(queues).forEach((queue, i) => {
        let depth = 0;
        for (const state of QUEUE_STATES) {
          const count = counts[i][state] ?? 0;
          this.queueJobs.set({ queue, state }, count);
          if (WAITING_STATES.has(state)) depth += count;
        }
        this.queueDepth.set({ queue }, depth);
      });
      this.workersReporting.set(snapshots.length);
      this.sourceUp.set({ source: 'redis' }, 1);
      return snapshots;
    } catch {
      this.sourceUp.set({ source: 'redis' }, 0);
      return [];
    }
  }
}
