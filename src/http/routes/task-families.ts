/** POST /task-families, GET /task-families, GET /task-families/:id. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { createTaskFamily, getTaskFamily, listTaskFamilies } from '../../db/repositories/task-families.js';
import { createFamily, FamilySpecError, type FamilySpec } from '../../meta/index.js';
import { HttpProblem } from '../problem.js';
import { IdParams, invalidField, LocationHeader, problemResponses, withCursor } from '../schemas/common.js';
import { TaskFamily, TaskFamilyCreate, TaskFamilyList, TaskFamilyListQuery } from '../schemas/task-families.js';

const tags = ['task-families'];

/** The engine decides what a valid family is; its field paths become the problem's `errors`. */
function validate(spec: FamilySpec): void {
  try {
    createFamily(spec);
  } catch (error) {
    if (error instanceof FamilySpecError) throw invalidField(error.path, error.detail);
    throw error;
  }
}

const taskFamilies: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/task-families', {
    schema: {
      operationId: 'createTaskFamily',
      summary: 'Define a task family from a built-in generator or uploaded dataset tasks',
      tags,
      body: TaskFamilyCreate(app.config.limits),
      response: { 201: { description: 'Created; Location names it', headers: LocationHeader, ...TaskFamily }, ...problemResponses(400, 413, 415) },
    },
  }, async (request, reply) => {
    const spec = request.body as FamilySpec;
    validate(spec);
    const family = await createTaskFamily(app.db, request.tenant.id, spec);
    return reply.code(201).header('location', `/task-families/${family.id}`).send(family);
  });

  app.get('/task-families', {
    schema: {
      operationId: 'listTaskFamilies',
      summary: 'List task families, newest first',
      tags,
      querystring: TaskFamilyListQuery,
      response: { 200: TaskFamilyList, ...problemResponses(400) },
    },
  }, async (request) => withCursor(() => listTaskFamilies(app.db, request.tenant.id, { limit: request.query.limit ?? 20, cursor: request.query.cursor })));

  app.get('/task-families/:id', {
    schema: {
      operationId: 'getTaskFamily',
      summary: 'Get one task family',
      tags,
      params: IdParams,
      response: { 200: TaskFamily, ...problemResponses(404) },
    },
  }, async (request) => {
    const family = await getTaskFamily(app.db, request.tenant.id, request.params.id);
    if (!family) throw new HttpProblem(404, `No task family ${request.params.id}`);
    return family;
  });
};

export default taskFamilies;
