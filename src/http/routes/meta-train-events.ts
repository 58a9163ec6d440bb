/**
 * GET /meta-train/:id/events: a job's live progress as Server-Sent Events, from any API process.
 * The worker appends events to the job's Redis stream (jobs/events.ts); this route sends a `status`
 * snapshot from Postgres, then the stream's entries after Last-Event-ID (or from its start), read by
 * the process's one shared reader (jobs/event-reader.ts), and closes after a terminal status. A
 * tenant holds at most MAX_EVENT_STREAMS_PER_TENANT streams at once, over all API processes.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Redis } from 'ioredis';
import type { ServerResponse } from 'node:http';
import { getJob, type JobView } from '../../db/repositories/jobs.js';
import type { JobEventReader, StreamEntry } from '../../jobs/event-reader.js';
import { decodeJobEvent, isTerminalStatus, jobEventsKey, type StatusEventData } from '../../jobs/events.js';
import { eventStreams, openEventStream } from '../event-streams.js';
import { HttpProblem } from '../problem.js';
import { IdParams, problemResponses } from '../schemas/common.js';

export interface EventsRouteOptions {
  /** The routes' command connection (the final, non-blocking reads and the stream leases). */
  redis: Redis;
  /** The process's shared reader of job event streams. */
  reader: JobEventReader;
  /** A comment line is sent this often so proxies keep the connection; Postgres is re-checked then too. Default 15000. */
  heartbeatMs?: number;
}

/**
 * Bytes a stream may have waiting for a client that does not read: beyond it the stream ends (the
 * client resumes with Last-Event-ID) rather than the process buffering without bound.
 */
export const MAX_UNSENT_BYTES = 256 * 1024;

/** What a client reads while a job runs to the end (shown in the OpenAPI document). */
const EVENTS_EXAMPLE = [
  'event: status\ndata: {"status":"running","iteration":0,"iterations":5000}\n',
  'id: 1767268800123-0\nevent: progress\ndata: {"iteration":250,"iterations":5000}\n',
  'id: 1767268800411-0\nevent: metrics\ndata: {"iteration":500,"trainLoss":1.12,"valLoss":1.20,"valLossCi95":0.31,"bestIteration":500,"bestValidation":{"metric":"loss","mean":1.20,"ci95":0.31,"iteration":500}}\n',
  'id: 1767268822480-0\nevent: status\ndata: {"status":"succeeded","iteration":5000,"iterations":5000,"metaModelId":"0197a4f3-0d9e-7f21-a3b4-c5d6e7f80912"}\n\n',
].join('\n');

/** Stream entries read by the final, non-blocking read. */
const BATCH = 1000;

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

/** Writes stream entries and says whether one was a terminal status. */
function writeEntries(res: ServerResponse, entries: StreamEntry[]): boolean {
  let ended = false;
  for (const entry of entries) {
    const event = decodeJobEvent(entry);
    if (!event) continue;
    res.write(frame(event.type, event.data, event.id));
    if (event.type === 'status' && isTerminalStatus((event.data as StatusEventData).status)) ended = true;
  }
  return ended;
}

/** What the stream holds after `lastId`, without blocking (a short command on the shared connection). */
async function readRest(redis: Redis, key: string, lastId: string): Promise<StreamEntry[]> {
  const answer = await redis.xread('COUNT', BATCH, 'STREAMS', key, lastId);
  return (answer?.[0]?.[1] ?? []) as StreamEntry[];
}

const metaTrainEvents: FastifyPluginAsyncTypebox<EventsRouteOptions> = async (app, { redis, reader, heartbeatMs = 15_000 }) => {
  const streams = eventStreams(app, redis, heartbeatMs);

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
        ...problemResponses(400, 404, 429, 503),
      },
    },
  }, async (request, reply) => {
    const tenantId = request.tenant.id;
    const { id } = request.params;
    const job = await getJob(app.db, tenantId, id);
    if (!job) throw new HttpProblem(404, `No meta-training job ${id}`);
    const key = jobEventsKey(app.config.queuePrefix, id);
    const fromId = request.headers['last-event-id'] ?? '0';

    if (isTerminalStatus(job.status)) {
      // Ended already: replay what the stream still holds after Last-Event-ID and close. Short, so
      // it takes no place under the cap.
      const rest = await readRest(redis, key, fromId);
      const res = openEventStream(reply);
      res.write(frame('status', statusOf(job)));
      writeEntries(res, rest);
      res.end();
      return;
    }

    const lease = await streams.admit(tenantId);
    const res = openEventStream(reply);
    res.write(frame('status', statusOf(job)));
    let closed = false;
    let checking = false;
    const finish = () => {
      if (closed) return;
      closed = true;
      untrack();
      clearInterval(heartbeat);
      watch.close();
      lease.release().catch((err: unknown) => request.log.warn({ err }, 'could not release an event stream lease'));
      res.end();
    };
    // The client went away (or the socket failed): free the reader's watch and the tenant's place.
    res.on('close', finish);
    const untrack = streams.track(finish);

    const watch = reader.watch(key, fromId, (entries) => {
      if (closed) return;
      if (writeEntries(res, entries)) return finish();
      if (res.writableLength > MAX_UNSENT_BYTES) {
        request.log.info({ jobId: id }, 'event stream client is not reading; closing its stream');
        finish();
      }
    });

    const heartbeat = setInterval(() => {
      if (closed || checking) return;
      checking = true;
      res.write(': heartbeat\n\n');
      void (async () => {
        await lease.renew();
        // If Postgres says the job ended (its last event lost, e.g. Redis was wiped), send what is
        // left and the final status from the record.
        const now = await getJob(app.db, tenantId, id);
        if (closed || (now && !isTerminalStatus(now.status))) return;
        if (writeEntries(res, await readRest(redis, key, watch.lastId))) return finish();
        if (now) res.write(frame('status', statusOf(now)));
        finish();
      })().catch((err: unknown) => {
        if (!closed) request.log.warn({ err, jobId: id }, 'event stream check failed');
      }).finally(() => {
        checking = false;
      });
    }, heartbeatMs);
  });
};

export default metaTrainEvents;
