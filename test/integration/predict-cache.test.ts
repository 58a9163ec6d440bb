/**
 * The predict cache across processes: a head cached by one API process is replaced as soon as another
 * process's adaptation lands (the `<prefix>:adapted` message, not the entry's age); a version written
 * without a message is not seen until one arrives. API keys are cached for AUTH_CACHE_TTL_MS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { revokeApiKey } from '../../src/db/repositories/api-keys.js';
import { publishAdapted } from '../../src/jobs/adapted.js';
import { decodeParams, encodeParams, initBackend } from '../../src/meta/index.js';
import { sineTask, storeMetaModel } from './support/adapt-fixtures.js';
import { newTenant, startApi, startWorker, type TestApi } from './support/api-app.js';
import { freePort, TEST_DATABASE_URL, waitForPort } from './support/services.js';
import { waitUntil } from './support/training-fixtures.js';

let api: TestApi;
let worker: Awaited<ReturnType<typeof startWorker>>;
let tenant: Awaited<ReturnType<typeof newTenant>>;
let metaModelId: string;

beforeAll(async () => {
  await initBackend('cpu');
  api = await startApi('predict-cache');
  worker = await startWorker(api);
  tenant = await newTenant(api.db);
  metaModelId = (await storeMetaModel(api.db, tenant.tenantId, { hidden: [16, 16] })).metaModelId;
});

afterAll(async () => {
  await worker?.close();
  await api?.close();
});

async function newTask(): Promise<string> {
  return (await api.app.inject({ method: 'POST', url: '/tasks', headers: tenant.headers, payload: { metaModelId } })).json().id;
}

async function adapt(taskId: string, seed: number): Promise<number> {
  const response = await api.app.inject({ method: 'POST', url: `/tasks/${taskId}/adapt`, headers: tenant.headers, payload: { support: sineTask(seed, 1 + seed % 4).support, steps: 3 } });
  expect(response.statusCode, response.body).toBe(200);
  return response.json().headVersion;
}

/** `node --import tsx src/main.ts --role api` on the test database and this test's queue prefix. */
async function apiProcess(): Promise<{ url: string; child: ChildProcess; output: () => string }> {
  const port = await freePort();
  let output = '';
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--role', 'api'], {
    env: { ...process.env, DATABASE_URL: TEST_DATABASE_URL, REDIS_URL: api.redisUrl, QUEUE_PREFIX: api.prefix, HOST: '127.0.0.1', PORT: String(port), TFJS_BACKEND: 'cpu', LOG_LEVEL: 'warn', RATE_LIMIT_MAX: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  await waitForPort(port, 60_000);
  return { url: `http://127.0.0.1:${port}`, child, output: () => output };
}

describe('across two API processes', () => {
  it('a process serving a cached head answers the new version once another process adapted the task', async () => {
    const other = await apiProcess();
    try {
      const taskId = await newTask();
      await adapt(taskId, 1);
      const ask = async () => {
        const response = await fetch(`${other.url}/predict?taskId=${taskId}&x=0.5&x=2`, { headers: tenant.headers });
        expect(response.status, other.output()).toBe(200);
        return (await response.json()) as { headVersion: number; predictions: number[] };
      };
      const first = await ask();
      expect(first.headVersion).toBe(1);
      expect((await ask()).headVersion).toBe(1); // now from the other process's cache

      expect(await adapt(taskId, 2)).toBe(2); // through this process's app and worker
      // Within seconds, not the cache entry's 60 s expiry: the message replaced it.
      const second = await waitUntil(async () => {
        const answer = await ask();
        return answer.headVersion === 2 ? answer : undefined;
      }, 'the other process to serve version 2', 5_000, 20);
      expect(second.predictions).not.toEqual(first.predictions);
    } finally {
      const exited = new Promise((resolve) => other.child.once('exit', resolve));
      other.child.kill('SIGTERM');
      await exited;
    }
  });
});

describe('invalidation is by message', () => {
  it('keeps serving the cached version until the adapted message for a newer one arrives', async () => {
    const taskId = await newTask();
    await adapt(taskId, 3);
    const url = `/predict?taskId=${taskId}&x=0.5`;
    const before = (await api.app.inject({ method: 'GET', url, headers: tenant.headers })).json();
    expect(before.headVersion).toBe(1);

    // Version 2 written straight to Postgres, with no message: head.bias + 10 moves every prediction by 10.
    const head = await api.db.prisma.adaptedHead.findUniqueOrThrow({ where: { taskId_version: { taskId, version: 1 } } });
    const params = decodeParams(head.params);
    params['head.bias'].data[0] += 10;
    await api.db.prisma.$transaction([
      api.db.prisma.adaptedHead.create({ data: { ...head, version: 2, params: new Uint8Array(encodeParams(params)), createdAt: undefined } }),
      api.db.prisma.task.update({ where: { id: taskId }, data: { headVersion: 2 } }),
    ]);
    expect((await api.app.inject({ method: 'GET', url, headers: tenant.headers })).json()).toEqual(before);

    const message = { adaptationId: 'manual', taskId, tenantId: tenant.tenantId, headVersion: 2, status: 'succeeded' as const, steps: 3, durationMs: 1, supportLoss: { before: 1, after: 0.5, trace: [1, 0.7, 0.6, 0.5], bestStep: 3, diverged: false } };
    expect(await publishAdapted(api.redis, api.prefix, message)).toBeGreaterThanOrEqual(1);
    const after = await waitUntil(async () => {
      const answer = (await api.app.inject({ method: 'GET', url, headers: tenant.headers })).json();
      return answer.headVersion === 2 ? answer : undefined;
    }, 'version 2 to be served', 5_000, 10);
    expect(after.predictions[0]).toBeCloseTo(before.predictions[0] + 10, 4);

    // A message about an older version leaves the newer cached head alone.
    await publishAdapted(api.redis, api.prefix, { ...message, headVersion: 1 });
    await new Promise((r) => setTimeout(r, 100));
    expect(api.app.predictCache.heldVersion(taskId)).toBe(2);
  });
});

describe('API keys', () => {
  it('are trusted for AUTH_CACHE_TTL_MS after a lookup, then checked again', async () => {
    const short = await startApi('auth-ttl', { AUTH_CACHE_TTL_MS: '400' });
    try {
      const owner = await newTenant(short.db);
      const get = () => short.app.inject({ method: 'GET', url: '/tasks', headers: owner.headers });
      expect((await get()).statusCode).toBe(200);
      await revokeApiKey(short.db, owner.keyId);
      // Within the TTL the cached key still answers (no database round trip)...
      expect((await get()).statusCode).toBe(200);
      // ...and once it has passed, the revocation is seen.
      await new Promise((r) => setTimeout(r, 450));
      expect((await get()).statusCode).toBe(401);
    } finally {
      await short.close();
    }
  });
});
