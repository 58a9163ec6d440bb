/**
 * Postgres or Redis being unreachable is an outage, not a bug: the client should hear 503 with
 * Retry-After (and retry), the operator a warning, never a 500 with a stack. This file recognises
 * those failures, whichever layer (Prisma, its pg driver adapter, node-postgres, ioredis, BullMQ)
 * reports them.
 */
import type { Queues } from '../jobs/queues.js';
import { withTimeout } from '../util/timeout.js';

/** A dependency the API cannot answer without. */
export type Dependency = 'postgres' | 'redis';

/** Seconds a client is told to wait (Retry-After) while a dependency is down. */
export const DEPENDENCY_RETRY_AFTER_SECONDS = 5;

/** Thrown by a route that needs a dependency which is known to be down right now. */
export class DependencyUnavailableError extends Error {
  constructor(readonly dependency: Dependency, reason: string) {
    super(`${dependency} unavailable: ${reason}`);
    this.name = 'DependencyUnavailableError';
  }
}

/**
 * Prisma error codes that mean "could not talk to the database": can't reach (P1001), timed out
 * connecting (P1002) or in an operation (P1008), server closed the connection (P1017), no pool
 * connection in time (P2024), too many connections (P2037).
 */
const PRISMA_CONNECTION_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2037']);

/** @prisma/adapter-pg's `driverAdapterError.cause.kind`s for a lost or refused connection. */
const ADAPTER_CONNECTION_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections']);

/**
 * SQLSTATEs of a server going away or refusing new work: class 08 (connection exception), 57P01-03
 * (admin or crash shutdown, cannot connect now), 53300 (too many connections).
 */
const PG_UNAVAILABLE = /^(08...|57P0[1-3]|53300)$/;

const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/** node-postgres and ioredis report some connection losses as plain Errors with only a message. */
const PG_MESSAGES = [/Connection terminated/i, /timeout exceeded when trying to connect/i, /Can't reach database server/i, /Client has encountered a connection error/i];
const REDIS_MESSAGES = [/enableOfflineQueue options is false/i, /Reached the max retries per request limit/i, /^Connection is closed\.?$/i];

interface Inspectable {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  meta?: { driverAdapterError?: { cause?: { kind?: unknown; originalCode?: unknown; code?: unknown } } };
  cause?: unknown;
  errors?: unknown;
}

function classifyOne(error: Inspectable): Dependency | null {
  if (error instanceof DependencyUnavailableError) return error.dependency;
  const name = typeof error.name === 'string' ? error.name : '';
  const code = typeof error.code === 'string' ? error.code : '';
  const message = typeof error.message === 'string' ? error.message : '';
  if (name.startsWith('PrismaClient')) {
    if (name === 'PrismaClientInitializationError' || PRISMA_CONNECTION_CODES.has(code)) return 'postgres';
    const cause = error.meta?.driverAdapterError?.cause;
    if (typeof cause?.kind === 'string' && ADAPTER_CONNECTION_KINDS.has(cause.kind)) return 'postgres';
    if (cause?.kind === 'postgres' && typeof cause.code === 'string' && PG_UNAVAILABLE.test(cause.code)) return 'postgres';
  }
  if (name === 'DriverAdapterError' && PG_MESSAGES.some((re) => re.test(message))) return 'postgres';
  if (name === 'MaxRetriesPerRequestError' || REDIS_MESSAGES.some((re) => re.test(message))) return 'redis';
  if (PG_MESSAGES.some((re) => re.test(message))) return 'postgres';
  if (PG_UNAVAILABLE.test(code) && typeof (error as { severity?: unknown }).severity === 'string') return 'postgres';
  if (SOCKET_CODES.has(code)) {
    // A bare socket error: name the server by its usual port when the error says which one.
    const port = (error as { port?: unknown }).port;
    return port === 6379 ? 'redis' : 'postgres';
  }
  return null;
}

/**
 * Which dependency `error` says is unreachable, or null for any other failure. Follows `cause`
 * chains and AggregateErrors (node's connect reports IPv4 and IPv6 refusals together).
 */
export function unavailableDependency(error: unknown, depth = 0): Dependency | null {
  if (error === null || typeof error !== 'object' || depth > 5) return null;
  const inspectable = error as Inspectable;
  const direct = classifyOne(inspectable);
  if (direct) return direct;
  for (const inner of [inspectable.cause, ...(Array.isArray(inspectable.errors) ? inspectable.errors : [])]) {
    const found = unavailableDependency(inner, depth + 1);
    if (found) return found;
  }
  return null;
}

/**
 * How long a route waits for an enqueue. Redis answered a moment before (assertRedisReady), so a
 * slow enqueue means it just went away; the route must not wait for it to come back.
 */
export const ENQUEUE_TIMEOUT_MS = 2_000;

/**
 * Fails fast with {@link DependencyUnavailableError} when the queues' Redis connection is not up.
 * The queue connection waits through reconnects (BullMQ needs that), so without this check an
 * enqueue during an outage would hold the request open until Redis returns. Call it before writing
 * anything, so a refused request leaves no row behind.
 */
export async function assertRedisReady(queues: Queues): Promise<void> {
  // Before the first connection the client promise itself waits for Redis: bound that too.
  const client = await withTimeout(queues['meta-train'].getBackend().client, 500, () => new DependencyUnavailableError('redis', 'not connected yet'));
  if (client.status !== 'ready') throw new DependencyUnavailableError('redis', `connection is ${client.status}`);
}
