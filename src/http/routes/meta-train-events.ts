/**
 * GET /meta-train/:id/events: a job's live progress as Server-Sent Events, from any API process.
 * The worker appends events to the job's Redis stream (jobs/events.ts); this route sends a `status`
 * snapshot from Postgres, then reads the stream from Last-Event-ID (or its start) with XREAD BLOCK on
 * a connection of its own, and closes after a terminal status.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Redis } from 'ioredis';
import type { ServerResponse } from 'node:http';
import { getJob, type JobView } from '../../db/repositories/jobs.js';
import { decodeJobEvent, isTerminalStatus, jobEventsKey, type StatusEventData } from '../../jobs/events.js';
import { HttpProblem } from '../problem.js';
import { IdParams, problemResponses } from '../schemas/common.js';

export interface EventsRouteOptions {
  /** The routes' Redis connection; each client gets a duplicate of it. */
  redis: Redis;
  /** A comment line is sent this often so proxies keep the connection; Postgres is re-checked then too. Default 15000. */
  heartbeatMs?: number;
}

/** What a client reads while a job runs to the end (shown in the OpenAPI document). */
const EVENTS_EXAMPLE = [
  'event: status\ndata: {"status":"running","iteration":0,"iterations":5000}\n',
  'id: 1767268800123-0\nevent: progress\ndata: {"iteration":250,"iterations":5000}\n',
  'id: 1767268800411-0\nevent: metrics\ndata: {"iteration":500,"trainLoss":1.12,"valLoss":1.20}\n',
  'id: 1767268822480-0\nevent: status\ndata: {"status":"succeeded","iteration":5000,"iterations":5000,"metaModelId":"0197a4f3-0d9e-7f21-a3b4-c5d6e7f80912"}\n\n',
].join('\n');

/** Stream entries read per XREAD. */
const BATCH = 100;

function statusOf(job: JobView): StatusEventData {
  return {
    status: job.status,
    ...job.progress,
    ...(job.error === null ? {} : { error: job.error }),
    ...(job.metaModelId === null ? {} : { metaModelId: job.metaModelId }),
  };
}

function frame(type: string, data: unknown, id?: string): string {
  return `${id === undefined ? '' : `id: ${id}\n`}event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * Writes the stream entries of `reply` and says whether one was a terminal status.
 * `read` is XREAD's answer for one key.
 */
function writeEntries(res: ServerResponse, entries: [string, string[]][], cursor: { lastId: string }): boolean {
  let ended = false;
  for (const entry of entries) {
    cursor.lastId = entry[0];
    const event = decodeJobEvent(entry);
    if (!event) continue;
    res.write(frame(event.type, event.data, event.id));
    if (event.type === 'status' && isTerminalStatus((event.data as StatusEventData).status)) ended = true;
  }
  return ended;
}

async function readStream(conn: Redis, key: string, lastId: string, blockMs?: number): Promise<[string, string[]][]> {
  const answer = blockMs === undefined
    ? await conn.xread('COUNT', BATCH, 'STREAMS', key, lastId)
    : await conn.xread('COUNT', BATCH, 'BLOCK', blockMs, 'STREAMS', key, lastId);
  return (answer?.[0]?.[1] ?? []) as [string, string[]][];
}

const metaTrainEvents: FastifyPluginAsyncTypebox<EventsRouteOptions> = async (app, { redis, heartbeatMs = 15_000 }) => {
  app.get('/meta-train/:id/events', {
    schema: {
      operationId: 'streamMetaTrainEvents',
      summary: 'Live job events (Server-Sent Events): status, progress, metrics; resumes from Last-Event-ID',
      tags: ['meta-train'],
      params: IdParams,
      headers: Type.Object({
        'last-event-id': Type.Optional(Type.String({ pattern: '^\\d+-\\d+$', description: 'Id of the last event received; the stream resumes after it', examples: ['1767268800123-0'] })),
      }),
      response: {
        200: {
          description: 'text/event-stream; each event has `id`, `event` (status | progress | metrics) and JSON `data`',
          content: { 'text/event-stream': { schema: Type.String(), example: EVENTS_EXAMPLE } },
        },
        ...problemResponses(400, 404),
      },
    },
  }, async (request, reply) => {
    const tenantId = request.tenant.id;
    const { id } = request.params;
    const job = await getJob(app.db, tenantId, id);
    if (!job) throw new HttpProblem(404, `No meta-training job ${id}`);

    // XREAD BLOCK holds its connection, so each client gets its own, closed with the response.
    const conn = redis.duplicate({ connectionName: `fastadapt:events:${id}` });
    conn.on('error', (err: Error) => request.log.warn({ err }, 'event stream connection error'));
    const key = jobEventsKey(app.config.queuePrefix, id);
    const cursor = { lastId: request.headers['last-event-id'] ?? '0' };
    let closed = false;
    request.raw.on('close', () => {
      closed = true;
      conn.disconnect();
    });

    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      ...(reply.getHeaders() as Record<string, string>),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(frame('status', statusOf(job)));
    try {
      if (isTerminalStatus(job.status)) {
        // Ended already: replay what the stream still holds after Last-Event-ID, then close.
        writeEntries(res, await readStream(conn, key, cursor.lastId), cursor);
        return;
      }
      while (!closed) {
        const entries = await readStream(conn, key, cursor.lastId, heartbeatMs);
        if (closed) return;
        if (entries.length > 0) {
          if (writeEntries(res, entries, cursor)) return;
          continue;
        }
        res.write(': heartbeat\n\n');
        // Quiet for a while: if Postgres says the job ended (its last event lost, e.g. Redis was
        // wiped), send what is left and the final status from the record.
        const now = await getJob(app.db, tenantId, id);
        if (!now || isTerminalStatus(now.status)) {
          if (writeEntries(res, await readStream(conn, key, cursor.lastId), cursor)) return;
          if (now) res.write(frame('status', statusOf(now)));
          return;
        }
      }
    } catch (err) {
      if (!closed) request.log.warn({ err, jobId: id }, 'event stream failed');
    } finally {
      conn.disconnect();
      res.end();
    }
  });
};

export default metaTrainEvents;
