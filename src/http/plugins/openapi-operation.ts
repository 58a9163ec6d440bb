/**
 * What every documented operation must carry, filled in when a route is registered so that no route
 * can forget it: the problem+json answers its shape implies (500 always; 400 when it validates
 * input; 413 and 415 when it takes a body; 401 unless it is public; 429 and 503 behind a tenant's
 * key) and an example body for each of them. Routes still declare the answers only they know about
 * (404, 409, 422, ...).
 */
import type { RouteOptions } from 'fastify';
import { problemResponses } from '../schemas/common.js';
import { PROBLEM_CONTENT_TYPE, type Problem, type ValidationIssue } from '../schemas/problem.js';
import { statusTitle } from '../problem.js';

interface MediaType {
  schema?: unknown;
  example?: unknown;
  examples?: unknown;
}

interface ResponseEntry {
  description?: string;
  content?: Record<string, MediaType>;
  [key: string]: unknown;
}

/** The parts of a Fastify route schema this module reads or fills. */
export interface OperationSchema {
  hide?: boolean;
  security?: unknown[];
  body?: { required?: string[]; properties?: Record<string, unknown> };
  querystring?: { required?: string[]; properties?: Record<string, { maximum?: number }> };
  params?: { properties?: Record<string, { maxLength?: number }> };
  headers?: unknown;
  response?: Record<string, ResponseEntry>;
}

/** Values shown for path parameters in example `instance`s. */
const EXAMPLE_PARAMS: Record<string, string> = {
  id: '0197a4f0-6c2e-7b3a-9d51-2f8e4c1a9b70',
  alias: 'production',
};

/** `/meta-train/:id` as a client would have called it. */
function examplePath(url: string): string {
  return url.replace(/:(\w+)/g, (_, name: string) => EXAMPLE_PARAMS[name] ?? name);
}

/** A field a client can really get wrong, and what the API answers about it (its own wording). */
function exampleIssue(schema: OperationSchema): ValidationIssue {
  const body = schema.body?.required?.[0];
  if (body) return { path: `/${body}`, message: 'is required', in: 'body' };
  const query = schema.querystring?.required?.[0];
  if (query) return { path: `/${query}`, message: 'is required', in: 'query' };
  const limit = schema.querystring?.properties?.limit?.maximum;
  if (limit !== undefined) return { path: '/limit', message: `must be <= ${limit}`, in: 'query' };
  const [param, bounds] = Object.entries(schema.params?.properties ?? {})[0] ?? [];
  if (param && bounds?.maxLength !== undefined) return { path: `/${param}`, message: `must not have more than ${bounds.maxLength} characters`, in: 'path' };
  return { path: '', message: 'must be an object', in: 'body' };
}

const EXAMPLE_DETAILS: Record<number, string> = {
  401: 'Missing Authorization header; send `Authorization: Bearer <api key>`',
  404: 'No such resource for this tenant',
  409: 'The resource is in a state that does not allow this',
  413: 'Request body is too large',
  415: 'Unsupported Media Type',
  422: 'Idempotency-Key reused with a different request body',
  429: 'Rate limit of 600 requests per minute exceeded for this API key; retry in 1 minute',
  503: 'The database is unavailable; retry in a few seconds.',
  500: 'An unexpected error occurred. Quote request id 3f0c2a8e-5b1d-4c7e-9a60-d2e4f1b8c357 when reporting it.',
};

/** The problem body a client would see for `status` on this route. */
export function problemExample(status: number, url: string, schema: OperationSchema): Problem & Record<string, unknown> {
  const base = { type: 'about:blank', title: statusTitle(status), status, instance: examplePath(url) };
  if (status === 400) {
    const issue = exampleIssue(schema);
    return { ...base, detail: `Invalid request: ${issue.path || '(root)'} ${issue.message}`, errors: [issue] };
  }
  if (status === 503) return { ...base, detail: EXAMPLE_DETAILS[503], dependency: 'postgres' };
  return { ...base, detail: EXAMPLE_DETAILS[status] ?? statusTitle(status) };
}

/** Statuses whose answer says when to try again. */
const RETRY_AFTER = { 'retry-after': { type: 'integer', minimum: 0, description: 'Seconds to wait before retrying' } };

/**
 * The error statuses this route can answer whatever its handler does. A route with its own security
 * (e.g. an operator key) can refuse it (401); one behind a tenant's API key (the document's default)
 * can also be rate limited (429) and finds the key in Postgres (503 while it is down).
 */
function impliedStatuses(schema: OperationSchema): number[] {
  const isPublic = Array.isArray(schema.security) && schema.security.length === 0;
  const tenantKey = schema.security === undefined;
  return [
    ...(schema.body || schema.querystring || schema.params || schema.headers ? [400] : []),
    ...(isPublic ? [] : [401]),
    ...(schema.body ? [413, 415] : []),
    ...(tenantKey ? [429] : []),
    500,
    ...(tenantKey ? [503] : []),
  ];
}

function hasExample(media: MediaType): boolean {
  const schemaExamples = (media.schema as { examples?: unknown } | undefined)?.examples;
  return media.example !== undefined || media.examples !== undefined || schemaExamples !== undefined;
}

/**
 * onRoute hook: adds the implied problem+json responses and an example to every problem response
 * that has none, and a description (the status text) to any response without one. Entries are
 * replaced, never mutated: routes may share them.
 */
export function completeOperation(route: RouteOptions): void {
  const schema = route.schema as OperationSchema | undefined;
  if (!schema || schema.hide) return;
  const response: Record<string, ResponseEntry> = { ...schema.response };
  for (const status of impliedStatuses(schema)) {
    response[status] ??= problemResponses(status)[status] as ResponseEntry;
  }
  for (const [status, declared] of Object.entries(response)) {
    let entry = declared.description === undefined ? { description: statusTitle(Number(status)), ...declared } : declared;
    if ((status === '429' || status === '503') && entry.headers === undefined) entry = { ...entry, headers: RETRY_AFTER };
    const media = entry.content?.[PROBLEM_CONTENT_TYPE];
    if (Number(status) >= 400 && media && !hasExample(media)) {
      const example = problemExample(Number(status), route.url, schema);
      entry = { ...entry, content: { ...entry.content, [PROBLEM_CONTENT_TYPE]: { ...media, example } } };
    }
    response[status] = entry;
  }
  schema.response = response;
}
