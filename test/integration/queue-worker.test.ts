/**
 * Queues and the worker pool on the real Redis, each test with its own key prefix: the handler table
 * is checked at start-up, payloads are ids only, handlers get (job, token, signal), and a shutdown
 * hands a running job back to its queue instead of failing it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { DEFAULT_JOB_OPTIONS, JobDataError, closeQueues, createQueues, enqueue, type JobData, type Queues } from '../../src/jobs/queues.js';
import { createRedis } from '../../src/jobs/redis.js';
import { HandlerTableError, SHUTDOWN, startWorkers, type HandlerTable, type WorkerPool } from '../../src/jobs/worker.js';
import { runtimeAborted } from '../../src/meta/index.js';
import { SHARED_REDIS_URL, uniquePrefix } from './support/services.js';

const logger = pino({ level: 'silent' });
let redis: Redis;
const opened: { queues: Queues; prefix: string; pool?: WorkerPool }[] = [];

beforeAll(() => {
  redis = createRedis(SHARED_REDIS_URL, 'test', logger);
});

afterEach(async () => {
  for (const { queues, prefix, pool } of opened.splice(0)) {
    await pool?.close();
    await Promise.all(Object.values(queues).map((queue) => queue.obliterate({ force: true })));
    await closeQueues(queues);
    expect(await redis.keys(`${prefix}:*`)).toEqual([]);
  }
});

afterAll(async () => {
  await redis.quit();
});

function setUp(label: string, eventsMaxLen?: number) {
  const prefix = uniquePrefix(label);
  const entry: (typeof opened)[number] = { queues: createQueues({ connection: redis, prefix, eventsMaxLen, logger }), prefix };
  opened.push(entry);
  return entry;
}

const idle: HandlerTable = { 'meta-train': async () => undefined, adapt: async () => undefined, evaluate: async () => undefined };

describe('handler table', () => {
  // The type already demands every handler; these tables are what a dynamically built one could be.
  const start = (table: Record<string, unknown>) => () =>
    startWorkers(table as unknown as HandlerTable, { connection: redis, prefix: 'unused', logger });

  it('refuses a table that misses a queue, before connecting anything', () => {
    const { adapt } = idle;
    expect(start({ adapt })).toThrow(HandlerTableError);
    expect(start({ adapt })).toThrow(/no handler for queue "meta-train"/);
  });

  it('refuses a handler for a queue that does not exist', () => {
    expect(start({ ...idle, 'meta-trian': async () => undefined })).toThrow(/unknown queue "meta-trian"/);
  });

  it('refuses an entry that is not a function', () => {
    expect(start({ ...idle, adapt: 'runAdapt' })).toThrow(/no handler for queue "adapt"/);
  });
});

describe('queues', () => {
  it('refuses job data that is not ids only', async () => {
    const { queues } = setUp('data');
    const tensors = { jobId: 'job-1', params: [0.1, 0.2] } as unknown as JobData<'meta-train'>;
    await expect(enqueue(queues, 'meta-train', tensors, 'job-1')).rejects.toThrow(JobDataError);
    await expect(enqueue(queues, 'adapt', { taskId: 't1' } as JobData<'adapt'>, 'a1')).rejects.toThrow(/adaptationId/);
    expect(await queues['meta-train'].count()).toBe(0);
  });

  it('applies bounded retention and uses the row id as job id, so a re-enqueue is a no-op', async () => {
    const { queues } = setUp('defaults');
    const first = await enqueue(queues, 'meta-train', { jobId: 'job-42' }, 'job-42');
    const again = await enqueue(queues, 'meta-train', { jobId: 'job-42' }, 'job-42');
    expect(first.id).toBe('job-42');
    expect(again.id).toBe('job-42');
    expect(await queues['meta-train'].count()).toBe(1);
    expect(first.opts).toMatchObject({
      attempts: DEFAULT_JOB_OPTIONS['meta-train'].attempts,
      removeOnComplete: DEFAULT_JOB_OPTIONS['meta-train'].removeOnComplete,
      removeOnFail: DEFAULT_JOB_OPTIONS['meta-train'].removeOnFail,
    });
  });

  it('caps the events stream', async () => {
    const { queues, prefix } = setUp('events', 10);
    for (let i = 0; i < 300; i++) await enqueue(queues, 'adapt', { taskId: 't', adaptationId: `a${i}` }, `a${i}`);
    // XADD MAXLEN ~ trims in whole stream nodes (100 entries), so the cap is approximate.
    const length = await redis.xlen(`${prefix}:adapt:events`);
    expect(length).toBeGreaterThan(0);
    expect(length).toBeLessThan(300);
    expect(length).toBeLessThanOrEqual(10 + 100);
  });
});

describe('workers', () => {
  it('runs each queue\'s handler with the job, its lock token and an AbortSignal', async () => {
    const entry = setUp('run');
    const seen: { queue: string; data: unknown; token: string; signal: boolean }[] = [];
    const record = (queue: string) => async (job: Job, token: string, signal: AbortSignal) => {
      seen.push({ queue, data: job.data, token, signal: signal instanceof AbortSignal && !signal.aborted });
      return { ok: queue };
    };
    entry.pool = startWorkers({ 'meta-train': record('meta-train'), adapt: record('adapt'), evaluate: record('evaluate') }, { connection: redis, prefix: entry.prefix, logger });
    const train = await enqueue(entry.queues, 'meta-train', { jobId: 'job-1' }, 'job-1');
    const adapt = await enqueue(entry.queues, 'adapt', { taskId: 'task-1', adaptationId: 'ad-1' }, 'ad-1');
    const evaluate = await enqueue(entry.queues, 'evaluate', { evaluationId: 'ev-1' }, 'ev-1');
    await waitFor(async () => (await train.getState()) === 'completed' && (await adapt.getState()) === 'completed' && (await evaluate.getState()) === 'completed');

    expect(seen.map((s) => s.queue).sort()).toEqual(['adapt', 'evaluate', 'meta-train']);
    expect(seen.find((s) => s.queue === 'adapt')).toMatchObject({ data: { taskId: 'task-1', adaptationId: 'ad-1' }, token: expect.any(String), signal: true });
    expect((await entry.queues['meta-train'].getJob('job-1'))?.returnvalue).toEqual({ ok: 'meta-train' });
  });

  it('on shutdown aborts a running handler with reason "shutdown" and puts its job back in the queue', async () => {
    const entry = setUp('shutdown');
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    let reason: unknown;
    entry.pool = startWorkers({
      ...idle,
      'meta-train': (_job, _token, signal) => new Promise((_, reject) => {
        started();
        // A real handler saves a checkpoint here, then stops.
        signal.addEventListener('abort', () => {
          reason = signal.reason;
          reject(new Error('stopped at iteration 17, checkpoint saved'));
        });
      }),
    }, { connection: redis, prefix: entry.prefix, logger });
    const job = await enqueue(entry.queues, 'meta-train', { jobId: 'long-1' }, 'long-1');
    await running;

    await entry.pool.close();
    entry.pool = undefined;
    expect(reason).toBe(SHUTDOWN);
    const after = await entry.queues['meta-train'].getJob(job.id!);
    expect(await after!.getState()).toBe('waiting');
    expect(after!.attemptsMade).toBe(0);
    expect(after!.failedReason ?? '').toBe('');
  });

  it('fails a job whose handler throws for its own reasons', async () => {
    const entry = setUp('fail');
    const aborted: unknown[] = [];
    entry.pool = startWorkers({ ...idle, adapt: async () => { throw new Error('support set has NaN'); } }, { connection: redis, prefix: entry.prefix, logger, onRuntimeAborted: (e) => aborted.push(e) });
    const job = await enqueue(entry.queues, 'adapt', { taskId: 't', adaptationId: 'bad' }, 'bad', { attempts: 1 });
    await waitFor(async () => (await job.getState()) === 'failed');
    expect((await entry.queues.adapt.getJob('bad'))?.failedReason).toBe('support set has NaN');
    expect(aborted).toEqual([]);
  });

  it('a trapped WebAssembly runtime fails the attempt (the retry stays queued) and tells the process to stop', async () => {
    const entry = setUp('trap');
    const aborted: unknown[] = [];
    entry.pool = startWorkers({ ...idle, 'meta-train': async () => trap() }, { connection: redis, prefix: entry.prefix, logger, onRuntimeAborted: (e) => aborted.push(e) });
    const job = await enqueue(entry.queues, 'meta-train', { jobId: 'trapped' }, 'trapped', { attempts: 2, backoff: { type: 'fixed', delay: 60_000 } });
    await waitFor(async () => aborted.length > 0);
    // The retry waits (delayed) for a worker: this process was told to stop, so it is another's to take.
    await waitFor(async () => (await job.getState()) === 'delayed');
    expect(aborted).toHaveLength(1);
    expect(runtimeAborted(aborted[0])).toBe(true);
    expect((await entry.queues['meta-train'].getJob('trapped'))).toMatchObject({ attemptsMade: 1, failedReason: 'unreachable' });
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs WebAssembly's `unreachable`: a real trap, as tfjs-wasm's abort or an out-of-bounds access raises. */
function trap(): never {
  // (module (func (export "f") unreachable))
  const bytes = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 7, 5, 1, 1, 102, 0, 0, 10, 5, 1, 3, 0, 0, 11]);
  const wasm = (globalThis as unknown as { WebAssembly: { Instance: new (m: unknown) => { exports: { f: () => void } }; Module: new (b: Uint8Array) => unknown } }).WebAssembly;
  new wasm.Instance(new wasm.Module(bytes)).exports.f();
  throw new Error('the trap did not trap');
}
