/**
 * POST /tasks, GET /tasks, GET /tasks/:id, DELETE /tasks/:id; adaptation and prediction live in
 * adapt.ts and predict.ts, examples and head versions in task-examples.ts.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { resolveMetaModelRef } from '../../db/repositories/meta-models.js';
import { Type } from 'typebox';
import { createTask, deleteTask, getTask, listTasks, metaModelShape } from '../../db/repositories/tasks.js';
import { labelNamesProblem } from '../labelled-inputs.js';
import { removeAdaptationJobs } from '../../jobs/queues.js';
import { HttpProblem } from '../problem.js';
import { IdParams, invalidField, LocationHeader, problemResponses, withCursor } from '../schemas/common.js';
import { Task, TaskCreate, TaskList, TaskListQuery } from '../schemas/tasks.js';

const tags = ['tasks'];

const tasks: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/tasks', {
    schema: {
      operationId: 'createTask',
      summary: 'Create a new task bound to a meta-model (then adapt it with POST /tasks/:id/adapt)',
      tags,
      body: TaskCreate,
      response: { 201: { description: 'Created; Location names it', headers: LocationHeader, ...Task }, ...problemResponses(400, 413, 415) },
    },
  }, async (request, reply) => {
    const tenantId = request.tenant.id;
    const { labels, readapt, name } = request.body;
    const metaModelId = await resolveMetaModelRef(app.db, tenantId, request.body.metaModelId);
    if (metaModelId !== null && labels !== undefined) {
      const shape = await metaModelShape(app.db, tenantId, metaModelId);
      const problem = shape && labelNamesProblem(labels, shape);
      if (problem) throw problem;
    }
    const task = metaModelId === null ? null : await createTask(app.db, tenantId, { metaModelId, name, labels, readapt });
    if (!task) throw invalidField('/metaModelId', `names no meta-model (${request.body.metaModelId})`);
    return reply.code(201).header('location', `/tasks/${task.id}`).send(task);
  });

  app.get('/tasks', {
    schema: {
      operationId: 'listTasks',
      summary: 'List tasks, newest first, optionally of one meta-model',
      tags,
      querystring: TaskListQuery,
      response: { 200: TaskList, ...problemResponses(400) },
    },
  }, async (request) => {
    const { metaModelId: ref, limit = 20, cursor } = request.query;
    const metaModelId = ref === undefined ? undefined : await resolveMetaModelRef(app.db, request.tenant.id, ref);
    // A reference that names nothing filters everything out, as a filter on any unknown value would.
    if (metaModelId === null) return { items: [], nextCursor: null };
    return withCursor(() => listTasks(app.db, request.tenant.id, { metaModelId, limit, cursor }));
  });

  app.get('/tasks/:id', {
    schema: {
      operationId: 'getTask',
      summary: 'Get one task, with its latest adapted head version',
      tags,
      params: IdParams,
      response: { 200: Task, ...problemResponses(404) },
    },
  }, async (request) => {
    const task = await getTask(app.db, request.tenant.id, request.params.id);
    if (!task) throw new HttpProblem(404, `No task ${request.params.id}`);
    return task;
  });

  app.delete('/tasks/:id', {
    schema: {
      operationId: 'deleteTask',
      summary: 'Delete a task with everything of it: examples, head versions, adaptations, cached heads and queue jobs',
      description: 'Every API process answers 404 for it from when this answers (erasure of a customer, a patient, a site).',
      tags,
      params: IdParams,
      response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(404) },
    },
  }, async (request, reply) => {
    const tenantId = request.tenant.id;
    const taskId = request.params.id;
    const deleted = await deleteTask(app.db, tenantId, taskId);
    if (!deleted) throw new HttpProblem(404, `No task ${taskId}`);
    await app.announceTaskChange({ tenantId, taskId, change: 'deleted' });
    // The adaptations' queue jobs carry the task id: remove them too (one still running cannot be
    // removed; it finds its row gone, stores nothing, and leaves with the queue's retention).
    await removeAdaptationJobs(app.queues, deleted.adaptationIds).catch((err: unknown) => request.log.warn({ err, taskId }, 'could not remove every adaptation job of a deleted task'));
    return reply.code(204).send(null);
  });
};

export default tasks;
