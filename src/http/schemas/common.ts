/** Pieces every resource schema shares: ids, timestamps, pages, and the problem+json error answers. */
import { Type, type TLiteral, type TSchema } from 'typebox';
import { InvalidCursorError } from '../../db/repositories/pagination.js';
import { HttpProblem } from '../problem.js';
import { PROBLEM_CONTENT_TYPE, Problem, type ValidationIssue } from './problem.js';

/**
 * A union of string literals from a list the engine exports (e.g. ALGORITHM_NAMES). Typed as one
 * literal of the values' union: TypeBox cannot infer a union from a mapped array.
 */
export function Literals<const V extends string>(values: readonly V[], options: { description?: string } = {}): TLiteral<V> {
  return Type.Union(values.map((value) => Type.Literal(value)), options) as unknown as TLiteral<V>;
}

/** An opaque resource id (UUIDv7 today; clients must not rely on that). */
export const Id = Type.String({ minLength: 1, maxLength: 128, description: 'Opaque id', examples: ['0197a4f0-6c2e-7b3a-9d51-2f8e4c1a9b70'] });

/** ISO-8601 UTC timestamp. */
export const Timestamp = Type.String({ format: 'date-time', examples: ['2026-01-01T12:00:00.000Z'] });

/** Response headers of an answer that names a resource (201, 202): where to GET it. */
export const LocationHeader = {
  location: Type.String({ description: 'Path of the resource this answer names; GET it to follow up', examples: ['/meta-train/0197a4f0-6c2e-7b3a-9d51-2f8e4c1a9b70'] }),
};

/** `:id` path parameter. */
export const IdParams = Type.Object({ id: Id }, { additionalProperties: false });

/** A head version a client names: stored as a 32-bit integer, so a larger one is refused here (400), not by Postgres (500). */
export const HeadVersion = (description: string) => Type.Integer({ minimum: 1, maximum: 2 ** 31 - 1, description });

/** `?limit=&cursor=` of every list; the cursor is what the previous page answered as `nextCursor`. */
export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20, description: 'Items per page (1-100). Default 20.' })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'nextCursor of the previous page', examples: ['MjAyNi0wMS0wMVQxMjowMDowMC4wMDBafDAxOTdhNGYwLTFiMmMtN2QzZS04ZjQwLTVhNmI3YzhkOWUwMQ'] })),
};

/** A page of `item`s, newest first; `examples` are shown in the OpenAPI document. */
export function Page<T extends TSchema>(item: T, options: { examples?: unknown[] } = {}) {
  return Type.Object({
    items: Type.Array(item),
    nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` for the next page; null on the last page' }),
  }, options);
}

const PROBLEM_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid input; `errors` names each bad field',
  401: 'Missing, unknown or revoked API key',
  404: 'No such resource for this tenant',
  409: 'The resource is in a state that does not allow this',
  413: 'Request body larger than MAX_BODY_BYTES',
  415: 'Body is not application/json',
  422: 'Idempotency-Key reused with a different request body',
  429: 'Too many requests for this API key (Retry-After says when to retry), or a per-tenant limit reached',
  503: 'Postgres or Redis is unavailable; retry after Retry-After seconds',
};

/** One error answer: an application/problem+json body (declared so, both for the serialiser and OpenAPI). */
function problemResponse(status: number) {
  return {
    description: PROBLEM_DESCRIPTIONS[status] ?? 'Unexpected error; quote the x-request-id when reporting it',
    content: { [PROBLEM_CONTENT_TYPE]: { schema: Problem } },
  };
}

/**
 * Response entries for the given error statuses (401 and 500 always included), for a route's
 * `response` map.
 */
export function problemResponses(...statuses: number[]): Record<number, ReturnType<typeof problemResponse>> {
  const out: Record<number, ReturnType<typeof problemResponse>> = {};
  for (const status of [...new Set([...statuses, 401, 500])]) out[status] = problemResponse(status);
  return out;
}

/**
 * A 400 naming one field. `path` is the engine's dotted form (`tasks[3].x[0]`, `hyper.metaLr`) or a
 * JSON pointer; the answer always carries a JSON pointer, like schema validation failures do.
 */
export function invalidField(path: string, message: string, where: ValidationIssue['in'] = 'body'): HttpProblem {
  const pointer = path.startsWith('/') || path === '' ? path : `/${path.replace(/\[(\d+)\]/g, '.$1').split('.').filter(Boolean).join('/')}`;
  return new HttpProblem(400, `Invalid request: ${pointer || '(root)'} ${message}`, { errors: [{ path: pointer, message, in: where }] });
}

/** Maps a cursor the repositories refuse to a 400 on the query parameter. */
export async function withCursor<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof InvalidCursorError) throw invalidField('/cursor', error.message, 'query');
    throw error;
  }
}
