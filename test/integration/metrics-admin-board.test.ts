/**
 * The operators' queue board at /admin/queues: absent without ADMIN_API_KEY; with it, 401 (asking
 * for HTTP Basic) until the key is presented as a Basic password or a Bearer token, then the board
 * and its JSON API over this app's queues.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type TestApi } from './support/api-app.js';

const ADMIN_KEY = `admin-${randomUUID()}`;
const basic = (password: string) => `Basic ${Buffer.from(`operator:${password}`).toString('base64')}`;

let withBoard: TestApi;
let withoutBoard: TestApi;

beforeAll(async () => {
  withBoard = await startApi('board', { ADMIN_API_KEY: ADMIN_KEY });
  withoutBoard = await startApi('no-board');
});

afterAll(async () => {
  await withBoard?.close();
  await withoutBoard?.close();
});

describe('queue board', () => {
  it('is not served when ADMIN_API_KEY is unset', async () => {
    const response = await withoutBoard.app.inject({ method: 'GET', url: '/admin/queues', headers: { authorization: basic('anything') } });
    expect(response.statusCode).toBe(404);
  });

  it('asks for the admin key and refuses a wrong one', async () => {
    for (const headers of [{}, { authorization: basic(`${ADMIN_KEY}x`) }, { authorization: `Bearer ${ADMIN_KEY.slice(1)}` }]) {
      const response = await withBoard.app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers });
      expect(response.statusCode).toBe(401);
      expect(response.headers['www-authenticate']).toMatch(/^Basic realm="fastadapt admin"/);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
    }
  });

  it('serves the board to a browser with the key as Basic password, and its API to a Bearer token', async () => {
    const page = await withBoard.app.inject({ method: 'GET', url: '/admin/queues', headers: { authorization: basic(ADMIN_KEY) } });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('<title>fastadapt queues</title>');

    await withBoard.queues['meta-train'].add('meta-train', { jobId: `board-${randomUUID()}` }, { jobId: `board-${randomUUID()}` });
    const response = await withBoard.app.inject({ method: 'GET', url: '/admin/queues/api/queues?activeQueue=meta-train', headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    expect(response.statusCode).toBe(200);
    const { queues } = response.json() as { queues: { name: string; counts: Record<string, number> }[] };
    expect(queues.map((q) => q.name).sort()).toEqual(['adapt', 'evaluate', 'meta-train']);
    expect(queues.find((q) => q.name === 'meta-train')?.counts.waiting).toBe(1);
  });

  it('keeps the board out of the OpenAPI document', async () => {
    const spec = (await withBoard.app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, unknown> };
    expect(Object.keys(spec.paths).filter((path) => path.startsWith('/admin') || path === '/' || path.startsWith('/dashboard'))).toEqual([]);
    expect(spec.paths['/metrics']).toBeDefined();
  });
});
