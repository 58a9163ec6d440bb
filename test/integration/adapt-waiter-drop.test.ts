/**
 * A client that goes away while POST /tasks/:id/adapt waits for its worker stops the wait at once:
 * the process's waiter (and its timer) leave then, not after ADAPT_WAIT_MS. No worker runs here, so
 * without the client going away the wait would last its whole time.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sineTask, storeMetaModel } from './support/adapt-fixtures.js';
import { newTenant, startApi, type TestApi } from './support/api-app.js';

let api: TestApi;
let port: number;
let tenant: Awaited<ReturnType<typeof newTenant>>;
let taskId: string;

beforeAll(async () => {
  api = await startApi('adapt-waiter-drop', { ADAPT_WAIT_MS: '60000' });
  await api.app.listen({ host: '127.0.0.1', port: 0 });
  port = (api.app.server.address() as { port: number }).port;
  tenant = await newTenant(api.db);
  const { metaModelId } = await storeMetaModel(api.db, tenant.tenantId, { hidden: [8] });
  taskId = (await api.app.inject({ method: 'POST', url: '/tasks', headers: tenant.headers, payload: { metaModelId } })).json().id;
});

afterAll(async () => {
  await api?.close();
});

describe('an adapt request whose client goes away', () => {
  it('frees its waiter before the wait would end', async () => {
    const body = JSON.stringify({ support: sineTask(1).support });
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: `/tasks/${taskId}/adapt`, headers: { ...tenant.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
    req.on('error', () => {});
    req.end(body);
    await expect.poll(() => api.app.adaptWaiters.waiters, { timeout: 10_000 }).toBe(1);
    req.destroy();
    await expect.poll(() => api.app.adaptWaiters.waiters, { timeout: 5_000 }).toBe(0);
    expect(api.app.adaptWaiters.size).toBe(0);
  });
});
