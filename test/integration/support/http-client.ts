/**
 * A client of real API processes over HTTP, as the multi-process and fault tests use them: every
 * request has a time bound (a request past it is a hang, reported as status 0), and an adaptation
 * is driven to its end the way a well-behaved client would: 200 is done, 202 is polled at its
 * Location, a 5xx (the service's "try again") is retried after a short pause.
 */
import { WorkerProcess } from './worker-process.js';
import { freePort } from './services.js';

export interface Answer {
  /** HTTP status, or 0 when the request did not complete within its bound (a hang) or the connection failed. */
  status: number;
  contentType: string;
  body: unknown;
  ms: number;
  /** Why status is 0. */
  error?: string;
}

/** One request to `base` (e.g. http://127.0.0.1:1234), bounded by `timeoutMs`; never throws. */
export async function call(
  base: string,
  method: 'GET' | 'POST',
  path: string,
  options: { headers?: Record<string, string>; body?: unknown; timeoutMs?: number } = {},
): Promise<Answer> {
  const started = performance.now();
  try {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { ...options.headers, ...(options.body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: AbortSignal.timeout(options.timeoutMs ?? 20_000),
    });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: kept as text for the failure message
    }
    return { status: response.status, contentType: response.headers.get('content-type') ?? '', body, ms: performance.now() - started };
  } catch (error) {
    return { status: 0, contentType: '', body: null, ms: performance.now() - started, error: String(error) };
  }
}

/** Statuses a client retries: the service says "not now" (503), or it answered nothing (0) while restarting. */
const RETRIABLE = new Set([0, 502, 503, 504]);

export interface AdaptDone {
  adaptationId: string;
  headVersion: number;
  /** Every answer on the way (the POSTs and the polls), for assertions on what the client saw. */
  answers: Answer[];
}

/**
 * POSTs the adaptation to one of `bases` (the next one on each retry) until it is accepted, then
 * polls it to its end; throws if it fails (422) or does not end within `timeoutMs`.
 */
export async function adaptToEnd(
  bases: readonly string[],
  headers: Record<string, string>,
  taskId: string,
  support: { x: number[][]; y: number[] },
  timeoutMs = 60_000,
): Promise<AdaptDone> {
  const deadline = Date.now() + timeoutMs;
  const answers: Answer[] = [];
  const pause = () => new Promise((resolve) => setTimeout(resolve, 200));
  for (let attempt = 0; ; attempt++) {
    if (Date.now() > deadline) throw new Error(`adaptation of ${taskId} not accepted within ${timeoutMs} ms: ${JSON.stringify(answers.slice(-3))}`);
    const base = bases[attempt % bases.length]!;
    const posted = await call(base, 'POST', `/tasks/${taskId}/adapt`, { headers, body: { support } });
    answers.push(posted);
    if (RETRIABLE.has(posted.status)) {
      await pause();
      continue;
    }
    if (posted.status === 200) {
      const body = posted.body as { adaptationId: string; headVersion: number };
      return { adaptationId: body.adaptationId, headVersion: body.headVersion, answers };
    }
    if (posted.status !== 202) throw new Error(`adapt answered ${posted.status}: ${JSON.stringify(posted.body)}`);
    const adaptationId = (posted.body as { id: string }).id;
    for (let poll = 0; ; poll++) {
      if (Date.now() > deadline) throw new Error(`adaptation ${adaptationId} did not end within ${timeoutMs} ms: ${JSON.stringify(answers.slice(-3))}`);
      await pause();
      const seen = await call(bases[poll % bases.length]!, 'GET', `/tasks/${taskId}/adaptations/${adaptationId}`, { headers });
      answers.push(seen);
      if (RETRIABLE.has(seen.status)) continue;
      if (seen.status !== 200) throw new Error(`polling ${adaptationId} answered ${seen.status}: ${JSON.stringify(seen.body)}`);
      const row = seen.body as { status: string; headVersion: number | null; error: string | null };
      if (row.status === 'succeeded') return { adaptationId, headVersion: row.headVersion!, answers };
      if (row.status === 'failed') throw new Error(`adaptation ${adaptationId} failed: ${row.error}`);
    }
  }
}

/** An API process (`--role api`) on a free port, resolved once it listens. */
export async function startApiProcess(env: Record<string, string>): Promise<{ process: WorkerProcess; base: string }> {
  const port = await freePort();
  const api = new WorkerProcess({ HOST: '127.0.0.1', PORT: String(port), ...env }, 'api');
  await api.waitForLog('started', () => true, 90_000);
  return { process: api, base: `http://127.0.0.1:${port}` };
}
