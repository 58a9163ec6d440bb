/**
 * Rows for meta-training tests, written straight through Prisma (the worker reads rows; how the API
 * writes them is tested on its side): a tenant, its families and a job.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Db, Prisma } from '../../../src/db/client.js';
import { decodeJobEvent, jobEventsKey, type JobEvent } from '../../../src/jobs/events.js';
import type { AlgorithmName } from '../../../src/meta/index.js';

/** A sinusoid family, the MAML paper's regression benchmark. */
export const SINUSOID: FamilyRow = { name: 'sine', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid' } };

/** Small enough to run in a second or two on one core (~3 ms an iteration on cpu). */
export const QUICK_HYPER = { iterations: 40, metaBatchSize: 4, shots: 5, queryShots: 5, innerSteps: 1, innerLr: 0.01, metaLr: 0.001, evalEvery: 10, checkpointEvery: 10, seed: 3, evalTasks: 8 };

export const SMALL_MODEL: Prisma.InputJsonObject = { hidden: [16, 16], activation: 'relu' };

export interface FamilyRow {
  name: string;
  kind: 'regression' | 'classification';
  inputDim: number;
  nWay?: number;
  generator?: Prisma.InputJsonObject;
  /** Dataset tasks as float32 bytes. */
  tasks?: { examples: number; x: Uint8Array<ArrayBuffer>; y: Uint8Array<ArrayBuffer> }[];
}

export interface SeedOptions {
  tenantId?: string;
  name?: string;
  algorithm?: AlgorithmName;
  families?: FamilyRow[];
  model?: Prisma.InputJsonObject;
  hyper?: Record<string, number | boolean>;
}

export async function seedTenant(db: Db, label: string): Promise<string> {
  return (await db.prisma.tenant.create({ data: { name: `${label}-${randomUUID()}` } })).id;
}

/** Creates (a tenant,) the families and a queued job; returns their ids. */
export async function seedJob(db: Db, options: SeedOptions = {}) {
  const tenantId = options.tenantId ?? (await seedTenant(db, 'training'));
  const familyIds: string[] = [];
  for (const family of options.families ?? [SINUSOID]) {
    const { tasks, generator, nWay, ...rest } = family;
    const row = await db.prisma.taskFamily.create({
      data: {
        tenantId,
        ...rest,
        ...(nWay === undefined ? {} : { nWay }),
        ...(generator === undefined ? {} : { generator }),
        taskCount: tasks?.length ?? 0,
        ...(tasks ? { tasks: { create: tasks.map((t, index) => ({ index, ...t })) } } : {}),
      },
    });
    familyIds.push(row.id);
  }
  const hyper = { ...QUICK_HYPER, ...options.hyper };
  const job = await db.prisma.metaTrainJob.create({
    data: {
      tenantId,
      name: options.name ?? 'sine-maml',
      algorithm: options.algorithm ?? 'maml',
      familyIds,
      model: options.model ?? SMALL_MODEL,
      hyper,
      iterations: hyper.iterations,
    },
  });
  return { tenantId, familyIds, jobId: job.id };
}

/** Little-endian float32 bytes, written here independently of src/util/float32.ts so tests check the format. */
export function float32Bytes(values: number[]): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return bytes;
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitUntil<T>(check: () => Promise<T | undefined | false>, what: string, timeoutMs = 30_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * The job's final status event. The worker writes the row first and publishes the event after it
 * (events are a view of what Postgres holds, never waited on), so a test that saw the row end waits
 * a moment for the stream to catch up.
 */
export function finalJobEvent(redis: Redis, prefix: string, jobId: string): Promise<JobEvent> {
  return waitUntil(async () => {
    const entries = (await redis.xrange(jobEventsKey(prefix, jobId), '-', '+')) as [string, string[]][];
    const last = entries.length > 0 ? decodeJobEvent(entries[entries.length - 1]!) : null;
    return last?.type === 'status' && (last as JobEvent<'status'>).data.status !== 'running' ? last : undefined;
  }, `the final status event of job ${jobId}`, 5_000, 10);
}
