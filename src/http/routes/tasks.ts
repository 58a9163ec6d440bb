/** POST /tasks, GET /tasks, GET /tasks/:id; adaptation and prediction live in adapt.ts and predict.ts. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { resolveMetaModelRef } from '../../db/repositories/meta-models.js';
import { createTask, getTask, listTasks } from '../../db/repositories/tasks.js';
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
    const metaModelId = await resolveMetaModelRef(app.db, tenantId, request.body.metaModelId);
    const task = metaModelId === null ? null : await createTask(app.db, tenantId, { metaModelId, name: request.body.name });
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
};

export default tasks;
