/** GET /meta-models, GET /meta-models/:ref, PUT /meta-models/:ref/aliases/:alias. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { deleteMetaModel, getMetaModel, listMetaModels, moveAlias } from '../../db/repositories/meta-models.js';
import { HttpProblem } from '../problem.js';
import { problemResponses, withCursor } from '../schemas/common.js';
import { AliasParams, MetaModel, MetaModelList, MetaModelListQuery, MetaModelRefParams } from '../schemas/meta-models.js';

const tags = ['meta-models'];

const notFound = (ref: string) => new HttpProblem(404, `No meta-model ${ref}`);

const metaModels: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/meta-models', {
    schema: {
      operationId: 'listMetaModels',
      summary: 'List meta-model versions, newest first',
      tags,
      querystring: MetaModelListQuery,
      response: { 200: MetaModelList, ...problemResponses(400) },
    },
  }, async (request) => {
    const { name, limit = 20, cursor } = request.query;
    return withCursor(() => listMetaModels(app.db, request.tenant.id, { name, limit, cursor }));
  });

  app.get('/meta-models/:id', {
    schema: {
      operationId: 'getMetaModel',
      summary: 'Get a meta-model by id, name@version or name@alias',
      tags,
      params: MetaModelRefParams,
      response: { 200: MetaModel, ...problemResponses(404) },
    },
  }, async (request) => {
    const model = await getMetaModel(app.db, request.tenant.id, request.params.id);
    if (!model) throw notFound(request.params.id);
    return model;
  });

  app.delete('/meta-models/:id', {
    schema: {
      operationId: 'deleteMetaModel',
      summary: 'Delete a meta-model version that no task and no alias uses',
      description: "409 names what still uses it: its tasks (delete them first) or its aliases (move them; the newest version of a name always has `latest`). Its evaluations go with it.",
      tags,
      params: MetaModelRefParams,
      response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(404, 409) },
    },
  }, async (request, reply) => {
    const outcome = await deleteMetaModel(app.db, request.tenant.id, request.params.id);
    if (outcome.status === 'missing') throw notFound(request.params.id);
    if (outcome.status === 'in-use') {
      const uses = [outcome.tasks > 0 ? `${outcome.tasks} task(s)` : null, outcome.aliases.length > 0 ? `alias(es) ${outcome.aliases.join(', ')}` : null].filter(Boolean).join(' and ');
      throw new HttpProblem(409, `Meta-model ${request.params.id} is in use by ${uses}`, { title: 'Meta-model in use', extensions: { tasks: outcome.tasks, aliases: outcome.aliases } });
    }
    return reply.code(204).send(null);
  });

  app.put('/meta-models/:id/aliases/:alias', {
    schema: {
      operationId: 'setMetaModelAlias',
      summary: 'Point an alias (e.g. production) of the model\'s name at this version',
      tags,
      params: AliasParams,
      response: { 200: MetaModel, ...problemResponses(400, 404) },
    },
  }, async (request) => {
    const model = await moveAlias(app.db, request.tenant.id, request.params.id, request.params.alias);
    if (!model) throw notFound(request.params.id);
    return model;
  });
};

export default metaModels;
