/**
 * Operator credentials, apart from tenants' API keys: ADMIN_API_KEY opens the queue board and
 * /metrics, METRICS_API_KEY only /metrics. Both come from the environment, never from Postgres.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';

const digest = (value: string) => createHash('sha256').update(value).digest();

/** Compares in constant time (over digests, so the lengths leak nothing either). */
export function secretMatches(presented: string, expected: string): boolean {
  return timingSafeEqual(digest(presented), digest(expected));
}

/**
 * The secret a request presents: a Bearer token (scripts, Prometheus) or the password of HTTP Basic
 * (a browser: it prompts once and sends it with every request of the board's single-page app).
 */
export function presentedSecret(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header === undefined) return undefined;
  const bearer = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  if (bearer) return bearer[1];
  const basic = /^Basic[ ]+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!basic) return undefined;
  const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon === -1 ? undefined : decoded.slice(colon + 1);
}

/** Whether `request` presents one of `keys`. */
export function presentsOneOf(request: FastifyRequest, keys: readonly string[]): boolean {
  const presented = presentedSecret(request);
  // Every key is compared, so the time does not say which one matched.
  return presented !== undefined && keys.map((key) => secretMatches(presented, key)).includes(true);
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

/** The TCP peer is this machine (not a forwarded header: those are the client's to forge). */
export function fromLoopback(request: FastifyRequest): boolean {
  return LOOPBACK.has(request.socket.remoteAddress ?? '');
}
