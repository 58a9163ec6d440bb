/**
 * A task's stored labelled examples (POST, GET, DELETE /tasks/:id/examples) and its head versions
 * (GET /tasks/:id/heads, PUT /tasks/:id/head).
 *
 * An append is scored first ("test, then train"): the head serving at that moment (the predict
 * cache's, exactly what /predict answers) predicts each example before it joins the set, and the
 * task's prequential totals take the scores in the same transaction as the examples. For a task with
 * `readapt: auto` the append also starts an adaptation of the stored set when none is under way
 * (task-examples.ts continueReadapt keeps one going while newer examples arrive).
 *
 * A pin writes the row, then tells every API process (task-changes.ts) before it answers.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { SupportArrays } from '../../db/repositories/adaptations.js';
import { appendExamples, clearExamples, listExamples, type AppendScores } from '../../db/repositories/task-examples.js';
import { listHeads, pinHead } from '../../db/repositories/task-heads.js';
import type { AdaptTarget } from '../../db/repositories/tasks.js';
import { enqueueReadapt } from '../../jobs/queues.js';
import { DEFAULT_GUARD } from '../../meta/index.js';
import { runNetwork } from '../../meta/predict-arrays.js';
import { recordAppend } from '../../metrics/live.js';
import { readLabelledSet } from '../labelled-inputs.js';
import type { ServedHead } from '../predict-cache.js';
import { HttpProblem } from '../problem.js';
import { IdParams, invalidField, problemResponses } from '../schemas/common.js';
import { ExampleList, ExamplesAppend, ExamplesAppended, ExamplesQuery, HeadList, HeadPin } from '../schemas/task-examples.js';

const tags = ['tasks'];

/** Each example's score under `head`: 1 or 0 (classification), or the squared error; and what it predicted. */
export function scoreExamples(head: ServedHead, examples: SupportArrays): AppendScores & { predicted: number[] } {
  const prediction = runNetwork(head.network, Float64Array.from(examples.x));
  const predicted = prediction.kind === 'regression' ? Array.from(prediction.values) : Array.from(prediction.labels);
  const perExample = predicted.map((p, i) => (prediction.kind === 'regression' ? (p - examples.y[i]) ** 2 : p === examples.y[i] ? 1 : 0));
  const sum = perExample.reduce((a, b) => a + b, 0);
  return prediction.kind === 'regression' ? { perExample, correct: 0, squaredError: sum, predicted } : { perExample, correct: sum, squaredError: 0, predicted };
}

