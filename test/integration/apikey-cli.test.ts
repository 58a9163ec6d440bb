/**
 * `npm run apikey` as an operator runs it (a real process on the test database): a created key is
 * printed once and works, only its hash is stored, a second key for the same tenant name joins that
 * tenant, list shows keys without secrets, revoke by prefix or id locks the key out of a running API
 * at once (announced on Redis, though the API caches resolved keys for a minute), and mistakes exit non-zero with
 * a reason.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type TestApi } from './support/api-app.js';
import { TEST_DATABASE_URL } from './support/services.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function apikey(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'scripts/apikey.ts', ...args], {
      // The API's queue prefix: revocations are announced on `<prefix>:api-keys:revoked`.
      env: { ...process.env, DATABASE_URL: TEST_DATABASE_URL, QUEUE_PREFIX: api.prefix },
    }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

let api: TestApi;
const tenantName = `cli-${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  api = await startApi('apikey-cli', { AUTH_CACHE_TTL_MS: String(CACHE_TTL_MS) });
});

afterAll(async () => {
  await api.db.prisma.tenant.deleteMany({ where: { name: tenantName } });
  await api?.close();
});

/**
 * The API trusts a resolved key this long: far longer than the test waits, so a key refused at once
 * was dropped by the revocation announced on Redis, not by the cache expiring.
 */
const CACHE_TTL_MS = 60_000;

/** Polls until the key is refused; fails if that takes more than a moment. */
async function refusedAtOnce(key: string): Promise<void> {
  const started = Date.now();
  while ((await familiesWith(key)).statusCode !== 401) {
    if (Date.now() - started > 2_000) throw new Error(`key still accepted ${Date.now() - started} ms after revocation`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const KEY = /^fa_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43}$/;
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
/** The secret part of `fa_<prefix>_<secret>`; base64url, so it may itself hold '_'. */
const secretOf = (key: string) => key.split('_').slice(2).join('_');

const familiesWith = (key: string) => api.app.inject({ method: 'GET', url: '/task-families', headers: bearer(key) });

describe('npm run apikey', () => {
  it('creates, lists and revokes keys', async () => {
    const first = await apikey('create', '--tenant', tenantName, '--name', 'ci');
    expect(first.code, first.stderr).toBe(0);
    // stdout is the key alone, so `KEY=$(npm run -s apikey -- create ...)` captures it.
    const key = first.stdout.trim();
    expect(key).toMatch(KEY);
    expect(first.stderr).toContain('shown only this once');
    expect(first.stderr).not.toContain(key);

    const [row] = await api.db.prisma.apiKey.findMany({ where: { tenant: { name: tenantName } } });
    expect(row.keyHash).toMatch(/^[0-9a-f]{64}$/);
    expect(secretOf(key)).toHaveLength(43);
    expect(JSON.stringify(row)).not.toContain(secretOf(key));
    expect(row.name).toBe('ci');
    expect((await familiesWith(key)).statusCode).toBe(200);

    // Another key for the same tenant name joins that tenant (rotation), it does not make a second one.
    const second = await apikey('create', '--tenant', tenantName);
    expect(second.code, second.stderr).toBe(0);
    const secondKey = second.stdout.trim();
    expect(secondKey).toMatch(KEY);
    expect(secondKey).not.toBe(key);
    expect(await api.db.prisma.tenant.count({ where: { name: tenantName } })).toBe(1);

    const listed = await apikey('list', '--tenant', tenantName, '--json');
    expect(listed.code, listed.stderr).toBe(0);
    const keys = JSON.parse(listed.stdout) as { id: string; prefix: string; tenantName: string; revokedAt: string | null }[];
    expect(keys.map((k) => k.prefix)).toEqual([key, secondKey].map((k) => k.split('_').slice(0, 2).join('_')));
    expect(keys.every((k) => k.tenantName === tenantName && k.revokedAt === null)).toBe(true);
    expect(listed.stdout).not.toContain(secretOf(key));
    expect(listed.stdout).not.toContain(row.keyHash);

    const table = await apikey('list', '--tenant', tenantName);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+PREFIX\s+TENANT/);
    expect(table.stdout).toContain(keys[0].prefix);

    // Revoke by prefix: that key is refused from now on, the tenant's other key still works.
    const revoked = await apikey('revoke', keys[0].prefix);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stderr).toContain(`revoked key ${keys[0].id}`);
    expect(revoked.stderr).toContain('1 running API process(es) dropped it at once');
    await refusedAtOnce(key);
    expect((await familiesWith(secondKey)).statusCode).toBe(200);

    const again = await apikey('revoke', keys[0].id);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('already revoked');

    // Revoke by id.
    expect((await apikey('revoke', keys[1].id)).code).toBe(0);
    await refusedAtOnce(secondKey);
    const after = JSON.parse((await apikey('list', '--tenant', tenantName, '--json')).stdout) as { revokedAt: string | null }[];
    expect(after.every((k) => k.revokedAt !== null)).toBe(true);
  });

  it('exits 1 for an unknown key or tenant and 2 for a usage mistake', async () => {
    const [unknownKey, unknownTenant, noTenant, badOption, badCommand] = await Promise.all([
      apikey('revoke', 'fa_AAAAAAAAAAAA'),
      apikey('create', '--tenant-id', randomUUID()),
      apikey('create'),
      apikey('create', '--tenant', 'x', '--bogus'),
      apikey('rotate'),
    ]);
    expect(unknownKey).toMatchObject({ code: 1, stdout: '' });
    expect(unknownKey.stderr).toContain('no API key');
    expect(unknownTenant).toMatchObject({ code: 1, stdout: '' });
    expect(unknownTenant.stderr).toContain('no tenant with id');
    expect(noTenant).toMatchObject({ code: 2, stdout: '' });
    expect(noTenant.stderr).toContain('exactly one of --tenant NAME and --tenant-id ID');
    expect(badOption.code).toBe(2);
    expect(badOption.stderr).toContain("'--bogus'");
    expect(badCommand.code).toBe(2);
    expect(badCommand.stderr).toContain('unknown command "rotate"');
  });
});
