/**
 * GET /meta-train/:id/events across processes: the worker runs in a child process of its own
 * (`src/main.ts --role worker`), the API in this one, and they share only Postgres and Redis. The
 * client receives a status snapshot, progress and metrics in stream order, the final status, and
 * the stream closes; Last-Event-ID resumes after the given event; a queued job cancelled through the
 * API ends the stream of a waiting client.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newTenant, QUICK, SINE, startApi, type TestApi } from './support/api-app.js';
import { createPrivateDatabase, type PrivateDatabase } from './support/private-database.js';
import { SHARED_REDIS_URL } from './support/services.js';
import { compareStreamIds, readEventStream, type SseEvent } from './support/sse.js';

const ROOT = join(import.meta.dirname, '..', '..');

let api: TestApi;
// The worker process runs the reconciler, which would pick up every unfinished job of a shared database.
let database: PrivateDatabase;
let baseUrl: string;
let headers: Record<string, string>;
let tenantId: string;
let familyId: string;
let worker: ChildProcess | undefined;
let workerLog = '';

/** Starts `src/main.ts --role worker` on the API's prefix; resolves once it logged "started". */
async function startWorkerProcess(prefix: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--role', 'worker'], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: database.url, REDIS_URL: SHARED_REDIS_URL, QUEUE_PREFIX: prefix, TFJS_BACKEND: 'cpu', LOG_LEVEL: 'info', PROGRESS_INTERVAL_MS: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const started = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      workerLog += chunk.toString();
      if (/"msg":"started"/.test(workerLog)) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`worker exited with ${code} before starting:\n${workerLog}`)));
  });
  await started;
  return child;
}

beforeAll(async () => {
  database = await createPrivateDatabase('events');
  api = await startApi('events', { DATABASE_URL: database.url });
  baseUrl = await api.app.listen({ host: '127.0.0.1', port: 0 });
  ({ headers, tenantId } = await newTenant(api.db));
  familyId = ((await api.app.inject({ method: 'POST', url: '/task-families', headers, payload: SINE })).json() as { id: string }).id;
});

afterAll(async () => {
  if (worker && worker.exitCode === null) {
    const exited = once(worker, 'exit');
    worker.kill('SIGTERM');
    await exited;
  }
  await api?.close();
  await database?.drop();
});

const startJob = async (hyper: object) => {
  const response = await api.app.inject({ method: 'POST', url: '/meta-train', headers, payload: { familyIds: [familyId], algorithm: 'maml', model: { hidden: [16, 16] }, hyper } });
  expect(response.statusCode, response.body).toBe(202);
  return (response.json() as { id: string }).id;
};

const withIds = (events: SseEvent[]) => events.filter((e): e is SseEvent & { id: string } => e.id !== undefined);

describe('a queued job', () => {
  it('ends the stream of a waiting client when it is cancelled through the API', async () => {
    // No worker consumes this prefix yet: the job stays queued until cancelled.
    const id = await startJob({ ...QUICK });
    const reading = readEventStream(`${baseUrl}/meta-train/${id}/events`, headers, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await api.app.inject({ method: 'POST', url: `/meta-train/${id}/cancel`, headers })).statusCode).toBe(202);
    const { events, contentType } = await reading;
    expect(contentType).toMatch(/^text\/event-stream/);
    expect(events[0]).toEqual({ event: 'status', data: { status: 'queued', iteration: 0, iterations: 40 } });
    expect(events.at(-1)).toMatchObject({ event: 'status', id: expect.any(String), data: { status: 'cancelled' } });
  });
});

describe('a client that goes away', () => {
  it("frees its place under the tenant's stream cap", async () => {
    const id = await startJob({ ...QUICK });
    const open = async () => api.redis.zcard(`${api.prefix}:event-streams:${tenantId}`);
    const client = new AbortController();
    const response = await fetch(`${baseUrl}/meta-train/${id}/events`, { headers, signal: client.signal });
    expect(response.status).toBe(200);
    await expect.poll(open).toBe(1);
    client.abort();
    await expect.poll(open).toBe(0);
    await api.app.inject({ method: 'POST', url: `/meta-train/${id}/cancel`, headers });
  });
});

describe('a job run by a worker in another process', () => {
  let jobId: string;
  let live: SseEvent[];

  it('streams status, progress and metrics in order, then the final status, and closes', async () => {
    worker = await startWorkerProcess(api.prefix);
    jobId = await startJob({ ...QUICK, iterations: 60, evalEvery: 20, checkpointEvery: 20 });
    ({ events: live } = await readEventStream(`${baseUrl}/meta-train/${jobId}/events`, headers));

    expect(live[0]).toMatchObject({ event: 'status', data: { status: expect.stringMatching(/^(queued|running)$/), iterations: 60 } });
    expect(live[0].id).toBeUndefined();
    const stamped = withIds(live.slice(1));
    expect(stamped).toHaveLength(live.length - 1);
    for (let i = 1; i < stamped.length; i++) expect(compareStreamIds(stamped[i - 1].id, stamped[i].id)).toBeLessThan(0);

    const progress = live.filter((e) => e.event === 'progress').map((e) => e.data.iteration as number);
    expect(progress.length).toBeGreaterThan(1);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);
    expect(progress.at(-1)).toBe(60);
    expect(live.filter((e) => e.event === 'metrics').map((e) => e.data.iteration)).toEqual([20, 40, 60]);

    const job = (await api.app.inject({ method: 'GET', url: `/meta-train/${jobId}`, headers })).json() as { status: string; metaModelId: string };
    expect(job.status).toBe('succeeded');
    expect(live.at(-1)).toMatchObject({ event: 'status', data: { status: 'succeeded', iteration: 60, metaModelId: job.metaModelId } });
  });

  it('resumes after Last-Event-ID with only the later events', async () => {
    const firstMetrics = live.find((e) => e.event === 'metrics')!;
    const { events } = await readEventStream(`${baseUrl}/meta-train/${jobId}/events`, { ...headers, 'last-event-id': firstMetrics.id! });
    expect(events[0]).toMatchObject({ event: 'status', data: { status: 'succeeded' } });
    const later = live.filter((e) => e.id !== undefined && compareStreamIds(e.id, firstMetrics.id!) > 0);
    expect(events.slice(1)).toEqual(later);
    expect(events.filter((e) => e.event === 'metrics').map((e) => e.data.iteration)).toEqual([40, 60]);
  });

  it('refuses a malformed Last-Event-ID', async () => {
    const response = await api.app.inject({ method: 'GET', url: `/meta-train/${jobId}/events`, headers: { ...headers, 'last-event-id': 'yesterday' } });
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ errors: [{ path: '/last-event-id', in: 'header' }] });
  });
});
