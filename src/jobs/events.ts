/**
 * Live job events, published by the worker that runs a job and read by the SSE route of any API
 * process. Each job has its own Redis stream `<prefix>:events:<jobId>`; an entry has two fields,
 * `type` and `data` (JSON), and its stream id is the SSE event id, so a client resumes with
 * Last-Event-ID. Postgres stays the truth: an event is published after the row it reports was written,
 * and a lost event only costs a client a live update, never a result.
 */
import type { Redis } from 'ioredis';
import type { JobStatus } from '../db/repositories/jobs.js';
import type { MetricsPoint, Validation } from '../meta/index.js';


/** A job in one of these statuses will publish nothing more: the SSE stream closes after it. */
export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];

/** Whether `status` ends a job. */
export function isTerminalStatus(status: string): boolean {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

/** `status`: the job moved to `status`; terminal ones carry the outcome. */
export interface StatusEventData {
  status: JobStatus;
  /** Outer-loop iterations done when the status changed. */
  iteration: number;
  iterations: number;
  /** `failed` only: the readable reason. */
  error?: string;
  /** `succeeded` only: the meta-model version it stored. */
  metaModelId?: string;
}

/** `progress`: iterations done so far (published at most every progress interval, and at the end). */
export interface ProgressEventData {
  iteration: number;
  iterations: number;
}

/**
 * `metrics`: one evaluation point, as stored in the job's metrics history, and the best evaluation
 * so far (this one or an earlier one) as the job resource names it.
 */
export type MetricsEventData = MetricsPoint & { bestIteration: number; bestValidation: Validation | null };

/** Event type -> its data. */
export interface JobEventMap {
  status: StatusEventData;
  progress: ProgressEventData;
  metrics: MetricsEventData;
}

export type JobEventType = keyof JobEventMap;
export const JOB_EVENT_TYPES: readonly JobEventType[] = ['status', 'progress', 'metrics'];

/** Entries kept per job stream (XADD MAXLEN ~, so a little more may stay). Default 1000. */
export const JOB_EVENTS_MAX_LEN = 1_000;

/**
 * How long a job's stream outlives the job's end, in seconds. The stream is transport for live
 * followers: one that reconnects within this time still gets the tail it missed (Last-Event-ID);
 * anyone later gets the final status from Postgres (and GET /meta-train/:id/metrics the history), so
 * Redis keeps no per-job key for long after the job (issue 17's soak: keys flat after warm-up).
 */
export const JOB_EVENTS_TTL_AFTER_END_S = 60;

/** The stream key of one job's events. */
export function jobEventsKey(prefix: string, jobId: string): string {
  return `${prefix}:events:${jobId}`;
}

/**
 * Appends one event to the job's stream and returns its stream id. A terminal `status` event also
 * starts the stream's expiry ({@link JOB_EVENTS_TTL_AFTER_END_S}).
 */
export async function publishJobEvent<T extends JobEventType>(redis: Redis, prefix: string, jobId: string, type: T, data: JobEventMap[T]): Promise<string> {
  const key = jobEventsKey(prefix, jobId);
  const multi = redis.multi().xadd(key, 'MAXLEN', '~', JOB_EVENTS_MAX_LEN, '*', 'type', type, 'data', JSON.stringify(data));
  if (type === 'status' && isTerminalStatus((data as StatusEventData).status)) multi.expire(key, JOB_EVENTS_TTL_AFTER_END_S);
  const results = await multi.exec();
  const [error, id] = results?.[0] ?? [new Error('the event transaction was discarded'), null];
  if (error) throw error;
  return id as string;
}

/** One stream entry decoded: what the SSE route sends (`id`, `event: type`, `data`). */
export interface JobEvent<T extends JobEventType = JobEventType> {
  id: string;
  type: T;
  data: JobEventMap[T];
}

/**
 * Decodes an entry as XREAD/XRANGE return it (`[id, [field, value, ...]]`); null for an entry that
 * is not a job event (unknown type or bad JSON), which a reader skips.
 */
export function decodeJobEvent([id, fields]: [string, string[]]): JobEvent | null {
  const get = (name: string) => {
    const at = fields.findIndex((field, i) => i % 2 === 0 && field === name);
    return at === -1 ? undefined : fields[at + 1];
  };
  const type = get('type');
  const raw = get('data');
  if (type === undefined || raw === undefined || !(JOB_EVENT_TYPES as readonly string[]).includes(type)) return null;
  try {
    return { id, type: type as JobEventType, data: JSON.parse(raw) as JobEventMap[JobEventType] };
  } catch {
    return null;
  }
}
