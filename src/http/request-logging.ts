/**
 * Which requests get Fastify's per-request log lines ("incoming request", "request completed").
 *
 * Most routes keep both at info. A route marked `config: { requestLog: 'exceptions' }` (the
 * prediction routes: tens of thousands of requests a second per process, where two JSON lines each
 * would cost more than the prediction) logs only what an operator acts on: a completion that failed
 * or answered 5xx (error), or one slower than SLOW_REQUEST_MS (warn, with the response time). Its 4xx
 * answers are still logged by the error handler ("request rejected", info) and every request still
 * has its id echoed and is counted in the metrics.
 */
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** 'all' (default): incoming and completed lines at info; 'exceptions': failures and slow requests only. */
    requestLog?: 'all' | 'exceptions';
  }
}

/** A request on an 'exceptions' route slower than this is logged (warn). */
export const SLOW_REQUEST_MS = 1_000;

function quiet(request: FastifyRequest): boolean {
  // routeOptions is absent for requests that matched no route (404s): those log as usual.
  return request.routeOptions?.config?.requestLog === 'exceptions';
}

/** Fastify `logController`: per-route request logging (see the module comment). */
export class RequestLogging extends LogController {
  override incomingRequest(request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    if (quiet(request)) return;
    super.incomingRequest(request, reply, metadata);
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    if (!quiet(request) || error || reply.statusCode >= 500) {
      super.requestCompleted(error, request, reply, metadata);
      return;
    }
    const responseTime = reply.elapsedTime;
    if (responseTime > SLOW_REQUEST_MS) reply.log.warn({ res: reply, responseTime }, 'slow request completed');
  }
}
