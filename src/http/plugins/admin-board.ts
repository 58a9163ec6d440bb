/**
 * The queue board for operators (@bull-board) at /admin/queues: every queue's jobs by state, with
 * retry, promote and clean. Served only when ADMIN_API_KEY is set, and only to requests presenting
 * it: a browser logs in with HTTP Basic (any user name, the key as password), scripts send it as a
 * Bearer token. It acts on Redis only; Postgres stays the record of every job.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyInstance } from 'fastify';
import { QUEUE_NAMES } from '../../jobs/queues.js';
import { HttpProblem } from '../problem.js';
import { PROBLEM_CONTENT_TYPE } from '../schemas/problem.js';
import { presentsOneOf } from './operator-auth.js';

/** Where the board lives. */
export const ADMIN_BOARD_PATH = '/admin/queues';

/** Registers the board in a scope of its own (its routes are hidden from the OpenAPI document). */
export default async function adminBoard(app: FastifyInstance): Promise<void> {
  const key = app.config.adminApiKey;
  if (key === null) return;
  const serverAdapter = new FastifyAdapter().setBasePath(ADMIN_BOARD_PATH);
  createBullBoard({
    queues: QUEUE_NAMES.map((name) => new BullMQAdapter(app.queues[name])),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'fastadapt queues' } },
  });
  await app.register(async (board) => {
    board.addHook('onRequest', async (request, reply) => {
      if (presentsOneOf(request, [key])) return;
      // Answered here rather than thrown: the board's own error handler would answer in its format.
      const problem = new HttpProblem(401, 'The queue board needs the admin key (HTTP Basic password or Bearer token)');
      return reply
        .code(401)
        .header('www-authenticate', 'Basic realm="fastadapt admin", charset="UTF-8"')
        .type(PROBLEM_CONTENT_TYPE)
        .send(problem.toProblem(request.url.split('?')[0]));
    });
    await board.register(serverAdapter.registerPlugin(), { prefix: ADMIN_BOARD_PATH });
  });
}
