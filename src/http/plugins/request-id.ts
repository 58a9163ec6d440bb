/**
 * Request ids: a caller's `x-request-id` is kept when it looks like an id (so one id follows a
 * request across services), otherwise a UUID is made; either way it is on every log line of the
 * request and echoed in the response.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';

export const REQUEST_ID_HEADER = 'x-request-id';

// Printable, no spaces, bounded: a header that would corrupt or flood the logs is replaced.
const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Fastify `genReqId`: honour a sane incoming id, otherwise make one. */
export function requestId(request: IncomingMessage): string {
  const incoming = request.headers[REQUEST_ID_HEADER];
  return typeof incoming === 'string' && ACCEPTABLE_ID.test(incoming) ? incoming : randomUUID();
}

async function echoRequestId(app: FastifyInstance): Promise<void> {
  // Callback style: an async hook would cost a promise and a microtask on every request.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header(REQUEST_ID_HEADER, request.id);
    done();
  });
}

export default fp(echoRequestId, { name: 'request-id', fastify: '5.x' });
