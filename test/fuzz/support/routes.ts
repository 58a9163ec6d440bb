/**
 * Every route the app serves, read from the app itself: Fastify's route tree (all routes, documented
 * or not) joined with the OpenAPI document (the schemas that let the fuzzer build near-valid input).
 * A route added later is picked up here without touching the fuzz tests.
 */
import type { FastifyInstance } from 'fastify';

/** A JSON Schema node as the OpenAPI document carries it. */
export type JsonSchema = Record<string, unknown>;

export interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required?: boolean;
  schema?: JsonSchema;
}

export interface FuzzRoute {
  method: string;
  /** Fastify's form: `/tasks/:id/adapt`, `/docs/*`. */
  url: string;
  /** Path parameter names in order (`*` for a wildcard). */
  pathParams: string[];
  /** The OpenAPI operation, when the route is documented. */
  operation?: { parameters: Parameter[]; body?: JsonSchema; consumes?: string[] };
}

/**
 * Parses `printRoutes({ commonPrefix: false })`: one line per node, four columns of tree drawing per
 * level, the node's path segment, then its methods in parentheses. A child's path continues its
 * parent's.
 */
export function registeredRoutes(app: FastifyInstance): { method: string; url: string }[] {
  const lines = app.printRoutes({ commonPrefix: false }).split('\n').filter((line) => line.trim() !== '');
  const stack: string[] = [];
  const routes: { method: string; url: string }[] = [];
  for (const line of lines) {
    const match = /^((?:[│ ] {3})*)[├└]── (.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!match) throw new Error(`cannot read route tree line ${JSON.stringify(line)}`);
    const depth = match[1].length / 4;
    stack.length = depth;
    const url = `${stack.at(-1) ?? ''}${match[2]}`;
    stack.push(url);
    for (const method of (match[3] ?? '').split(',').map((m) => m.trim()).filter(Boolean)) {
      // HEAD is Fastify's automatic twin of each GET: fuzzing the GET covers its handler.
      if (method !== 'HEAD') routes.push({ method, url });
    }
  }
  return routes;
}

function resolve(document: JsonSchema, schema: unknown, depth = 0): JsonSchema | undefined {
  if (schema === null || typeof schema !== 'object') return undefined;
  const ref = (schema as { $ref?: unknown }).$ref;
  if (typeof ref === 'string' && ref.startsWith('#/') && depth < 20) {
    const target = ref.slice(2).split('/').reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key.replace(/~1/g, '/').replace(/~0/g, '~')], document);
    return resolve(document, target, depth + 1);
  }
  return schema as JsonSchema;
}

/** Inlines `#/...` references (cycles stop at a depth; the fuzzer never needs more). */
export function dereference(document: JsonSchema, schema: unknown, depth = 0): JsonSchema | undefined {
  const node = resolve(document, schema);
  if (!node || depth > 12) return node;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'properties' && value && typeof value === 'object') {
      out.properties = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, dereference(document, v, depth + 1)]));
    } else if ((key === 'items' || key === 'additionalProperties' || key === 'not') && value && typeof value === 'object') {
      out[key] = dereference(document, value, depth + 1);
    } else if ((key === 'anyOf' || key === 'oneOf' || key === 'allOf') && Array.isArray(value)) {
      out[key] = value.map((v) => dereference(document, v, depth + 1));
    } else {
      out[key] = value;
    }
  }
  return out;
}

const toOpenApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/** Every route with its OpenAPI operation (if any), in the route tree's order. */
export function fuzzRoutes(app: FastifyInstance & { swagger(): unknown }): FuzzRoute[] {
  const document = app.swagger() as JsonSchema & { paths?: Record<string, Record<string, JsonSchema>> };
  return registeredRoutes(app).map(({ method, url }) => {
    const pathParams = [...url.matchAll(/:([A-Za-z0-9_]+)|\*/g)].map((m) => m[1] ?? '*');
    const op = document.paths?.[toOpenApiPath(url)]?.[method.toLowerCase()];
    if (!op) return { method, url, pathParams };
    const parameters = ((op.parameters as unknown[] | undefined) ?? [])
      .map((p) => resolve(document, p) as unknown as Parameter)
      .map((p) => ({ ...p, schema: dereference(document, p.schema) }));
    const content = (resolve(document, op.requestBody) as { content?: Record<string, { schema?: unknown }> } | undefined)?.content;
    const body = dereference(document, content?.['application/json']?.schema);
    return { method, url, pathParams, operation: { parameters, body, consumes: Object.keys(content ?? {}) } };
  });
}
