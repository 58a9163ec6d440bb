/**
 * Evaluations of a meta-model: POST /meta-models/:id/evaluations (checked, written, queued on the
 * worker pool), GET /meta-models/:id/evaluations (its evaluations, newest first) and
 * GET /meta-models/:id/evaluations/:evaluationId. Nested under the meta-model like a task's
 * adaptations: an evaluation is always of one model, and `:id` takes the same references
 * (`name@alias`) as the model's own routes.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import type { Static } from 'typebox';
import { createEvaluation, getEvaluation, listEvaluations, type EvaluationRequest } from '../../db/repositories/evaluations.js';
import { metaModelFamilyIds, resolveMetaModelRef } from '../../db/repositories/meta-models.js';
import { summariseFamilies } from '../../db/repositories/task-families.js';
import { evaluationFamily } from '../../jobs/evaluate-processor.js';
import { enqueueEvaluation } from '../../jobs/queues.js';
import { EpisodeShapeError } from '../../meta/families/index.js';
import { EVALUATION_BASELINES, getAlgorithm, Rng, type MetaModel } from '../../meta/index.js';
import { withTimeout } from '../../util/timeout.js';
import { assertRedisReady } from '../dependency-errors.js';
import { HttpProblem } from '../problem.js';
import { invalidField, LocationHeader, problemResponses, withCursor } from '../schemas/common.js';
import { DEFAULT_EVALUATION_SHOTS, DEFAULT_EVALUATION_TASKS, DEFAULT_QUERY_SHOTS, Evaluation, EvaluationCreate, EvaluationList, EvaluationListQuery, EvaluationParams } from '../schemas/evaluations.js';
import { MetaModelRefParams } from '../schemas/meta-models.js';

const tags = ['evaluations'];

/** As POST /meta-train: Redis answered a moment before, and the reconciler enqueues a row whose enqueue was lost. */
const ENQUEUE_TIMEOUT_MS = 2_000;

const noModel = (ref: string) => new HttpProblem(404, `No meta-model ${ref}`);

/**
 * The request with its defaults, checked against the model and the family it evaluates on: a named
 * family must be the tenant's, ready, and fit the model; every number of shots (with queryShots) must
 * be drawable from the family's test split.
 */
async function planEvaluation(app: FastifyInstance, tenantId: string, metaModelId: string, model: MetaModel, body: Static<ReturnType<typeof EvaluationCreate>>): Promise<EvaluationRequest> {
  const settings: EvaluationRequest = {
    shots: body.shots ?? DEFAULT_EVALUATION_SHOTS,
    // An algorithm without inner steps (ProtoNets, multitask) ignores them: one row, honestly labelled 0.
    steps: body.steps ?? [getAlgorithm(model.algorithm).runsInnerSteps ? model.inner.steps : 0],
    tasks: body.tasks ?? DEFAULT_EVALUATION_TASKS,
    queryShots: body.queryShots ?? DEFAULT_QUERY_SHOTS,
    seed: body.seed ?? 0,
    baselines: body.baselines ?? [...EVALUATION_BASELINES],
    ...(body.familyId === undefined ? {} : { familyId: body.familyId }),
  };
  const { spec } = model;
  const ways = spec.kind === 'classification' ? spec.outputDim : undefined;
  let familyIds: string[];
  if (body.familyId === undefined) {
    familyIds = (await metaModelFamilyIds(app.db, metaModelId)) ?? [];
  } else {
    const family = (await summariseFamilies(app.db, tenantId, [body.familyId])).get(body.familyId);
    if (!family) throw invalidField('/familyId', `names no task family (${body.familyId})`);
    if (family.status !== 'ready') throw invalidField('/familyId', `family '${family.name}' is ${family.status}, not ready`);
    if (family.kind !== spec.kind || family.inputDim !== spec.inputDim || (family.nWay ?? undefined) !== ways) {
      throw invalidField('/familyId', `family '${family.name}' (${family.kind}, inputDim ${family.inputDim}${family.nWay ? `, ${family.nWay}-way` : ''}) does not fit the meta-model (${spec.kind}, inputDim ${spec.inputDim}${ways ? `, ${ways}-way` : ''})`);
    }
    // A conv body reads inputs as images of its shape: a family of other images would be misread.
    if (spec.body === 'conv' && family.inputShape.length > 0 && family.inputShape.join('x') !== spec.inputShape!.join('x')) {
      throw invalidField('/familyId', `family '${family.name}' holds [${family.inputShape.join(', ')}] images; the meta-model's conv body reads [${spec.inputShape!.join(', ')}]`);
    }
    familyIds = [body.familyId];
  }
  const family = await evaluationFamily(app.db, tenantId, familyIds);
  if (!family) throw new HttpProblem(409, "A task family this meta-model was trained on is gone or not ready: name one to evaluate on with familyId");
  settings.shots.forEach((shots, i) => {
    try {
      family.sampleEpisode(new Rng(0), 'test', { shots, queryShots: settings.queryShots, ways });
    } catch (error) {
      if (!(error instanceof EpisodeShapeError)) throw error;
      throw invalidField(`/shots/${i}`, `shots ${shots} + queryShots ${settings.queryShots} cannot be drawn from the test split of '${family.name}': ${error.message}`);
    }
  });
  return settings;
}

