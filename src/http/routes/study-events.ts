/**
 * GET /studies/:id/events: a study as Server-Sent Events. Each event (`event: study`) is the whole
 * study resource, sent when it changes (a trial starts or ends, a rung is decided, the winner is
 * evaluated and judged), read from Postgres, where the scheduler of any worker writes it; the
 * stream closes after the study ends. Because every event is the whole state, a client that
 * reconnects needs no Last-Event-ID: its first event is where the study is now.
 *
 * Why polling Postgres instead of a Redis stream as for jobs: a study changes a few times a minute,
 * its state lives in several rows (the study, its trials, their jobs) written by several
 * processes, and one read a second per open stream costs less than publishing from each of them.
 * Streams count against MAX_EVENT_STREAMS_PER_TENANT together with the jobs' event streams.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Redis } from 'ioredis';
import { Type } from 'typebox';
import { getStudy, type StudyView } from '../../db/repositories/studies.js';
import { isTerminalStatus } from '../../jobs/events.js';
import { eventStreams, openEventStream } from '../event-streams.js';
import { HttpProblem } from '../problem.js';
import { IdParams, problemResponses } from '../schemas/common.js';
import { STUDY_EVENTS_EXAMPLE } from '../schemas/studies.js';

export interface StudyEventsRouteOptions {
  /** The routes' command connection (the stream leases). */
  redis: Redis;
  /** How often an open stream reads the study. Default 1000. */
  pollMs?: number;
  /** A comment line is sent this often so proxies keep the connection (and the lease is renewed). Default 15000. */
  heartbeatMs?: number;
}

const frame = (study: StudyView) => `event: study\ndata: ${JSON.stringify(study)}\n\n`;

const studyEvents: FastifyPluginAsyncTypebox<StudyEventsRouteOptions> = async (app, { redis, pollMs = 1_000, heartbeatMs = 15_000 }) => {
  const streams = eventStreams(app, redis, heartbeatMs);

  app.get('/studies/:id/events', {
    schema: {
      operationId: 'streamStudyEvents',
      summary: 'A study live (Server-Sent Events): the whole study each time it changes, until it ends',
      tags: ['studies'],
      params: IdParams,
      response: {
        200: { description: 'text/event-stream; each event is `event: study` with the study resource as JSON `data`', content: { 'text/event-stream': { schema: Type.String(), example: STUDY_EVENTS_EXAMPLE } } },
        ...problemResponses(404, 429, 503),
      },
    },
  }, async (request, reply) => {
    const tenantId = request.tenant.id;
    const { id } = request.params;
    const study = await getStudy(app.db, tenantId, id);
    if (!study) throw new HttpProblem(404, `No study ${id}`);
    if (isTerminalStatus(study.status)) {
      // Ended already: its final state, and close; it takes no place under the cap.
      openEventStream(reply).end(frame(study));
      return;
    }
    const lease = await streams.admit(tenantId);
    const res = openEventStream(reply);
    let last = frame(study);
    res.write(last);
    let closed = false;
    let reading = false;
    let renewedAt = Date.now();
    const finish = () => {
      if (closed) return;
      closed = true;
      untrack();
      clearInterval(timer);
      lease.release().catch((err: unknown) => request.log.warn({ err }, 'could not release an event stream lease'));
      res.end();
    };
    res.on('close', finish);
    const untrack = streams.track(finish);
    const timer = setInterval(() => {
      if (closed || reading) return;
      reading = true;
      void (async () => {
        const now = await getStudy(app.db, tenantId, id);
        if (closed) return;
        if (!now) return finish();
        const next = frame(now);
        if (next !== last) res.write(next);
        else if (Date.now() - renewedAt >= heartbeatMs) res.write(': heartbeat\n\n');
        last = next;
        if (Date.now() - renewedAt >= heartbeatMs) {
          renewedAt = Date.now();
          await lease.renew();
        }
        if (isTerminalStatus(now.status)) finish();
      })().catch((err: unknown) => {
        if (!closed) request.log.warn({ err, studyId: id }, 'study event stream read failed');
      }).finally(() => {
        reading = false;
      });
    }, pollMs);
  });
};

export default studyEvents;
