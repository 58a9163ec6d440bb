/**
 * The OpenAPI contract: the committed openapi/openapi.json is what the app serves, the committed
 * client types are what openapi-typescript makes of it, and every operation documents what a client
 * needs (operationId, summary, declared tags, examples, every error as problem+json, security).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TAGS } from '../../src/http/plugins/openapi.js';
import { CLIENT_TYPES_PATH, SPEC_PATH, renderClientTypes, renderSpec } from '../../scripts/openapi/render.js';
import { startApi, type TestApi } from './support/api-app.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const METHODS = ['get', 'put', 'post', 'delete', 'patch'];
const STALE = 'is stale: run `npm run openapi` and commit the result';

let api: TestApi;
let served: Json;

beforeAll(async () => {
  api = await startApi('openapi');
  const response = await api.app.inject({ method: 'GET', url: '/openapi.json' });
  expect(response.statusCode).toBe(200);
  served = response.json();
});

afterAll(async () => {
  await api?.close();
});

function operations(doc: Json): { name: string; op: Json }[] {
  return Object.entries(doc.paths as Json).flatMap(([path, item]) =>
    METHODS.filter((method) => item[method]).map((method) => ({ name: `${method.toUpperCase()} ${path}`, op: item[method] as Json })),
  );
}

/** Follows a local `$ref` (`#/components/...`). */
function resolve(doc: Json, node: Json): Json {
  if (typeof node?.$ref !== 'string') return node;
  return node.$ref.slice(2).split('/').reduce((at: Json, key: string) => at[key], doc);
}

const hasExample = (media: Json) => media.example !== undefined || media.examples !== undefined;

describe('the committed contract', () => {
  it('is exactly what the app serves at /openapi.json', () => {
    const committed = readFileSync(SPEC_PATH, 'utf8');
    expect(committed === renderSpec(served), `openapi/openapi.json ${STALE}`).toBe(true);
  });

  it('and the committed client types are what openapi-typescript generates from it', async () => {
    const committed = JSON.parse(readFileSync(SPEC_PATH, 'utf8')) as unknown;
    const generated = await renderClientTypes(committed);
    expect(generated).toBe(await renderClientTypes(committed)); // deterministic
    expect(readFileSync(CLIENT_TYPES_PATH, 'utf8') === generated, `clients/typescript/src/schema.ts ${STALE}`).toBe(true);
  });
});

