/**
 * Pub/sub does not queue: an invalidation published while an API process's subscription is down is
 * lost. When the subscription comes back, the process drops every cached head (the next prediction
 * reads the latest version from Postgres), and waiting adaptations are answered again.
 * Runs on a private redis-server, whose pub/sub clients the test may disconnect.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/meta/index.js';
import { sineTask, storeMetaModel } from './support/adapt-fixtures.js';
import { newTenant, startApi, startWorker, type TestApi } from './support/api-app.js';
import { freePort, PrivateRedis } from './support/services.js';
import { waitUntil } from './support/training-fixtures.js';

let redis: PrivateRedis;
let api: TestApi;
let worker: Awaited<ReturnType<typeof startWorker>>;
let tenant: Awaited<ReturnType<typeof newTenant>>;

beforeAll(async () => {
  await initBackend('cpu');
  redis = new PrivateRedis(await freePort());
  await redis.start();
  api = await startApi('adapted-reconnect', {}, redis.url);
  worker = await startWorker(api);
  tenant = await newTenant(api.db);
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
  await redis?.stop();
});

async function adapt(taskId: string, seed: number): Promise<number> {
  const response = await api.app.inject({ method: 'POST', url: `/tasks/${taskId}/adapt`, headers: tenant.headers, payload: { support: sineTask(seed).support, steps: 3 } });
  expect(response.statusCode, response.body).toBe(200);
  return response.json().headVersion;
}

describe('the adapted subscription of an API process', () => {
  it('drops every cached head when it reconnects, and answers waiting adaptations again', async () => {
    const { metaModelId } = await storeMetaModel(api.db, tenant.tenantId, { hidden: [16, 16] });
    const taskId = (await api.app.inject({ method: 'POST', url: '/tasks', headers: tenant.headers, payload: { metaModelId } })).json().id;
    expect(await adapt(taskId, 1)).toBe(1);
    const predict = () => api.app.inject({ method: 'POST', url: `/tasks/${taskId}/predict`, headers: tenant.headers, payload: { x: [[0.5]] } });
    expect((await predict()).json().headVersion).toBe(1);
    expect(api.app.predictCache.heldVersion(taskId)).toBe(1);

    // Disconnect every pub/sub client of this private server: the API's subscription reconnects.
    const admin = new Redis(redis.url);
    try {
      expect(Number(await admin.client('KILL', 'TYPE', 'pubsub'))).toBeGreaterThan(0);
    } finally {
      admin.disconnect();
    }
    await waitUntil(async () => api.app.predictCache.heldVersion(taskId) === undefined, 'the cached head to be dropped', 10_000);

    // Resubscribed: the next adaptation's outcome reaches its waiting request, and predict serves it.
    expect(await adapt(taskId, 2)).toBe(2);
    expect((await predict()).json().headVersion).toBe(2);
  });
});
