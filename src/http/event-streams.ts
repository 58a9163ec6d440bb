/**
 * What the Server-Sent Events routes share: the tenant's cap on open streams
 * (MAX_EVENT_STREAMS_PER_TENANT, counted over all API processes by leases in Redis), the streams
 * this process holds open (ended when the app closes), and the SSE answer head.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Redis } from 'ioredis';
import type { ServerResponse } from 'node:http';
import { StreamLeases, type StreamLease } from '../jobs/stream-leases.js';
import { DependencyUnavailableError } from './dependency-errors.js';
import { HttpProblem } from './problem.js';

/** A lease outlives this many missed heartbeats (a dead process's streams free their places after it). */
const LEASE_HEARTBEATS = 3;

export interface EventStreams {
  /**
   * A place under the tenant's cap for one stream.
   * @throws DependencyUnavailableError (503) while the Redis connection is down.
   * @throws HttpProblem 429 when the tenant already holds its cap.
   */
  admit(tenantId: string): Promise<StreamLease>;
  /** Ends `finish` with the app; the returned function forgets it (call it from `finish`). */
  track(finish: () => void): () => void;
}

/** The event-stream bookkeeping of one route plugin; `heartbeatMs` is how often its streams renew their lease. */
export function eventStreams(app: FastifyInstance, redis: Redis, heartbeatMs: number): EventStreams {
  const leases = new StreamLeases(redis, app.config.queuePrefix, heartbeatMs * LEASE_HEARTBEATS);
  const limit = app.config.limits.maxEventStreamsPerTenant;
  // The streams open in this process, ended when the app closes (their timers and sockets with them).
  const open = new Set<() => void>();
  app.addHook('onClose', async () => {
    for (const finish of [...open]) finish();
  });
  return {
    async admit(tenantId) {
      // The command connection waits through reconnects: during an outage answer 503 now instead.
      if (redis.status !== 'ready') throw new DependencyUnavailableError('redis', `connection is ${redis.status}`);
      const place = await leases.acquire(tenantId, limit);
      if (!place.admitted) {
        throw new HttpProblem(429, `At most ${limit} event streams may be open at once for a tenant; close one first`, { extensions: { limit, open: place.open } });
      }
      return place.lease;
    },
    track(finish) {
      open.add(finish);
      return () => open.delete(finish);
    },
  };
}

/** Takes the response over from Fastify and sends the SSE head. */
export function openEventStream(reply: FastifyReply): ServerResponse {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  return res;
}
