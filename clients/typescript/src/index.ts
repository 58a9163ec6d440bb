/**
 * The fastadapt TypeScript client: openapi-fetch over the types generated from the OpenAPI contract
 * (./schema.ts, by `npm run openapi`), plus what a typed fetch cannot give by itself: the API key on
 * every request, errors as exceptions carrying the problem details, and a job's live events.
 *
 * ```ts
 * const api = createFastadaptClient({ baseUrl: 'http://localhost:3000', apiKey });
 * const family = await orThrow(api.POST('/task-families', { body: { name: 'sine', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid' } } }));
 * ```
 */
import createClient, { type Client, type ClientOptions } from 'openapi-fetch';
import type { components, operations, paths } from './schema.js';
import { readServerSentEvents } from './events.js';

export type { components, operations, paths };
export { readServerSentEvents, type ServerSentEvent } from './events.js';

type Schemas = components['schemas'];
export type Problem = Schemas['Problem'];
export type TaskFamily = Schemas['TaskFamily'];
export type Job = Schemas['Job'];
export type JobStatus = Job['status'];
export type MetaModel = Schemas['MetaModel'];
/** A meta-model against baselines on held-out tasks (POST and GET /meta-models/{id}/evaluations). */
export type Evaluation = Schemas['Evaluation'];
/** One method at one number of shots (and steps): mean loss (and accuracy) with its 95% confidence interval. */
export type EvaluationRow = Schemas['EvaluationRow'];
export type Task = Schemas['Task'];
/** The 200 answer of POST /tasks/{id}/adapt: the new head version serves predictions. */
export type AdaptResult = Schemas['AdaptResult'];
/** An adaptation that may still be running (202 answer, GET /tasks/{id}/adaptations/{adaptationId}). */
export type Adaptation = Schemas['Adaptation'];
export type Predictions = Schemas['Predictions'];
/**
 * GET /tasks/{id}/model?format=tfjs (and /meta-models/{id}/model): a TF.js LayersModel with its
 * weights base64 in `weightData`. The ONNX form is binary: call with `parseAs: 'arrayBuffer'`.
 */
export type TfjsArtefact = Schemas['TfjsArtefact'];

/** The typed client: `api.GET('/meta-train/{id}', { params: { path: { id } } })` and so on. */
export type FastadaptClient = Client<paths>;

export interface FastadaptClientOptions extends Omit<ClientOptions, 'baseUrl'> {
  /** Where the API listens, e.g. `http://localhost:3000`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>` on every request. Omit for the probes only. */
  apiKey?: string;
}

/** A client for the API at `baseUrl`, authenticating with `apiKey`. */
export function createFastadaptClient({ apiKey, headers, ...options }: FastadaptClientOptions): FastadaptClient {
  return createClient<paths>({
    ...options,
    headers: { ...(apiKey === undefined ? {} : { authorization: `Bearer ${apiKey}` }), ...(headers as Record<string, string> | undefined) },
  });
}

/** An error answer of the API: its status and RFC 9457 problem details. */
export class ProblemError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem,
  ) {
    const fields = problem.errors?.map((issue) => `${issue.path || '(root)'} ${issue.message}`).join('; ');
    super(`${status} ${problem.title}: ${problem.detail ?? ''}${fields && !problem.detail?.includes(fields) ? ` (${fields})` : ''}`);
    this.name = 'ProblemError';
  }
}

/** What every openapi-fetch call resolves to. */
interface FetchResult<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The body of a successful answer; throws {@link ProblemError} for an error answer. */
export async function orThrow<T>(call: Promise<FetchResult<T>>): Promise<T> {
  const { data, error, response } = await call;
  if (response.ok) return data as T;
  const problem = (error && typeof error === 'object' ? error : { type: 'about:blank', title: response.statusText, status: response.status, detail: String(error ?? '') }) as Problem;
  throw new ProblemError(response.status, problem);
}

/** The JSON each event of GET /meta-train/{id}/events carries. */
export type JobEvent =
  | { id?: string; event: 'status'; data: Job['progress'] & { status: JobStatus; error?: string; metaModelId?: string } }
  | { id?: string; event: 'progress'; data: Job['progress'] }
  | { id?: string; event: 'metrics'; data: NonNullable<Job['metrics']> };

/**
 * A job's live events, from a `status` snapshot to its final `status` (the server then closes the
 * stream). Pass the last `id` seen as `lastEventId` to resume after a dropped connection.
 */
export async function* jobEvents(
  api: FastadaptClient,
  jobId: string,
  options: { lastEventId?: string; signal?: AbortSignal } = {},
): AsyncGenerator<JobEvent> {
  const { data, error, response } = await api.GET('/meta-train/{id}/events', {
    params: { path: { id: jobId }, header: options.lastEventId === undefined ? {} : { 'last-event-id': options.lastEventId } },
    headers: { accept: 'text/event-stream' },
    parseAs: 'stream',
    signal: options.signal,
  });
  if (!response.ok || !data) throw new ProblemError(response.status, error as Problem);
  for await (const event of readServerSentEvents(data)) {
    yield { ...event, data: JSON.parse(event.data) } as JobEvent;
  }
}

export { inputDimOf, partsOf, uploadFamily, type UploadFormat, type UploadOptions, type UploadProgress } from './upload.js';
