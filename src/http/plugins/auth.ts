/**
 * Authentication: `Authorization: Bearer <api key>` names the tenant every resource route works for
 * (`request.tenant`). Routes opt in by living in a scope that adds `app.authenticate` as an
 * onRequest hook (see app.ts); operations routes (/healthz, /readyz, /docs, /openapi.json) stay
 * outside it and open.
 */
import { createHash } from 'node:crypto';
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { findKeyOwner, touchApiKey, type KeyOwner } from '../../db/repositories/api-keys.js';
import { HttpProblem } from '../problem.js';

/** Whom a request acts for. */
export interface RequestTenant {
  /** The tenant id: every resource read or written by the request is scoped to it. */
  id: string;
  /** The API key that authenticated the request. */
  keyId: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `authenticate`; only routes in the authenticated scope may read it. */
    tenant: RequestTenant;
  }
  interface FastifyInstance {
    /** onRequest hook: resolves the bearer key to `request.tenant` or answers 401. */
    authenticate(request: FastifyRequest, reply: FastifyReply): Promise<void>;
    /** Drops a key from this process's cache of resolved keys (call it when revoking the key). */
    forgetApiKey(keyId: string): void;
  }
}

/** `lastUsedAt` is refreshed at most this often per key, so authentication is not a write per request. */
const TOUCH_EVERY_MS = 60_000;

/** Most keys remembered; the least recently used leave first. */
const KEY_CACHE_SIZE = 10_000;

/**
 * Valid keys by the SHA-256 of the key (the key itself is not kept beyond its request), trusted for
 * `ttlMs` (config.authCacheTtlMs) so hot paths such as predictions need no database round trip.
 */
class KeyCache {
  private readonly owners = new Map<string, { owner: KeyOwner; expiresAt: number }>();

  constructor(private readonly ttlMs: number) {}

  async resolve(key: string, lookup: () => Promise<KeyOwner | null>): Promise<KeyOwner | null> {
    const digest = createHash('sha256').update(key).digest('base64');
    const now = Date.now();
    const held = this.owners.get(digest);
    this.owners.delete(digest);
    if (held && held.expiresAt > now) {
      this.owners.set(digest, held);
      return held.owner;
    }
    const owner = await lookup();
    if (owner && this.ttlMs > 0) {
      this.owners.set(digest, { owner, expiresAt: now + this.ttlMs });
      for (const oldest of this.owners.keys()) {
        if (this.owners.size <= KEY_CACHE_SIZE) break;
        this.owners.delete(oldest);
      }
    }
    return owner;
  }

  forget(keyId: string): void {
    for (const [digest, { owner }] of this.owners) if (owner.keyId === keyId) this.owners.delete(digest);
  }
}

function unauthorized(detail: string): HttpProblem {
  return new HttpProblem(401, detail);
}

function bearerToken(request: FastifyRequest): string {
  const header = request.headers.authorization;
  if (header === undefined) throw unauthorized('Missing Authorization header; send `Authorization: Bearer <api key>`');
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  if (!match) throw unauthorized('Authorization header must be `Bearer <api key>`');
  return match[1];
}

async function auth(app: FastifyInstance): Promise<void> {
  app.decorateRequest('tenant', null as unknown as RequestTenant);
  const keys = new KeyCache(app.config.authCacheTtlMs);
  app.decorate('forgetApiKey', (keyId: string) => keys.forget(keyId));
  app.decorate('authenticate', async (request: FastifyRequest, reply: FastifyReply) => {
    // RFC 6750: a 401 tells the client which scheme to use.
    reply.header('www-authenticate', 'Bearer');
    const token = bearerToken(request);
    const owner = await keys.resolve(token, () => findKeyOwner(app.db, token));
    // Unknown and revoked keys get the same answer: a caller learns nothing about which keys exist.
    if (!owner) throw unauthorized('Unknown or revoked API key');
    reply.removeHeader('www-authenticate');
    request.tenant = { id: owner.tenantId, keyId: owner.keyId };
    const now = new Date();
    if (owner.lastUsedAt === null || now.getTime() - owner.lastUsedAt.getTime() > TOUCH_EVERY_MS) {
      // The cached owner remembers the touch, so a cached key is not written on every request.
      owner.lastUsedAt = now;
      touchApiKey(app.db, owner.keyId, now).catch((err: unknown) => request.log.warn({ err }, 'could not record API key use'));
    }
  });
}

export default fp(auth, { name: 'auth', fastify: '5.x' });