const taskExamples: FastifyPluginAsyncTypebox = async (app) => {
  const { db, config } = app;
  const notFound = (id: string) => new HttpProblem(404, `No task ${id}`);

  /** The head serving now, or null when the task was never adapted. */
  async function servingHead(tenantId: string, taskId: string): Promise<ServedHead | null> {
    const found = await app.predictCache.get(tenantId, taskId);
    if (found.status === 'missing') throw notFound(taskId);
    return found.status === 'ready' ? found.head : null;
  }

  /** readapt auto's adaptation settings: the meta-model's defaults, as POST /adapt without options. */
  async function readaptSettings(target: AdaptTarget) {
    const model = await app.metaModel(target.metaModelId);
    if (!model) throw new Error(`task ${target.taskId} names meta-model ${target.metaModelId}, which does not exist`);
    return { steps: model.inner.steps, innerLr: model.inner.lr, guard: DEFAULT_GUARD };
  }

  app.post('/tasks/:id/examples', {
    schema: {
      operationId: 'appendTaskExamples',
      summary: "Append labelled examples to the task's stored support set (each scored first by the serving head)",
      description: "Examples beyond MAX_TASK_EXAMPLES evict the oldest (each class keeps its newest few, so none disappears). Each example is first predicted by the head serving at that moment: the task's `live` accuracy or MSE is prequential (test, then train). A bad value answers 400 naming its field and index, and nothing of the request is stored. With `readapt: auto` the task then adapts on its stored examples by itself.",
      tags,
      params: IdParams,
      body: ExamplesAppend(config.limits),
      response: { 200: ExamplesAppended, ...problemResponses(400, 404, 413, 415) },
    },
  }, async (request) => {
    const taskId = request.params.id;
    const tenantId = request.tenant.id;
    const target = await app.taskFacts(tenantId, taskId);
    if (!target) throw notFound(taskId);
    const examples = readLabelledSet(target, request.body);
    const head = await servingHead(tenantId, taskId);
    const scores = head ? scoreExamples(head, examples) : null;
    const settings = target.readapt === 'auto' ? await readaptSettings(target) : { steps: 0, innerLr: 0, guard: DEFAULT_GUARD };
    const result = await appendExamples(db, target, { examples, scores, maxExamples: config.limits.maxTaskExamples, readapt: settings });
    if (!result) throw notFound(taskId);
    if (result.readaptId) {
      // Written to Postgres already: a lost enqueue is the reconciler's to repair.
      await enqueueReadapt(app.queues, taskId, result.readaptId, config.readaptDelayMs).catch((err: unknown) => {
        request.log.warn({ err, adaptationId: result.readaptId }, 'could not enqueue the readapt; the reconciler will');
      });
    }
    recordAppend(target.kind, result.added, scores?.perExample ?? null, target.kind === 'classification' ? result.recentMean : null);
    const classification = target.kind === 'classification';
    return {
      added: result.added,
      stored: result.stored,
      evicted: result.evicted,
      lastSeq: result.lastSeq,
      prequential: {
        scored: scores ? examples.n : 0,
        ...(classification ? { correct: scores?.correct ?? 0 } : { squaredError: scores?.squaredError ?? 0 }),
        headVersion: head?.headVersion ?? null,
        predicted: scores?.predicted ?? [],
      },
      ...(result.readaptId ? { readaptId: result.readaptId } : {}),
    };
  });

  app.get('/tasks/:id/examples', {
    schema: {
      operationId: 'listTaskExamples',
      summary: "The task's stored examples, oldest first, in pages",
      tags,
      params: IdParams,
      querystring: ExamplesQuery,
      response: { 200: ExampleList, ...problemResponses(400, 404) },
    },
  }, async (request) => {
    const { id } = request.params;
    const target = await app.taskFacts(request.tenant.id, id);
    const page = target && (await listExamples(db, request.tenant.id, id, { limit: request.query.limit ?? 100, after: request.query.after ?? 0 }));
    if (!target || !page) throw notFound(id);
    const names = target.labels;
    return { ...page, items: page.items.map((item) => (names.length > 0 ? { ...item, label: names[item.y] } : item)) };
  });

  app.delete('/tasks/:id/examples', {
    schema: {
      operationId: 'clearTaskExamples',
      summary: "Delete every stored example of the task (its heads and live record stay)",
      tags,
      params: IdParams,
      response: { 204: Type.Null({ description: 'Deleted' }), ...problemResponses(404) },
    },
  }, async (request, reply) => {
    const deleted = await clearExamples(db, request.tenant.id, request.params.id);
    if (deleted === null) throw notFound(request.params.id);
    return reply.code(204).send(null);
  });

  app.get('/tasks/:id/heads', {
    schema: {
      operationId: 'listTaskHeads',
      summary: "The task's head versions, newest first, with the pinned one",
      tags,
      params: IdParams,
      querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })) }, { additionalProperties: false }),
      response: { 200: HeadList, ...problemResponses(400, 404) },
    },
  }, async (request) => {
    const heads = await listHeads(db, request.tenant.id, request.params.id, request.query.limit ?? 100);
    if (!heads) throw notFound(request.params.id);
    return heads;
  });

  app.put('/tasks/:id/head', {
    schema: {
      operationId: 'pinTaskHead',
      summary: 'Serve one head version (roll back or forward), or the latest again (null)',
      description: 'Takes effect on every API process before this answers: predictions, exports and the prequential scoring of appends use the pinned version. New adaptations still add versions (the latest moves on) without moving the pin.',
      tags,
      params: IdParams,
      body: HeadPin,
      response: { 200: HeadList, ...problemResponses(400, 404) },
    },
  }, async (request) => {
    const { id } = request.params;
    const tenantId = request.tenant.id;
    const outcome = await pinHead(db, tenantId, id, request.body.version);
    if (outcome.status === 'missing') throw notFound(id);
    if (outcome.status === 'no-version') throw invalidField('/version', `names no head version of task ${id} (GET /tasks/${id}/heads lists them)`);
    await app.announceTaskChange({ tenantId, taskId: id, change: 'pinned' });
    const heads = await listHeads(db, tenantId, id, 100);
    if (!heads) throw notFound(id);
    return heads;
  });
};

export default taskExamples;
