/**
 * Authentication on the real database: bearer keys resolve to their tenant, anything else is a 401
 * problem, operations routes stay open, and one tenant never sees another's resources.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey, findKeyOwner, revokeApiKey } from '../../src/db/repositories/api-keys.js';
import { newTenant, SINE, startApi, type TestApi } from './support/api-app.js';

let api: TestApi;

beforeAll(async () => {
  api = await startApi('auth');
});

afterAll(async () => {
  await api?.close();
});

function expect401(response: { statusCode: number; headers: Record<string, unknown>; json(): unknown }) {
  expect(response.statusCode).toBe(401);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(response.headers['www-authenticate']).toBe('Bearer');
  return response.json() as { status: number; detail: string };
}

describe('bearer keys', () => {
  it('stores only a hash of the key and finds its tenant by it', async () => {
    const { key, tenantId, keyId } = await createApiKey(api.db, 'hash-check');
    const row = await api.db.prisma.apiKey.findUniqueOrThrow({ where: { id: keyId } });
    expect(row.keyHash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(row)).not.toContain(key.slice(-20));
    expect(key.startsWith(`${row.prefix}_`)).toBe(true);
    expect(await findKeyOwner(api.db, key)).toMatchObject({ tenantId, keyId });
  });

  it('accepts a valid key and records its use', async () => {
    const tenant = await newTenant(api.db);
    const response = await api.app.inject({ method: 'GET', url: '/task-families', headers: tenant.headers });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ items: [], nextCursor: null });
    await expect.poll(async () => (await api.db.prisma.apiKey.findUniqueOrThrow({ where: { id: tenant.keyId } })).lastUsedAt).not.toBeNull();
  });

  it('answers 401 problem+json without a key, with a malformed header, or an unknown key', async () => {
    expect(expect401(await api.app.inject({ method: 'GET', url: '/task-families' })).detail).toMatch(/Missing Authorization/);
    expect(expect401(await api.app.inject({ method: 'GET', url: '/meta-train', headers: { authorization: 'Basic dXNlcjpwYXNz' } })).detail).toMatch(/Bearer/);
    const { key } = await newTenant(api.db);
    // Right prefix, wrong secret: the hash comparison refuses it.
    const forged = `${key.slice(0, -4)}AAAA`;
    expect(expect401(await api.app.inject({ method: 'GET', url: '/meta-models', headers: { authorization: `Bearer ${forged}` } })).detail).toMatch(/Unknown or revoked/);
    expect401(await api.app.inject({ method: 'GET', url: '/meta-models', headers: { authorization: 'Bearer fa_nothing' } }));
  });

  it('refuses a revoked key', async () => {
    const tenant = await newTenant(api.db);
    expect((await api.app.inject({ method: 'GET', url: '/meta-models', headers: tenant.headers })).statusCode).toBe(200);
    expect(await revokeApiKey(api.db, tenant.keyId)).toBe(true);
    // This process resolved the key a moment ago and trusts it for AUTH_CACHE_TTL_MS unless told it
    // was revoked (predict-cache.test.ts covers the expiry); revoking code tells it so.
    api.app.forgetApiKey(tenant.keyId);
    expect401(await api.app.inject({ method: 'GET', url: '/meta-models', headers: tenant.headers }));
  });

  it('checks the key before validating the body', async () => {
    const response = await api.app.inject({ method: 'POST', url: '/task-families', payload: { bogus: true } });
    expect401(response);
  });
});

describe('open routes', () => {
  it('serves health, the OpenAPI document and the docs without a key', async () => {
    expect((await api.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect((await api.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    expect((await api.app.inject({ method: 'GET', url: '/openapi.json' })).statusCode).toBe(200);
    expect((await api.app.inject({ method: 'GET', url: '/docs/' })).statusCode).toBeLessThan(400);
  });

  it('documents bearer auth on resource routes and none on health', async () => {
    const spec = (await api.app.inject({ method: 'GET', url: '/openapi.json' })).json() as {
      security: unknown[];
      paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown> }>>;
    };
    expect(spec.security).toEqual([{ bearerAuth: [] }]);
    expect(spec.paths['/healthz'].get.security).toEqual([]);
    expect(spec.paths['/task-families'].post.responses).toHaveProperty('401');
  });
});

describe('tenancy', () => {
  it("answers another tenant's family with 404, like a missing one, and lists only the caller's", async () => {
    const alice = await newTenant(api.db);
    const bob = await newTenant(api.db);
    const created = await api.app.inject({ method: 'POST', url: '/task-families', headers: alice.headers, payload: SINE });
    expect(created.statusCode).toBe(201);
    const { id } = created.json() as { id: string };
    const theirs = await api.app.inject({ method: 'GET', url: `/task-families/${id}`, headers: bob.headers });
    const missing = await api.app.inject({ method: 'GET', url: '/task-families/00000000-0000-7000-8000-000000000000', headers: bob.headers });
    expect(theirs.statusCode).toBe(404);
    expect(missing.statusCode).toBe(404);
    expect((theirs.json() as { title: string }).title).toBe((missing.json() as { title: string }).title);
    expect((await api.app.inject({ method: 'GET', url: '/task-families', headers: bob.headers })).json()).toEqual({ items: [], nextCursor: null });
    expect((await api.app.inject({ method: 'GET', url: `/task-families/${id}`, headers: alice.headers })).statusCode).toBe(200);
  });
});
