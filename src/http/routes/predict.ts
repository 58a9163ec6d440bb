/**
 * GET /predict?taskId=&x=... and POST /tasks/:id/predict: answers from the task's latest adapted
 * head, held ready in this process (predict-cache.ts), so a cached task costs no Postgres or Redis
 * round trip; the forward pass is plain JavaScript for an MLP and, on a backend with compiled
 * kernels, the engine's for a conv body (predict-arrays.ts, convServing).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Prediction } from '../../meta/index.js';
import { runNetwork } from '../../meta/predict-arrays.js';
import { DECIMAL_NUMBER, isFiniteFloat32 } from '../../util/numbers.js';
import { loadHeadSupport } from '../../db/repositories/head-support.js';
import type { HeadLookup, ServedHead } from '../predict-cache.js';
import { PredictUncertainty, type UncertaintyOptions } from '../predict-uncertainty.js';
import { HttpProblem, taskNotAdapted } from '../problem.js';
import { IdParams, invalidField, problemResponses } from '../schemas/common.js';
import { PredictBody, Predictions, PredictQuery } from '../schemas/predict.js';

const tags = ['tasks'];

/** Inputs of GET /predict: each `x` is inputDim comma-separated numbers. */
function parseQueryInputs(xs: readonly string[], inputDim: number): Float64Array {
  const out = new Float64Array(xs.length * inputDim);
  xs.forEach((text, i) => {
    const parts = text.split(',');
    if (parts.length !== inputDim) throw invalidField(`/x/${i}`, `has ${parts.length} values; the task's inputDim is ${inputDim} (comma-separated)`, 'query');
    parts.forEach((part, j) => {
      // Blanks around a value are allowed (`x=1, 2`); trim() returns the same string when there are none.
      const value = DECIMAL_NUMBER.test(part.trim()) ? Number(part) : NaN;
      if (!isFiniteFloat32(value)) throw invalidField(`/x/${i}`, `value ${j + 1} (${JSON.stringify(part.slice(0, 40))}) is not a finite number`, 'query');
      out[i * inputDim + j] = value;
    });
  });
  return out;
}

/** Inputs of POST /tasks/:id/predict: rows of inputDim finite numbers. */
function readBodyInputs(rows: readonly number[][], inputDim: number): Float64Array {
  const out = new Float64Array(rows.length * inputDim);
  rows.forEach((row, i) => {
    if (row.length !== inputDim) throw invalidField(`/x/${i}`, `has ${row.length} values; the task's inputDim is ${inputDim}`);
    row.forEach((value, j) => {
      if (!isFiniteFloat32(value)) throw invalidField(`/x/${i}/${j}`, 'must be a finite number within float32 range');
      out[i * inputDim + j] = value;
    });
  });
  return out;
}

function answer(head: ServedHead, prediction: Prediction) {
  const predictions = prediction.kind === 'regression'
    ? prediction.values
    : prediction.labels.map((index, i) => ({ label: head.labels?.[index] ?? index, labelIndex: index, probabilities: prediction.probabilities[i] }));
  return { taskId: head.taskId, headVersion: head.headVersion, predictions };
}

const predict: FastifyPluginAsyncTypebox = async (app) => {
  const cache = app.predictCache;
  const uncertainty = new PredictUncertainty({ metaModel: app.metaModel, headSupport: (tenantId, taskId, version) => loadHeadSupport(app.db, tenantId, taskId, version) });
  /** The answer with `coverage` / `novelty` (predict-uncertainty.ts): today's fields, then the new ones. */
  async function withUncertainty(head: ServedHead, inputs: Float64Array, options: UncertaintyOptions) {
    const { prediction, fields } = await uncertainty.predict(head, inputs, options);
    return { ...answer(head, prediction), ...fields };
  }

  /** The task's served head, or the 404 / 409 that explains why there is none. */
  function servedHead(tenantId: string, taskId: string): ServedHead | Promise<ServedHead> {
    const found = cache.get(tenantId, taskId);
    // A cached head answers synchronously: the hot path awaits nothing.
    return found instanceof Promise ? found.then((lookup) => headOf(lookup, taskId)) : headOf(found, taskId);
  }

  function headOf(found: HeadLookup, taskId: string): ServedHead {
    if (found.status === 'ready') return found.head;
    if (found.status === 'missing') throw new HttpProblem(404, `No task ${taskId}`);
    if (found.status === 'no-version') throw new HttpProblem(404, `Task ${taskId} has no such head version (GET /tasks/${taskId}/heads lists them)`);
    throw taskNotAdapted(taskId);
  }

  const responses = {
    200: Predictions,
    ...problemResponses(400, 404),
    409: { ...problemResponses(409)[409], description: 'The task was never adapted; or, with coverage or novelty, its meta-model has no calibration or its head no stored support set' },
  };

  app.get('/predict', {
    config: { requestLog: 'exceptions' },
    schema: {
      operationId: 'predict',
      summary: "Predict with a task's latest adapted head (inputs in the query string)",
      tags,
      querystring: PredictQuery(app.config.limits),
      response: responses,
    },
  }, async (request) => {
    const { taskId, x, version } = request.query;
    // A named version is read from the store (uncached: rare, and a version never changes).
    const found = version === undefined ? servedHead(request.tenant.id, taskId) : app.headAtVersion(request.tenant.id, taskId, version).then((lookup) => headOf(lookup, taskId));
    const head = found instanceof Promise ? await found : found;
    const inputs = parseQueryInputs(x, head.network.inputDim);
    if (PredictUncertainty.wanted(request.query)) return withUncertainty(head, inputs, request.query);
    return answer(head, runNetwork(head.network, inputs));
  });

  app.post('/tasks/:id/predict', {
    config: { requestLog: 'exceptions' },
    schema: {
      operationId: 'predictBatch',
      summary: "Predict a batch of inputs with the task's latest adapted head",
      tags,
      params: IdParams,
      body: PredictBody(app.config.limits),
      response: { ...responses, ...problemResponses(413, 415) },
    },
  }, async (request) => {
    const found = servedHead(request.tenant.id, request.params.id);
    const head = found instanceof Promise ? await found : found;
    const inputs = readBodyInputs(request.body.x, head.network.inputDim);
    if (PredictUncertainty.wanted(request.body)) return withUncertainty(head, inputs, request.body);
    return answer(head, runNetwork(head.network, inputs));
  });
};

export default predict;
