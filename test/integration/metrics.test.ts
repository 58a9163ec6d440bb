/**
 * GET /metrics after a short real workflow (Postgres, Redis, a worker pool in this process): every
 * family is there with values that follow from what the test did: a queued job counted in the queue's
 * depth, exactly the job's iterations counted by the worker, HTTP timings under route templates,
 * adaptation latency, predict cache hits and misses, the tfjs backend of the API and of the worker.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CancelListener } from '../../src/jobs/cancel.js';
import { createHandlers } from '../../src/jobs/handlers/index.js';
import { startWorkers } from '../../src/jobs/worker.js';
import { activeBackend, initBackend } from '../../src/meta/backend.js';
import { instrumentWorkers, WorkerMetricsPublisher } from '../../src/metrics/worker.js';
import { newTenant, QUICK, SINE, startApi, waitForJob, type TestApi } from './support/api-app.js';

const METRICS_KEY = `metrics-${randomUUID()}`;
const scrapeHeaders = { authorization: `Bearer ${METRICS_KEY}` };

interface Sample { name: string; labels: Record<string, string>; value: number }

/** Parses the exposition text into samples (enough of the format for what prom-client writes). */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[key] = value;
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

function find(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

function one(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = find(samples, name, labels);
  if (found.length !== 1) throw new Error(`expected one ${name}${JSON.stringify(labels)}, found ${found.length}`);
  return found[0].value;
}

let api: TestApi;
let headers: Record<string, string>;

async function scrape(): Promise<Sample[]> {
  const response = await api.app.inject({ method: 'GET', url: '/metrics', headers: scrapeHeaders });
  expect(response.statusCode).toBe(200);
  expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parse(response.body);
}

/** The worker role as main.ts starts it: handlers, pool, instrumentation, metrics publisher. */
async function startInstrumentedWorker() {
  const logger = pino({ level: 'silent' });
  const redis = new Redis(api.redisUrl, { maxRetriesPerRequest: null });
  const cancels = await CancelListener.start(redis, api.prefix, logger);
  const handlers = createHandlers({ db: api.db, logger, redis, queuePrefix: api.prefix, cancels, progressIntervalMs: 0 });
  const pool = startWorkers(handlers, { connection: redis, prefix: api.prefix, logger });
  instrumentWorkers(pool.workers);
  const publisher = new WorkerMetricsPublisher({ redis, prefix: api.prefix, intervalMs: 60_000, backend: activeBackend, logger, workerId: 'test-worker' }).start();
  return {
    publisher,
    async close() {
      await pool.close();
      await publisher.close();
      await cancels.close();
      await redis.quit();
    },
  };
}

let worker: Awaited<ReturnType<typeof startInstrumentedWorker>> | undefined;

beforeAll(async () => {
  await initBackend('cpu');
  api = await startApi('metrics', { METRICS_API_KEY: METRICS_KEY, RATE_LIMIT_MAX: '0' });
  ({ headers } = await newTenant(api.db));
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
});

describe('GET /metrics', () => {
  it('needs the metrics key when one is configured', async () => {
    const response = await api.app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(401);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.headers['www-authenticate']).toBe('Bearer');
    const wrong = await api.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${METRICS_KEY}x` } });
    expect(wrong.statusCode).toBe(401);
    // A tenant's API key is not an operator's.
    expect((await api.app.inject({ method: 'GET', url: '/metrics', headers })).statusCode).toBe(401);
  });

  it('reports every family with values that follow from a short workflow', async () => {
    const family = (await api.app.inject({ method: 'POST', url: '/task-families', headers, payload: SINE })).json() as { id: string };
    const created = await api.app.inject({
      method: 'POST', url: '/meta-train', headers,
      payload: { familyIds: [family.id], algorithm: 'maml', model: { hidden: [16, 16] }, hyper: QUICK },
    });
    expect(created.statusCode).toBe(202);
    const jobId = (created.json() as { id: string }).id;

    // No worker yet: the job waits, and the queue says so.
    let samples = await scrape();
    expect(one(samples, 'fastadapt_queue_depth', { queue: 'meta-train' })).toBe(1);
    expect(one(samples, 'fastadapt_queue_jobs', { queue: 'meta-train', state: 'waiting' })).toBe(1);
    expect(one(samples, 'fastadapt_queue_jobs', { queue: 'meta-train', state: 'active' })).toBe(0);
    expect(one(samples, 'fastadapt_metrics_source_up', { source: 'redis' })).toBe(1);
    expect(one(samples, 'fastadapt_workers_reporting')).toBe(0);

    worker = await startInstrumentedWorker();
    const job = await waitForJob<{ status: string; metaModelId: string }>(api, headers, jobId, (j) => j.status !== 'queued' && j.status !== 'running');
    expect(job.status).toBe('succeeded');

    const task = (await api.app.inject({ method: 'POST', url: '/tasks', headers, payload: { metaModelId: job.metaModelId } })).json() as { id: string };
    const xs = [-4, -2.5, -1, 0, 0.5, 1.5, 2, 3, 3.5, 4.5];
    const adapted = await api.app.inject({
      method: 'POST', url: `/tasks/${task.id}/adapt`, headers,
      payload: { support: { x: xs.map((x) => [x]), y: xs.map((x) => 2 * Math.sin(x - 0.5)) }, steps: 5 },
    });
    expect(adapted.statusCode).toBe(200);
    for (let i = 0; i < 3; i++) {
      expect((await api.app.inject({ method: 'POST', url: `/tasks/${task.id}/predict`, headers, payload: { x: [[0.25]] } })).statusCode).toBe(200);
    }
    expect((await api.app.inject({ method: 'GET', url: `/no-such-route-${randomUUID()}` })).statusCode).toBe(404);
    await worker.publisher.publish();

    samples = await scrape();
    // HTTP: one series per route template and status, never per id or random path.
    expect(one(samples, 'fastadapt_http_request_duration_seconds_count', { method: 'POST', route: '/meta-train', status_code: '202' })).toBe(1);
    expect(one(samples, 'fastadapt_http_request_duration_seconds_count', { method: 'GET', route: '/meta-train/:id', status_code: '200' })).toBeGreaterThanOrEqual(1);
    expect(one(samples, 'fastadapt_http_request_duration_seconds_count', { method: 'POST', route: '/tasks/:id/predict', status_code: '200' })).toBe(3);
    expect(one(samples, 'fastadapt_http_request_duration_seconds_count', { method: 'GET', route: '(unmatched)', status_code: '404' })).toBe(1);
    expect(samples.some((s) => Object.values(s.labels).some((v) => v.includes(jobId) || v.includes(task.id) || v.includes('no-such-route')))).toBe(false);
    const postSum = one(samples, 'fastadapt_http_request_duration_seconds_sum', { method: 'POST', route: '/meta-train', status_code: '202' });
    expect(postSum).toBeGreaterThan(0);
    expect(postSum).toBeLessThan(10);

    // Queues: the job ran and left the waiting states.
    expect(one(samples, 'fastadapt_queue_depth', { queue: 'meta-train' })).toBe(0);
    expect(one(samples, 'fastadapt_queue_jobs', { queue: 'meta-train', state: 'completed' })).toBe(1);
    expect(one(samples, 'fastadapt_queue_jobs', { queue: 'adapt', state: 'completed' })).toBe(1);

    // Worker series, through Redis, labelled with their worker.
    expect(one(samples, 'fastadapt_workers_reporting')).toBe(1);
    expect(one(samples, 'fastadapt_meta_train_iterations_total', { worker: 'test-worker' })).toBe(QUICK.iterations);
    const rate = one(samples, 'fastadapt_meta_train_iterations_per_second', { worker: 'test-worker' });
    expect(rate).toBeGreaterThan(0);
    expect(rate).toBeLessThan(1e5);
    expect(one(samples, 'fastadapt_adaptation_duration_seconds_count', { worker: 'test-worker', result: 'completed' })).toBe(1);
    const adaptSeconds = one(samples, 'fastadapt_adaptation_duration_seconds_sum', { worker: 'test-worker', result: 'completed' });
    expect(adaptSeconds).toBeGreaterThan(0);
    expect(adaptSeconds).toBeLessThan(30);
    const inf = one(samples, 'fastadapt_adaptation_duration_seconds_bucket', { worker: 'test-worker', result: 'completed', le: '+Inf' });
    expect(inf).toBe(1);

    // Predict cache: the first prediction loaded the head, the next two were served from memory.
    expect(one(samples, 'fastadapt_predict_cache_lookups_total', { result: 'miss' })).toBe(1);
    expect(one(samples, 'fastadapt_predict_cache_lookups_total', { result: 'hit' })).toBe(2);

    // Backends, of the API process and of the worker.
    expect(one(samples, 'fastadapt_tfjs_backend_info', { role: 'api', backend: 'cpu' })).toBe(1);
    expect(one(samples, 'fastadapt_tfjs_backend_info', { role: 'worker', backend: 'cpu', worker: 'test-worker' })).toBe(1);

    // Node's process metrics come along.
    expect(one(samples, 'process_start_time_seconds')).toBeGreaterThan(1.7e9);
    expect(find(samples, 'nodejs_eventloop_lag_seconds').length).toBe(1);
  });
});

describe('GET /metrics without a configured key', () => {
  let open: TestApi;
  beforeAll(async () => {
    open = await startApi('metrics-open');
  });
  afterAll(async () => {
    await open?.close();
  });

  it('answers clients on this machine only', async () => {
    const local = await open.app.inject({ method: 'GET', url: '/metrics' });
    expect(local.statusCode).toBe(200);
    expect(parse(local.body).length).toBeGreaterThan(0);
    const remote = await open.app.inject({ method: 'GET', url: '/metrics', remoteAddress: '10.1.2.3' });
    expect(remote.statusCode).toBe(403);
    expect(remote.headers['content-type']).toMatch(/^application\/problem\+json/);
  });
});
