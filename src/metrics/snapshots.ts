/**
 * How worker metrics reach the API's /metrics: each worker process publishes a snapshot of its
 * registry (prom-client's JSON form) to Redis every few seconds, and the API reads the live ones at
 * scrape time. Every series from a worker carries a `worker` label (host:pid), so counters and
 * histograms stay per process: a worker that dies simply stops reporting (its snapshot expires)
 * instead of making a summed counter go backwards.
 */
import type { Redis } from 'ioredis';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';

export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/** A snapshot outlives its worker's last publish by this many publish intervals. */
export const SNAPSHOT_TTL_INTERVALS = 3;

const indexKey = (prefix: string) => `${prefix}:metrics:workers`;
const snapshotKey = (prefix: string, worker: string) => `${prefix}:metrics:worker:${worker}`;

/** Stores one worker's snapshot, live for `ttlMs`. */
export async function publishSnapshot(redis: Redis, prefix: string, worker: string, metrics: MetricsJson, ttlMs: number): Promise<void> {
  const now = Date.now();
  await redis
    .multi()
    .set(snapshotKey(prefix, worker), JSON.stringify(metrics), 'PX', ttlMs)
    .zadd(indexKey(prefix), now + ttlMs, worker)
    .exec();
}

/** Adds `worker="<id>"` to every series of a snapshot. */
export function labelWorker(metrics: MetricsJson, worker: string): MetricsJson {
  return metrics.map((metric) => ({
    ...metric,
    values: metric.values.map((value) => ({ ...value, labels: { ...value.labels, worker } })),
  }));
}

/** The snapshots of every worker that published within its TTL, each labelled with its worker. */
export async function readSnapshots(redis: Redis, prefix: string): Promise<MetricsJson[]> {
  const now = Date.now();
  // The index holds each worker's expiry as its score: expired ones are dropped here, by the reader.
  await redis.zremrangebyscore(indexKey(prefix), '-inf', now);
  const workers = await redis.zrange(indexKey(prefix), 0, -1);
  if (workers.length === 0) return [];
  const raw = await redis.mget(...workers.map((worker) => snapshotKey(prefix, worker)));
  const snapshots: MetricsJson[] = [];
  raw.forEach((json, i) => {
    if (json === null) return;
    try {
      snapshots.push(labelWorker(JSON.parse(json) as MetricsJson, workers[i]));
    } catch {
      // A snapshot that does not parse is skipped: one bad worker must not break the whole scrape.
    }
  });
  return snapshots;
}
