/**
 * POST /tasks/:id/adapt and GET /tasks/:id/adaptations/:adaptationId.
 *
 * The support set is checked against the task here, written with the adaptation row (job data is ids
 * only) and run on the worker pool's high-priority `adapt` queue. The request waits for the
 * `<prefix>:adapted` message (registered before the enqueue, so no outcome is missed) and reads the
 * row once if the message does not come within ADAPT_WAIT_MS: no polling.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { createAdaptation, getAdaptation, recordFailure, type AdaptationView } from '../../db/repositories/adaptations.js';
import { isForeignKeyViolation } from '../../db/client.js';
import { storedExampleCount } from '../../db/repositories/task-examples.js';
import type { AdaptTarget } from '../../db/repositories/tasks.js';
import type { AdaptedMessage } from '../../jobs/adapted.js';
import { enqueue } from '../../jobs/queues.js';
import { DEFAULT_GUARD } from '../../meta/index.js';
import { withTimeout } from '../../util/timeout.js';
import { assertRedisReady, ENQUEUE_TIMEOUT_MS } from '../dependency-errors.js';
import { readLabelledSet } from '../labelled-inputs.js';
import { HttpProblem } from '../problem.js';
import { IdParams, invalidField, LocationHeader, problemResponses } from '../schemas/common.js';
import { Adaptation, AdaptationParams, AdaptRequest, AdaptResult } from '../schemas/adapt.js';

const tags = ['tasks'];

const failed = (adaptationId: string, error: string | null | undefined) =>
  new HttpProblem(422, `Adaptation failed: ${error ?? 'no reason recorded'}`, { title: 'Adaptation failed', extensions: { adaptationId } });

const adapt: FastifyPluginAsyncTypebox = async (app) => {
  const { db, config } = app;
  /** Adapting on the stored examples: there must be some now (the worker reads them when it runs). */
  const storedSet = async (target: AdaptTarget) => {
    const size = await storedExampleCount(db, target.taskId);
    if (size === 0) throw invalidField('/support', 'is required: the task has no stored examples (POST /tasks/{id}/examples first, or send a support set)');
    return { stored: true as const, size };
  };

  app.post('/tasks/:id/adapt', {
    schema: {
      operationId: 'adaptTask',
      summary: 'Adapt the task to its support set: a new head version from a few labelled examples',
      description: 'Runs the inner loop on the worker pool from the task\'s meta-model. With `wait` (default) it answers 200 when the head is stored; beyond ADAPT_WAIT_MS, or with `wait: false`, 202 with the Location of the adaptation to poll. Adaptations of one task get consecutive head versions.',
      tags,
      params: IdParams,
      body: AdaptRequest(config.limits),
      response: {
        200: { description: 'Adapted: the new head version serves predictions from now on', ...AdaptResult },
        202: { description: 'Accepted and queued (or still running after the wait); Location names the adaptation', headers: LocationHeader, ...Adaptation },
        ...problemResponses(400, 404, 413, 415),
        422: { ...problemResponses(422)[422], description: "The adaptation failed, e.g. diverged to a non-finite loss with guard 'none' (or from a meta-model that is not finite on the support set)" },
        503: { ...problemResponses(503)[503], description: 'The adaptation could not be queued (Redis unreachable)' },
      },
    },
  }, async (request, reply) => {
    const taskId = request.params.id;
    const target = await app.taskFacts(request.tenant.id, taskId);
    if (!target) throw new HttpProblem(404, `No task ${taskId}`);
    const support = request.body.support ? readLabelledSet(target, request.body.support, '/support') : await storedSet(target);
    const model = await app.metaModel(target.metaModelId);
    if (!model) throw new Error(`task ${taskId} names meta-model ${target.metaModelId}, which does not exist`);
    const { steps = model.inner.steps, innerLr = model.inner.lr, guard = DEFAULT_GUARD } = request.body;
    // Redis down: 503 now, before writing the row (the queue connection would otherwise hold the
    // enqueue, and this request, until Redis returns).
    await assertRedisReady(app.queues);

    const created = await createAdaptation(db, target, { support, steps, innerLr, guard }).catch((error: unknown) => {
      // Deleted meanwhile (by a process whose deletion this one's task facts have not heard of yet).
      if (isForeignKeyViolation(error)) throw new HttpProblem(404, `No task ${taskId}`);
      throw error;
    });
    const location = `/tasks/${taskId}/adaptations/${created.id}`;
    // No wait when asked not to, or when the process already holds its most waiters: answer 202 at once.
    const wait = request.body.wait === false ? null : app.adaptWaiters.wait(created.id, config.adaptWaitMs);
    // A client that goes away stops waiting now, not at the timeout: its timer and entry leave with it.
    reply.raw.once('close', () => {
      if (!reply.raw.writableEnded) wait?.cancel();
    });
    try {
      // Bounded: Redis may go away between the check above and here. A late enqueue finds the row
      // failed and runs nothing.
      await withTimeout(enqueue(app.queues, 'adapt', { taskId, adaptationId: created.id }, created.id, { priority: 1 }), ENQUEUE_TIMEOUT_MS, () => new Error(`no answer from Redis within ${ENQUEUE_TIMEOUT_MS} ms`));
    } catch (err) {
      wait?.cancel();
      request.log.error({ err, adaptationId: created.id }, 'could not enqueue the adaptation');
      await recordFailure(db, created.id, 'could not be queued (the job queue was unreachable)', new Date());
      throw new HttpProblem(503, 'The adaptation could not be queued; try again shortly', { extensions: { adaptationId: created.id, dependency: 'redis' } });
    }
    if (!wait) return reply.code(202).header('location', location).send(created);

    const message: AdaptedMessage | null = await wait.outcome;
    if (message?.status === 'succeeded' && message.headVersion !== null && message.supportLoss) {
      const { headVersion, steps: ran, supportLoss, durationMs } = message;
      return { taskId, adaptationId: created.id, headVersion, steps: ran, supportLoss, durationMs };
    }
    if (message?.status === 'failed') throw failed(created.id, message.error);
    // No message in time (slow, or lost): the row says where it got to.
    const row: AdaptationView | null = await getAdaptation(db, request.tenant.id, taskId, created.id);
    if (row?.status === 'succeeded' && row.headVersion !== null && row.supportLoss) {
      return { taskId, adaptationId: row.id, headVersion: row.headVersion, steps: row.steps, supportLoss: row.supportLoss, durationMs: row.durationMs ?? 0 };
    }
    if (row?.status === 'failed') throw failed(created.id, row.error);
    return reply.code(202).header('location', location).send(row ?? created);
  });

  app.get('/tasks/:id/adaptations/:adaptationId', {
    schema: {
      operationId: 'getAdaptation',
      summary: 'Where an adaptation got to: queued, running, succeeded (with its head version and losses) or failed',
      tags,
      params: AdaptationParams,
      response: { 200: Adaptation, ...problemResponses(404) },
    },
  }, async (request) => {
    const { id, adaptationId } = request.params;
    const row = await getAdaptation(db, request.tenant.id, id, adaptationId);
    if (!row) throw new HttpProblem(404, `No adaptation ${adaptationId} of task ${id}`);
    return row;
  });
};

export default adapt;
