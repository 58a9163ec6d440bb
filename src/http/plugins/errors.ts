/**
 * One error handler for the whole app: every failure, including unknown routes, answers
 * application/problem+json; 5xx answers hide internals and the error is logged with the request id.
 */
import fp from 'fastify-plugin';
import { maxHeaderSize } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DEPENDENCY_RETRY_AFTER_SECONDS, unavailableDependency, type Dependency } from '../dependency-errors.js';
import { HttpProblem, statusTitle } from '../problem.js';
import { PROBLEM_CONTENT_TYPE, type Problem } from '../schemas/problem.js';
import { toIssues } from '../validation.js';

function send(reply: FastifyReply, problem: Problem): FastifyReply {
  return reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(problem);
}

/** The path without the query string: queries may carry data the client would not want echoed. */
function instanceOf(request: FastifyRequest): string {
  return request.url.split('?')[0];
}

/** A problem, and for an outage which dependency is down (also a member of the body). */
type Answer = Problem & { dependency?: Dependency };

function toProblem(error: FastifyError | HttpProblem, request: FastifyRequest): Answer {
  const instance = instanceOf(request);
  if (error instanceof HttpProblem) return error.toProblem(instance);

  if (error.validation) {
    const errors = toIssues(error.validation, error.validationContext);
    const fields = errors.length === 1 ? `${errors[0].path || '(root)'} ${errors[0].message}` : `${errors.length} invalid fields`;
    return { type: 'about:blank', title: statusTitle(400), status: 400, detail: `Invalid request: ${fields}`, instance, errors };
  }

  if (isUnstorableText(error)) {
    // The validator refuses NUL in every declared field; this catches text that reached SQL another way.
    return { type: 'about:blank', title: statusTitle(400), status: 400, detail: 'Invalid request: text must not contain the NUL character (\\u0000)', instance };
  }

  const down = unavailableDependency(error);
  if (down) {
    const name = down === 'postgres' ? 'The database' : 'The job queue (Redis)';
    return { type: 'about:blank', title: statusTitle(503), status: 503, detail: `${name} is unavailable; retry in a few seconds.`, instance, dependency: down };
  }

  const status = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
  const detail = status >= 500
    ? `An unexpected error occurred. Quote request id ${request.id} when reporting it.`
    : error.message;
  return { type: 'about:blank', title: statusTitle(status), status, detail, instance };
}

/** Postgres refused text it cannot store: NUL (22021) or a character outside UTF-8 (22P05). */
function isUnstorableText(error: unknown): boolean {
  const cause = (error as { meta?: { driverAdapterError?: { cause?: { code?: unknown } } } }).meta?.driverAdapterError?.cause;
  return cause?.code === '22021' || cause?.code === '22P05';
}

/**
 * For Fastify's `frameworkErrors` option: the router's own refusals (a malformed percent-encoding,
 * a path parameter over maxParamLength) answer problem+json like everything else.
 */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  request.log.info({ code: error.code, status: error.statusCode }, 'request rejected by the router');
  send(reply, toProblem(error, request));
}

/** What a connection-level refusal (before any request exists) answers, by Node's error code. */
const CLIENT_ERRORS: Record<string, { status: number; detail: string }> = {
  HPE_HEADER_OVERFLOW: { status: 431, detail: `The request headers are larger than the server accepts (${maxHeaderSize / 1024} KiB in all)` },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, detail: 'The request did not arrive in time' },
};

/**
 * For Fastify's `clientErrorHandler` option: Node refuses a malformed request (oversized headers, a
 * bad request line) before Fastify sees it, and Fastify's default answers application/json. This
 * answers problem+json like everything else, then closes the connection as Node does.
 */
export function clientErrors(this: FastifyInstance, error: Error & { code?: string }, socket: Duplex): void {
  // A reset connection has nobody to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const known = CLIENT_ERRORS[error.code ?? ''] ?? { status: 400, detail: 'The request is not valid HTTP' };
  const problem: Problem = { type: 'about:blank', title: statusTitle(known.status), status: known.status, detail: known.detail };
  this.log.info({ code: error.code, status: known.status }, 'connection refused a malformed request');
  if (socket.writable) {
    const body = JSON.stringify(problem);
    socket.write(`HTTP/1.1 ${known.status} ${problem.title}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy(error);
}

async function errors(app: FastifyInstance): Promise<void> {
  app.setErrorHandler((error: FastifyError | HttpProblem, request, reply) => {
    const problem = toProblem(error, request);
    if (problem.status === 503 && problem.dependency !== undefined) {
      // An outage, not a bug: the client retries, the operator sees one line (readiness says more).
      request.log.warn({ dependency: problem.dependency, reason: (error as Error).message.trim().split('\n').pop() }, 'dependency unavailable');
      reply.header('retry-after', String(DEPENDENCY_RETRY_AFTER_SECONDS)).removeHeader('www-authenticate');
    } else if (problem.status >= 500) {
      request.log.error({ err: error }, 'request failed');
    } else {
      request.log.info({ status: problem.status, code: (error as FastifyError).code, detail: problem.detail }, 'request rejected');
    }
    return send(reply, problem);
  });

  app.setNotFoundHandler((request, reply) =>
    send(reply, {
      type: 'about:blank',
      title: statusTitle(404),
      status: 404,
      detail: `No route ${request.method} ${instanceOf(request)}`,
      instance: instanceOf(request),
    }),
  );
}

export default fp(errors, { name: 'errors', fastify: '5.x' });
