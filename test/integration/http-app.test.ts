/**
 * The HTTP frame on real Postgres and Redis: problem+json for every failure, request ids, health,
 * readiness, OpenAPI. No resource route exists yet, so validation is proven on a route the test
 * registers with a schema shaped like the contract's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Type } from 'typebox';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createDb, type Db } from '../../src/db/client.js';
import { buildApp, type App } from '../../src/http/app.js';
import { HttpProblem } from '../../src/http/problem.js';
import { closeQueues, createQueues, type Queues } from '../../src/jobs/queues.js';
import { createProbeRedis } from '../../src/jobs/redis.js';
import { activeBackend, initBackend } from '../../src/meta/backend.js';
import { SHARED_REDIS_URL, TEST_DATABASE_URL, removePrefix, testConfig, uniquePrefix } from './support/services.js';

const Adapt = Type.Object(
  {
    support: Type.Object({ x: Type.Array(Type.Array(Type.Number())), y: Type.Array(Type.Number()) }, { additionalProperties: false }),
    steps: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 10 })),
    algorithm: Type.Optional(Type.Union([Type.Literal('maml'), Type.Literal('reptile')])),
  },
  { additionalProperties: false },
);

let app: App;
let db: Db;
let redis: Redis;
let probe: Redis;
let queues: Queues;
const prefix = uniquePrefix('http');

beforeAll(async () => {
  await initBackend('cpu');
  const logger = pino({ level: 'silent' });
  const config = testConfig({ MAX_BODY_BYTES: '4096' });
  db = createDb(TEST_DATABASE_URL);
  redis = new Redis(SHARED_REDIS_URL, { maxRetriesPerRequest: null });
  probe = createProbeRedis(SHARED_REDIS_URL, logger);
  queues = createQueues({ connection: redis, prefix, logger });
  app = await buildApp({ config, db, queues, probes: { postgres: () => db.ping(), redis: () => probe.ping(), backend: activeBackend } });
  // The probe refuses commands until connected (by design: /readyz then says redis is not ready yet).
  if (probe.status !== 'ready') await new Promise((resolve) => probe.once('ready', resolve));

  // Test-only routes: the contract's first resources arrive with later issues.
  app.post('/test/tasks/:id/adapt', {
    schema: { params: Type.Object({ id: Type.String({ minLength: 3 }) }), body: Adapt },
  }, async (request) => ({ id: request.params.id, steps: request.body.steps }));
  app.get('/test/predict', {
    schema: { querystring: Type.Object({ x: Type.Array(Type.Number(), { minItems: 1 }), limit: Type.Optional(Type.Integer()) }) },
  }, async (request) => ({ x: request.query.x }));
  app.get('/test/boom', async () => {
    throw new Error('connection string postgres://secret@db leaked');
  });
  app.get('/test/conflict', async () => {
    throw new HttpProblem(409, 'Task was never adapted', { type: 'urn:fastadapt:problem:not-adapted' });
  });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await closeQueues(queues);
  await Promise.all([redis.quit(), probe.quit(), db.close()]);
  await removePrefix(SHARED_REDIS_URL, prefix);
});

function expectProblem(response: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, status: number) {
  expect(response.statusCode).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = response.json() as Record<string, unknown>;
  expect(body).toMatchObject({ status, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
  return body;
}

describe('problem+json for every failure', () => {
  it('answers an unknown route with 404', async () => {
    const response = await app.inject({ method: 'GET', url: '/nope?token=x' });
    const body = expectProblem(response, 404);
    expect(body).toMatchObject({ title: 'Not Found', instance: '/nope', detail: 'No route GET /nope' });
  });

  it('names each bad body field by its JSON pointer path', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/test/tasks/task-1/adapt',
      payload: { support: { x: [[1], ['a']] }, steps: 0, algorithm: 'sgd', extra: true },
    });
    const body = expectProblem(response, 400);
    expect(body.errors).toEqual(expect.arrayContaining([
      { path: '/support/x/1/0', message: 'must be number', in: 'body' },
      { path: '/support/y', message: 'is required', in: 'body' },
      { path: '/steps', message: 'must be >= 1', in: 'body' },
      { path: '/algorithm', message: 'must be one of maml|reptile', in: 'body' },
      { path: '/extra', message: 'is not allowed', in: 'body' },
    ]));
    expect(body.errors).toHaveLength(5);
  });

  it('does not coerce JSON body types', async () => {
    const response = await app.inject({ method: 'POST', url: '/test/tasks/task-1/adapt', payload: { support: { x: [[1]], y: ['1'] } } });
    expect(expectProblem(response, 400).errors).toEqual([{ path: '/support/y/0', message: 'must be number', in: 'body' }]);
  });

  it('fills declared defaults into a valid body', async () => {
    const response = await app.inject({ method: 'POST', url: '/test/tasks/task-1/adapt', payload: { support: { x: [[1]], y: [2] } } });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ id: 'task-1', steps: 10 });
  });

  it('validates path parameters and query strings, converting query text to numbers', async () => {
    const params = await app.inject({ method: 'POST', url: '/test/tasks/ab/adapt', payload: { support: { x: [], y: [] } } });
    expect(expectProblem(params, 400).errors).toEqual([{ path: '/id', message: expect.stringMatching(/3/), in: 'path' }]);

    const good = await app.inject({ method: 'GET', url: '/test/predict?x=0.5&x=1.25' });
    expect(good.json()).toEqual({ x: [0.5, 1.25] });
    const bad = await app.inject({ method: 'GET', url: '/test/predict?x=abc&limit=2.5' });
    const errors = expectProblem(bad, 400).errors as { path: string; in: string }[];
    expect(errors.map((e) => [e.path, e.in])).toEqual(expect.arrayContaining([['/x/0', 'query'], ['/limit', 'query']]));
  });

  it('answers a body that is not JSON with 415 and malformed JSON with 400', async () => {
    const text = await app.inject({ method: 'POST', url: '/test/tasks/task-1/adapt', headers: { 'content-type': 'text/plain' }, payload: 'hi' });
    expectProblem(text, 415);
    const broken = await app.inject({ method: 'POST', url: '/test/tasks/task-1/adapt', headers: { 'content-type': 'application/json' }, payload: '{"support":' });
    expectProblem(broken, 400);
  });

  it('answers a body over MAX_BODY_BYTES with 413', async () => {
    const x = Array.from({ length: 1000 }, (_, i) => [i]);
    const response = await app.inject({ method: 'POST', url: '/test/tasks/task-1/adapt', payload: { support: { x, y: x.map(() => 0) } } });
    expectProblem(response, 413);
  });

  it('hides the internals of a 5xx behind the request id', async () => {
    const response = await app.inject({ method: 'GET', url: '/test/boom', headers: { 'x-request-id': 'req-boom-1' } });
    const body = expectProblem(response, 500);
    expect(JSON.stringify(body)).not.toMatch(/secret|postgres/);
    expect(body.detail).toContain('req-boom-1');
  });

  it('lets a route throw a problem of its own', async () => {
    const body = expectProblem(await app.inject({ method: 'GET', url: '/test/conflict' }), 409);
    expect(body).toMatchObject({ type: 'urn:fastadapt:problem:not-adapted', title: 'Conflict', detail: 'Task was never adapted' });
  });
});

describe('request ids', () => {
  it('echoes a caller-supplied x-request-id', async () => {
    const response = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'abc-123' } });
    expect(response.headers['x-request-id']).toBe('abc-123');
  });

  it('generates one when absent or unsafe to log', async () => {
    const none = await app.inject({ method: 'GET', url: '/nope' });
    expect(none.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const unsafe = await app.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'a b\u0007c' } });
    expect(unsafe.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('health', () => {
  it('GET /healthz answers while the process is up', async () => {
    const response = await app.inject({ method: 'GET', url: '/healthz' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok' });
  });

  it('GET /readyz checks Postgres and Redis and names the backend', async () => {
    const response = await app.inject({ method: 'GET', url: '/readyz' });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toMatchObject({
      status: 'ready',
      backend: 'cpu',
      checks: { postgres: { status: 'up' }, redis: { status: 'up' }, tfjs: { status: 'up' } },
    });
  });
});

describe('OpenAPI', () => {
  it('serves a 3.1 document with the bearer scheme, public operations exempt', async () => {
    const response = await app.inject({ method: 'GET', url: '/openapi.json' });
    expect(response.statusCode).toBe(200);
    const doc = response.json();
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
    expect(doc.paths['/readyz'].get.security).toEqual([]);
    expect(Object.keys(doc.paths['/readyz'].get.responses)).toEqual(['200', '500', '503']);
    expect(doc.paths['/openapi.json']).toBeUndefined();
  });

  it('serves Swagger UI at /docs', async () => {
    const response = await app.inject({ method: 'GET', url: '/docs/' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/text\/html/);
  });
});
