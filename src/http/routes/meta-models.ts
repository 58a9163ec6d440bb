/** GET /meta-models, GET /meta-models/:ref, PUT /meta-models/:ref/aliases/:alias. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { getMetaModel, listMetaModels, moveAlias } from '../../db/repositories/meta-models.js';
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
