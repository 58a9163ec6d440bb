/**
 * Authentication: `Authorization: Bearer <api key>` names the tenant every resource route works for
 * (`request.tenant`). Routes opt in by living in a scope that adds `app.authenticate` as an
 * onRequest hook (see app.ts); operations routes (/healthz, /readyz, /docs, /openapi.json) stay
 * outside it and open.
 */
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { findKeyOwner, touchApiKey } from '../../db/repositories/api-keys.js';
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
  }
}

/** `lastUsedAt` is refreshed at most this often per key, so authentication is not a write per request. */
const TOUCH_EVERY_MS = 60_000;

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
  app.decorate('authenticate', async (request: FastifyRequest, reply: FastifyReply) => {
    // RFC 6750: a 401 tells the client which scheme to use.
    reply.header('www-authenticate', 'Bearer');
    const owner = await findKeyOwner(app.db, bearerToken(request));
    // Unknown and revoked keys get the same answer: a caller learns nothing about which keys exist.
    if (!owner) throw unauthorized('Unknown or revoked API key');
    reply.removeHeader('www-authenticate');
    request.tenant = { id: owner.tenantId, keyId: owner.keyId };
    const now = new Date();
    if (owner.lastUsedAt === null || now.getTime() - owner.lastUsedAt.getTime() > TOUCH_EVERY_MS) {
      touchApiKey(app.db, owner.keyId, now).catch((err: unknown) => request.log.warn({ err }, 'could not record API key use'));
    }
  });
}

export default fp(auth, { name: 'auth', fastify: '5.x' });
