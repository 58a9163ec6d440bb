// scripts/setup.mjs as `npm test` and `npm run demo` run it: a child process with its own environment.
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, TEST_DATABASE_URL } from './support/services.js';

function setup(env: Record<string, string>, args: string[] = []) {
  const result = spawnSync(process.execPath, ['scripts/setup.mjs', ...args], {
    encoding: 'utf8',
    env: { ...process.env, TEST_DATABASE_URL, ...env },
    timeout: 60_000,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('scripts/setup.mjs', () => {
  let privateRedisPort: number | undefined;

  afterEach(async () => {
    if (privateRedisPort === undefined) return;
    const redis = new Redis({ port: privateRedisPort, lazyConnect: true, maxRetriesPerRequest: 0 });
    await redis.connect();
    await redis.shutdown('NOSAVE').catch(() => undefined); // the connection drops as the server exits
    redis.disconnect();
    privateRedisPort = undefined;
  });

  it('finds everything in place on a prepared checkout, one line a step, quickly', () => {
    const started = Date.now();
    const { status, output } = setup({}, ['--test']);
    expect(status, output).toBe(0);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(output).toMatch(/^setup: deps +node_modules matches package-lock\.json$/m);
    expect(output).toMatch(/^setup: prisma +client is current$/m);
    const testDatabase = new URL(TEST_DATABASE_URL).pathname.slice(1);
    expect(output).toMatch(new RegExp(`^setup: migrate +${testDatabase} is up to date`, 'm'));
    expect(output).toMatch(/^setup: ready /m);
  });

  it('starts a local redis-server that does not answer yet', async () => {
    privateRedisPort = await freePort();
    const { status, output } = setup({ REDIS_URL: `redis://127.0.0.1:${privateRedisPort}` });
    expect(status, output).toBe(0);
    expect(output).toMatch(new RegExp(`^setup: redis +started, answers at 127\\.0\\.0\\.1:${privateRedisPort}$`, 'm'));
    const redis = new Redis({ port: privateRedisPort, lazyConnect: true });
    await redis.connect();
    expect(await redis.ping()).toBe('PONG');
    redis.disconnect();
  });

  it('stops with how to fix it when a remote Postgres does not answer', () => {
    // 192.0.2.0/24 is reserved for documentation: nothing ever answers there.
    const { status, output } = setup({ DATABASE_URL: 'postgresql://postgres@192.0.2.1:5432/fastadapt' });
    expect(status).toBe(1);
    expect(output).toMatch(/setup: FAILED +postgres does not answer at 192\.0\.2\.1:5432: .*docker compose up -d postgres redis/);
  });
});