const evaluations: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/meta-models/:id/evaluations', {
    schema: {
      operationId: 'createEvaluation',
      summary: 'Evaluate a meta-model against baselines on held-out tasks (answers at once; runs on the worker pool)',
      description:
        "Adapts the meta-model to held-out tasks (its families' test split, or the family `familyId` names) for every number of `shots` and of inner `steps`, and scores each query set, next to the baselines on the same tasks and support sets: `unadapted` (the meta-model as is), `scratch` (a fresh model of the same shape trained on the support set alone), `multitask` (the newest multitask meta-model of the same families, when there is one) and `raw` (no model: nearest class mean of the raw inputs, or ridge regression on them); `baselines` picks a subset (default all). Each row is a mean over tasks with its 95% confidence interval. Poll the Location until `status` is `succeeded`.",
      tags,
      params: MetaModelRefParams,
      body: EvaluationCreate(app.config.limits),
      response: {
        202: { description: 'Evaluation created and queued; Location names it', headers: LocationHeader, ...Evaluation },
        ...problemResponses(400, 404, 409, 413, 415, 503),
      },
    },
  }, async (request, reply) => {
    const tenantId = request.tenant.id;
    const metaModelId = await resolveMetaModelRef(app.db, tenantId, request.params.id);
    if (metaModelId === null) throw noModel(request.params.id);
    const model = await app.metaModel(metaModelId);
    if (!model) throw noModel(request.params.id);
    // Refuse before writing anything: a 503 must leave no evaluation behind.
    await assertRedisReady(app.queues);
    const settings = await planEvaluation(app, tenantId, metaModelId, model, request.body);
    const evaluation = await createEvaluation(app.db, tenantId, metaModelId, settings);
    await withTimeout(enqueueEvaluation(app.queues, evaluation.id), ENQUEUE_TIMEOUT_MS, () => new Error(`no answer from Redis within ${ENQUEUE_TIMEOUT_MS} ms`))
      .catch((err: unknown) => request.log.warn({ err, evaluationId: evaluation.id }, 'enqueue failed; the reconciler will enqueue the evaluation'));
    return reply.code(202).header('location', `/meta-models/${metaModelId}/evaluations/${evaluation.id}`).send(evaluation);
  });

  app.get('/meta-models/:id/evaluations', {
    schema: {
      operationId: 'listEvaluations',
      summary: "A meta-model's evaluations, newest first",
      tags,
      params: MetaModelRefParams,
      querystring: EvaluationListQuery,
      response: { 200: EvaluationList, ...problemResponses(400, 404) },
    },
  }, async (request) => {
    const metaModelId = await resolveMetaModelRef(app.db, request.tenant.id, request.params.id);
    if (metaModelId === null) throw noModel(request.params.id);
    const { limit = 20, cursor } = request.query;
    return withCursor(() => listEvaluations(app.db, request.tenant.id, metaModelId, { limit, cursor }));
  });

  app.get('/meta-models/:id/evaluations/:evaluationId', {
    schema: {
      operationId: 'getEvaluation',
      summary: 'Get one evaluation: its status and, once succeeded, its rows',
      tags,
      params: EvaluationParams,
      response: { 200: Evaluation, ...problemResponses(404) },
    },
  }, async (request) => {
    const { id, evaluationId } = request.params;
    const metaModelId = await resolveMetaModelRef(app.db, request.tenant.id, id);
    const evaluation = metaModelId === null ? null : await getEvaluation(app.db, request.tenant.id, evaluationId);
    if (!evaluation || evaluation.metaModelId !== metaModelId) throw new HttpProblem(404, `No evaluation ${evaluationId} of meta-model ${id}`);
    return evaluation;
  });
};

export default evaluations;