describe('every operation', () => {
  it('has a unique operationId, a summary and declared tags', () => {
    const declared = new Set(TAGS.map((tag) => tag.name));
    expect(served.tags.map((tag: Json) => tag.name)).toEqual(TAGS.map((tag) => tag.name));
    const ids = new Set<string>();
    for (const { name, op } of operations(served)) {
      expect(op.operationId, name).toMatch(/^[a-z][A-Za-z]+$/);
      expect(ids.has(op.operationId), `${name}: operationId ${op.operationId} is taken`).toBe(false);
      ids.add(op.operationId);
      expect(op.summary, name).toBeTruthy();
      expect(op.tags?.length, `${name} has no tag`).toBeGreaterThan(0);
      for (const tag of op.tags) expect(declared.has(tag), `${name}: tag ${tag} is not declared in TAGS`).toBe(true);
    }
    expect(ids.size).toBeGreaterThanOrEqual(14);
  });

  it('shows an example of its request: body and every parameter', () => {
    for (const { name, op } of operations(served)) {
      for (const [type, media] of Object.entries((op.requestBody?.content ?? {}) as Json)) {
        expect(hasExample(media), `${name}: request ${type} has no example`).toBe(true);
      }
      for (const parameter of op.parameters ?? []) {
        const shown = hasExample(parameter) || parameter.schema?.enum || parameter.schema?.default !== undefined;
        expect(shown, `${name}: parameter ${parameter.name} has no example`).toBeTruthy();
      }
    }
  });

  it('shows an example of every response with a body', () => {
    for (const { name, op } of operations(served)) {
      for (const [status, response] of Object.entries(op.responses as Json)) {
        expect(response.description, `${name} ${status}`).toBeTruthy();
        for (const [type, media] of Object.entries((response.content ?? {}) as Json)) {
          expect(hasExample(media), `${name} ${status} ${type} has no example`).toBe(true);
        }
      }
    }
  });

  it('answers every error as application/problem+json: 500 always; 400 when it takes input; 401 behind a key; 429 and 503 behind a tenant key', () => {
    const problem = served.components.schemas.Problem;
    expect(problem.required).toEqual(expect.arrayContaining(['type', 'title', 'status']));
    for (const { name, op } of operations(served)) {
      const statuses = Object.keys(op.responses).map(Number);
      const isPublic = Array.isArray(op.security) && op.security.length === 0;
      const tenantKey = op.security === undefined;
      const expected = [
        500,
        ...(op.parameters?.length || op.requestBody ? [400] : []),
        ...(isPublic ? [] : [401]),
        ...(tenantKey ? [429, 503] : []),
        ...(op.requestBody ? [413, 415] : []),
      ];
      expect(statuses, name).toEqual(expect.arrayContaining(expected));
      expect(statuses.some((status) => status >= 200 && status < 300), `${name} has no success answer`).toBe(true);
      for (const status of statuses.filter((s) => s >= 400)) {
        const content = op.responses[status].content ?? {};
        expect(Object.keys(content), `${name} ${status}`).toEqual(['application/problem+json']);
        const schema = resolve(served, content['application/problem+json'].schema);
        expect(schema.required, `${name} ${status} is not a problem`).toEqual(expect.arrayContaining(['type', 'title', 'status']));
      }
    }
  });

  it("needs a tenant's bearer key, except the probes (none) and /metrics (an operator key)", () => {
    expect(served.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(served.security).toEqual([{ bearerAuth: [] }]);
    const exceptions: Record<string, unknown> = { 'GET /healthz': [], 'GET /readyz': [], 'GET /metrics': [{ operatorKey: [] }] };
    for (const { name, op } of operations(served)) expect(op.security, name).toEqual(exceptions[name]);
  });
});

describe('what the contract promises holds', () => {
  it('an authenticated route without a key answers the documented 401 problem', async () => {
    const response = await api.app.inject({ method: 'GET', url: '/meta-train' });
    const documented = served.paths['/meta-train'].get.responses['401'].content['application/problem+json'].example;
    expect(response.statusCode).toBe(401);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(response.json()).toMatchObject({ type: documented.type, title: documented.title, status: 401, instance: '/meta-train' });
  });

  it("every documented 400 example is the API's own answer to that mistake", async () => {
    const { createApiKey } = await import('../../src/db/repositories/api-keys.js');
    const { key } = await createApiKey(api.db, 'openapi-400');
    let checked = 0;
    for (const { name, op } of operations(served)) {
      const example = op.responses['400']?.content['application/problem+json'].example;
      if (!example) continue;
      const [issue] = example.errors as { path: string; in: string }[];
      const field = issue.path.slice(1);
      const bad = (p: Json) => p.in === issue.in && p.name === field;
      // The request the example describes: every other part as its own example shows it.
      const path = name.split(' ')[1].replace(/\{(\w+)\}/g, (_, param: string) => {
        const parameter = op.parameters.find((p: Json) => p.in === 'path' && p.name === param);
        return bad(parameter) ? 'a'.repeat(parameter.schema.maxLength + 1) : encodeURIComponent(parameter.example);
      });
      const query = new URLSearchParams();
      for (const p of op.parameters ?? []) {
        if (p.in !== 'query') continue;
        if (bad(p)) {
          if (p.schema.maximum !== undefined) query.set(p.name, String(p.schema.maximum + 1));
        } else if (p.required) {
          for (const value of [p.example].flat()) query.append(p.name, String(value));
        }
      }
      const media = op.requestBody?.content['application/json'];
      const body = media ? structuredClone(media.example ?? media.examples.example1.value) : undefined;
      if (body && issue.in === 'body') delete body[field];
      const response = await api.app.inject({
        method: name.split(' ')[0] as 'GET',
        url: `${path}${query.size ? `?${query}` : ''}`,
        headers: { authorization: `Bearer ${key}` },
        ...(body ? { payload: body } : {}),
      });
      const { instance: _answered, ...answer } = response.json();
      const { instance: _documented, ...documented } = example;
      expect(answer, name).toEqual(documented);
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(15);
  });
});
