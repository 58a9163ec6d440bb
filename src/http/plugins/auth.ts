/**
 * Authentication: `Authorization: Bearer <api key>` names the tenant every resource route works for
 * (`request.tenant`). Routes opt in by living in a scope that adds `app.authenticate` as an
 * onRequest hook (see app.ts); operations routes (/healthz, /readyz, /docs, /openapi.json) stay
 * outside it and open.
 */
import { hash } from 'node:crypto';
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { findKeyOwner, touchApiKey, type KeyOwner } from '../../db/repositories/api-keys.js';
import { revokedKeysChannel } from '../../jobs/revocations.js';
import { Subscription } from '../../jobs/subscription.js';
import { Lru } from '../../util/lru.js';
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
    /**
     * onRequest hook (callback style: a cached key is resolved without a promise): resolves the
     * bearer key to `request.tenant` or answers 401.
     */
    authenticate(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void;
    /** Drops a key from this process's cache of resolved keys (call it when revoking the key). */
    forgetApiKey(keyId: string): void;
  }
}

/** `lastUsedAt` is refreshed at most this often per key, so authentication is not a write per request. */
const TOUCH_EVERY_MS = 60_000;

/** Most keys remembered; the least recently used leave first. */
const KEY_CACHE_SIZE = 10_000;

/** A resolved key: its owner, and the `request.tenant` every request with it gets (one shared, frozen object). */
interface Resolved {
  owner: KeyOwner;
  tenant: RequestTenant;
  expiresAt: number;
}

/**
 * Valid keys by the SHA-256 of the key (the key itself is not kept beyond its request), trusted for
 * `ttlMs` (config.authCacheTtlMs) so hot paths such as predictions need no database round trip.
 */
class KeyCache {
  private readonly owners = new Lru<string, Resolved>({ maxEntries: KEY_CACHE_SIZE });

  constructor(private readonly ttlMs: number) {}

  /** Synchronous on a cache hit (most requests), so the hot path awaits nothing. */
  resolve(key: string, lookup: () => Promise<KeyOwner | null>): Resolved | Promise<Resolved | null> {
    // One-shot crypto.hash: a fraction of createHash().update().digest()'s cost on a short key.
    const digest = hash('sha256', key, 'base64');
    const now = Date.now();
    const held = this.owners.get(digest);
    if (held && held.expiresAt > now) return held;
    if (held) this.owners.delete(digest);
    return this.load(digest, now, lookup);
  }

  private async load(digest: string, now: number, lookup: () => Promise<KeyOwner | null>): Promise<Resolved | null> {
    const owner = await lookup();
    if (!owner) return null;
    const resolved: Resolved = { owner, tenant: Object.freeze({ id: owner.tenantId, keyId: owner.keyId }), expiresAt: now + this.ttlMs };
    if (this.ttlMs > 0) this.owners.set(digest, resolved);
    return resolved;
  }

  forget(keyId: string): void {
    this.owners.deleteWhere(({ owner }) => owner.keyId === keyId);
  }

  clear(): void {
    this.owners.clear();
  }
}

/** A 401, with the challenge RFC 6750 asks for (it names the scheme to use); successes carry none. */
function unauthorized(reply: FastifyReply, detail: string): HttpProblem {
  reply.header('www-authenticate', 'Bearer');
  return new HttpProblem(401, detail);
}

function bearerToken(request: FastifyRequest, reply: FastifyReply): string {
  const header = request.headers.authorization;
  if (header === undefined) throw unauthorized(reply, 'Missing Authorization header; send `Authorization: Bearer <api key>`');
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  if (!match) throw unauthorized(reply, 'Authorization header must be `Bearer <api key>`');
  return match[1];
}

async function auth(app: FastifyInstance): Promise<void> {
  app.decorateRequest('tenant', null as unknown as RequestTenant);
  const keys = new KeyCache(app.config.authCacheTtlMs);
  app.decorate('forgetApiKey', (keyId: string) => keys.forget(keyId));

  // Revocations announced by `npm run apikey -- revoke` (or any process) drop the key at once. Not
  // awaited: the API serves without Redis, and until the subscription stands the cache is empty anyway.
  const base = new Redis(app.config.redisUrl, { lazyConnect: true, maxRetriesPerRequest: null });
  const revocations = new Subscription(base, revokedKeysChannel(app.config.queuePrefix), app.log as unknown as Logger, 'api-revocations');
  revocations.onMessage((keyId) => keys.forget(keyId));
  revocations.onReconnect(() => keys.clear());
  revocations.subscribed().catch((err: unknown) => app.log.warn({ err }, 'could not subscribe to API key revocations'));
  app.addHook('onClose', async () => {
    await revocations.close();
    base.disconnect();
  });

  function admit(request: FastifyRequest, reply: FastifyReply, resolved: Resolved | null): void {
    // Unknown and revoked keys get the same answer: a caller learns nothing about which keys exist.
    if (!resolved) throw unauthorized(reply, 'Unknown or revoked API key');
    request.tenant = resolved.tenant;
    const { owner } = resolved;
    const now = Date.now();
    if (owner.lastUsedAt === null || now - owner.lastUsedAt.getTime() > TOUCH_EVERY_MS) {
      // The cached owner remembers the touch, so a cached key is not written on every request.
      owner.lastUsedAt = new Date(now);
      touchApiKey(app.db, owner.keyId, owner.lastUsedAt).catch((err: unknown) => request.log.warn({ err }, 'could not record API key use'));
    }
  }

  app.decorate('authenticate', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    let found: Resolved | Promise<Resolved | null>;
    try {
      const token = bearerToken(request, reply);
      found = keys.resolve(token, () => findKeyOwner(app.db, token));
      if (!(found instanceof Promise)) admit(request, reply, found);
    } catch (err) {
      done(err as Error);
      return;
    }
    // done() runs the rest of the request, so it is called outside the try: its errors are not ours.
    if (!(found instanceof Promise)) done();
    else found.then((resolved) => admit(request, reply, resolved)).then(() => done(), (err: unknown) => done(err as Error));
  });
}

export default fp(auth, { name: 'auth', fastify: '5.x' });
