/**
 * Process-wide metrics: what any part of this process counts, whichever app or worker it serves.
 * Metric families are named `fastadapt_*`; Node's standard process metrics (`process_*`, `nodejs_*`)
 * come along because event-loop lag is exactly what a CPU-bound training loop would show first.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { tf } from '../meta/index.js';

/** Everything counted process-wide (not per app instance); /metrics merges it into each scrape. */
export const processRegistry = new Registry();

/**
 * Lookups of an adapted head in the API's predict cache: `result` is `hit` (served from memory) or
 * `miss` (loaded from Postgres). The hit ratio says whether the cache is sized for the working set.
 */
export const predictCacheLookups = new Counter({
  name: 'fastadapt_predict_cache_lookups_total',
  help: 'Predict cache lookups of an adapted head, by result (hit: served from memory, miss: loaded from Postgres)',
  labelNames: ['result'] as const,
  registers: [processRegistry],
});
// Both series exist from the start, so a scrape before the first prediction shows 0 rather than nothing.
predictCacheLookups.inc({ result: 'hit' }, 0);
predictCacheLookups.inc({ result: 'miss' }, 0);

/** Counts one predict cache lookup (the cache calls this on every get). */
export function countPredictCacheLookup(hit: boolean): void {
  predictCacheLookups.inc({ result: hit ? 'hit' : 'miss' });
}

/**
 * Live tfjs tensors and their bytes in this process, read at each scrape: flat between requests when
 * nothing leaks (the soak benchmark watches them; a slope is a leak in some engine path).
 */
new Gauge({
  name: 'fastadapt_tfjs_tensors',
  help: 'TensorFlow.js tensors alive in this process (tf.memory().numTensors)',
  registers: [processRegistry],
  collect() {
    this.set(tf.memory().numTensors);
  },
});
new Gauge({
  name: 'fastadapt_tfjs_bytes',
  help: 'Bytes held by TensorFlow.js tensors alive in this process (tf.memory().numBytes)',
  registers: [processRegistry],
  collect() {
    this.set(tf.memory().numBytes);
  },
});

let defaultsCollected = false;

/** Starts Node's default process metrics once per process (idempotent: apps in tests come and go). */
export function collectProcessMetrics(): void {
  if (defaultsCollected) return;
  defaultsCollected = true;
  collectDefaultMetrics({ register: processRegistry });
}
