/**
 * Meta-training jobs: POST /meta-train (validated against its families, written, enqueued),
 * list, get, cancel, metrics history; the live event stream is in meta-train-events.ts.
 */
import { createHash } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { ActiveJobLimitError, createJob, getJob, IdempotencyConflictError, listJobMetrics, listJobs, requestCancel, type CancelOutcome, type Idempotency, type NewJob } from '../../db/repositories/jobs.js';
import { loadFamilySpec, summariseFamilies, type FamilySummary } from '../../db/repositories/task-families.js';
import { publishCancel } from '../../jobs/cancel.js';
import { publishJobEvent } from '../../jobs/events.js';
import { enqueueMetaTrain } from '../../jobs/queues.js';
import { EpisodeShapeError } from '../../meta/families/index.js';
import { createFamily, getAlgorithm, modelConfigOf, modelSpec, type StoredModelConfig, resolveHyper, Rng, TrainConfigError } from '../../meta/index.js';
import { withTimeout } from '../../util/timeout.js';
import { assertRedisReady, ENQUEUE_TIMEOUT_MS } from '../dependency-errors.js';
import { HttpProblem } from '../problem.js';
import { IdParams, invalidField, LocationHeader, problemResponses, withCursor } from '../schemas/common.js';
import { IdempotencyHeaders, Job, JOB_EXAMPLES, JobList, JobListQuery, MetaTrainCreate, MetricsHistory } from '../schemas/meta-train.js';

const tags = ['meta-train'];

/** Key order and spacing do not make two requests different. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * A create request's Idempotency-Key with the hash of its body (a replay must send the same body,
 * key order aside), or undefined without a key. POST /meta-train and POST /studies.
 */
export function requestIdempotency(key: string | undefined, body: unknown, ttlMs: number): Idempotency | undefined {
  if (key === undefined) return undefined;
  return { key, requestHash: createHash('sha256').update(canonicalJson(body)).digest('hex'), ttlMs };
}

/** A family's image shape in words, for messages. */
const shapeText = (family: FamilySummary) => (family.inputShape.length ? `[${family.inputShape.join(', ')}]` : 'none');

/**
 * The images a conv body convolves: the shape the client gives, or else the first family's. Families
 * trained together feed one body, so every family that declares a shape must have that one; without
 * a shape given, every family must declare the first one's.
 */
function convInputShape(familyIds: readonly string[], families: Map<string, FamilySummary>, given: number[] | undefined): number[] {
  const first = families.get(familyIds[0])!;
  if (given === undefined && first.inputShape.length === 0) {
    throw invalidField('/model/inputShape', `is required for a conv body: family '${first.name}' declares no inputShape; give model.inputShape [height, width, channels] (product ${first.inputDim}), or create the family with its inputShape`);
  }
  const shape = given ?? first.inputShape;
  familyIds.forEach((id, i) => {
    const family = families.get(id)!;
    if (family.inputShape.length === 0 && given !== undefined) return;
    if (family.inputShape.join('x') !== shape.join('x')) {
      throw invalidField(given === undefined ? `/familyIds/${i}` : '/model/inputShape', given === undefined
        ? `family '${family.name}' has inputShape ${shapeText(family)} but '${first.name}' has ${shapeText(first)}; families trained together with a conv body must agree on inputShape`
        : `[${given.join(', ')}] differs from the inputShape ${shapeText(family)} of family '${family.name}'; leave model.inputShape out to use the families' own`);
    }
  });
  return [...shape];
}

/**
 * Turns a request into a job: its families must exist for this tenant and agree on what a model sees
 * (kind, inputDim, ways); the algorithm must suit them; the engine fills and checks the
 * hyper-parameters and model; and each family must be able to draw an episode of the asked shape
 * (unless `checkEpisodes` is false: a study checks that once for all its candidates, which share it).
 */
export async function planJob(app: FastifyInstance, tenantId: string, body: MetaTrainCreate, options: { checkEpisodes?: boolean } = {}): Promise<NewJob> {
  const families = await summariseFamilies(app.db, tenantId, body.familyIds);
  body.familyIds.forEach((id, i) => {
    const family = families.get(id);
    if (!family) throw invalidField(`/familyIds/${i}`, `names no task family (${id})`);
    // Nothing half-written is trained on: an upload must be committed first.
    if (family.status !== 'ready') throw invalidField(`/familyIds/${i}`, `family '${family.name}' is ${family.status}, not ready: commit its upload first (POST /task-families/${id}/commit)`);
  });
  const first = families.get(body.familyIds[0])!;
  body.familyIds.slice(1).forEach((id, i) => {
    const other = families.get(id)!;
    if (other.kind !== first.kind || other.inputDim !== first.inputDim || other.nWay !== first.nWay) {
      throw invalidField(
        `/familyIds/${i + 1}`,
        `family '${other.name}' (${other.kind}, inputDim ${other.inputDim}${other.nWay ? `, ${other.nWay}-way` : ''}) does not match '${first.name}' (${first.kind}, inputDim ${first.inputDim}${first.nWay ? `, ${first.nWay}-way` : ''}); families trained together must agree`,
      );
    }
  });
  const { kinds } = getAlgorithm(body.algorithm);
  if (!kinds.includes(first.kind)) {
    throw invalidField('/algorithm', `${body.algorithm} needs ${kinds.join(' or ')} families; '${first.name}' is ${first.kind}`);
  }
  let hyper;
  try {
    hyper = resolveHyper(body.hyper, body.algorithm);
  } catch (error) {
    if (error instanceof TrainConfigError) throw invalidField(error.field, error.message.slice(error.field.length + 2));
    throw error;
  }
  const asked = body.model ?? {};
  let config = asked;
  if (asked.body === 'conv') config = { ...asked, inputShape: convInputShape(body.familyIds, families, asked.inputShape) };
  let model: StoredModelConfig;
  try {
    // Stored with its defaults filled in, so the job says exactly what it trains.
    model = modelConfigOf(modelSpec(first.kind, first.inputDim, config, first.nWay ?? undefined));
  } catch (error) {
    throw invalidField('/model', (error as Error).message);
  }
  const shape = { shots: hyper.shots, queryShots: hyper.queryShots, ways: first.nWay ?? undefined };
  for (const [i, id] of options.checkEpisodes === false ? [] : body.familyIds.entries()) {
    const family = createFamily((await loadFamilySpec(app.db, tenantId, id))!);
    try {
      for (const split of ['train', 'val'] as const) family.sampleEpisode(new Rng(0), split, shape);
    } catch (error) {
      if (!(error instanceof EpisodeShapeError)) throw error;
      throw invalidField('/hyper/shots', `shots ${hyper.shots} + queryShots ${hyper.queryShots} cannot be drawn from family ${i} (${id}): ${error.message}`);
    }
  }
  const name = body.name ?? `${first.name}-${body.algorithm}`;
  return { name, algorithm: body.algorithm, familyIds: body.familyIds, model, hyper };
}

/**
 * Cancels job `id` of the tenant: a queued one is taken off the queue (a worker that already fetched
 * it finds the row cancelled and stops) and any event-stream reader is told it ended; a running
 * one's worker, in whichever process, is told through Redis (a lost message is covered by the worker
 * reading cancelRequestedAt when it writes progress).
 */
export async function cancelJob(app: FastifyInstance, redis: Redis, tenantId: string, id: string): Promise<CancelOutcome> {
  const result = await requestCancel(app.db, tenantId, id);
  if (result.outcome === 'cancelled') {
    await app.queues['meta-train'].remove(id).catch(() => 0);
    await publishJobEvent(redis, app.config.queuePrefix, id, 'status', { status: 'cancelled', ...result.job.progress })
      .catch((err: unknown) => app.log.warn({ err, jobId: id }, 'could not publish the cancelled event'));
  } else if (result.outcome === 'requested') {
    await publishCancel(redis, app.config.queuePrefix, id)
      .catch((err: unknown) => app.log.warn({ err, jobId: id }, 'could not publish the cancel request'));
  }
  return result;
}

export interface MetaTrainRouteOptions {
  /** Where cancel requests and `cancelled` events are published (the app owns and closes it). */
  redis: Redis;
}

const metaTrain: FastifyPluginAsyncTypebox<MetaTrainRouteOptions> = async (app, { redis }) => {

  app.post('/meta-train', {
    schema: {
      operationId: 'createMetaTrainJob',
      summary: 'Start a meta-training job (answers at once; the job runs on the worker pool)',
      tags,
      headers: IdempotencyHeaders,
      body: MetaTrainCreate(app.config.limits),
      response: {
        202: { description: 'Job created and queued; Location names it', headers: LocationHeader, ...Job, examples: [JOB_EXAMPLES.queued] },
        200: { description: 'Idempotent replay: the job this Idempotency-Key and body created before', headers: LocationHeader, ...Job },
        ...problemResponses(400, 413, 415, 422, 429, 503),
      },
    },
  }, async (request, reply) => {
    const tenantId = request.tenant.id;
    const key = request.headers['idempotency-key'];
    // Refuse before writing anything: a 503 must leave no job behind for the client's retry to duplicate.
    await assertRedisReady(app.queues);
    const plan = await planJob(app, tenantId, request.body);
    let result;
    try {
      result = await createJob(app.db, tenantId, plan, requestIdempotency(key, request.body, app.config.idempotencyTtlMs), {
        maxActive: app.config.limits.maxConcurrentJobsPerTenant,
      });
    } catch (error) {
      if (error instanceof IdempotencyConflictError) throw new HttpProblem(422, error.message, { extensions: { jobId: error.jobId } });
      // 429 rather than 409: it is a quota on the tenant, not a conflict with one resource's state.
      if (error instanceof ActiveJobLimitError) throw new HttpProblem(429, error.message, { extensions: { limit: error.limit, active: error.active } });
      throw error;
    }
    const { job, created } = result;
    if (created) {
      // The row is written, so the job exists whatever Redis does now: if this enqueue fails (or is
      // slow: Redis just went away), the reconciler enqueues every queued row it finds.
      await withTimeout(enqueueMetaTrain(app.queues, job.id), ENQUEUE_TIMEOUT_MS, () => new Error(`no answer from Redis within ${ENQUEUE_TIMEOUT_MS} ms`)).catch((err: unknown) => request.log.warn({ err, jobId: job.id }, 'enqueue failed; the reconciler will enqueue the job'));
    }
    return reply.code(created ? 202 : 200).header('location', `/meta-train/${job.id}`).send(job);
  });

  app.get('/meta-train', {
    schema: {
      operationId: 'listMetaTrainJobs',
      summary: "List meta-training jobs, newest first, optionally by status or a study's trials",
      tags,
      querystring: JobListQuery,
      response: { 200: JobList, ...problemResponses(400) },
    },
  }, async (request) => {
    const { status, studyId, limit = 20, cursor } = request.query;
    return withCursor(() => listJobs(app.db, request.tenant.id, { status, studyId, limit, cursor }));
  });

  app.get('/meta-train/:id', {
    schema: { operationId: 'getMetaTrainJob', summary: 'Get one meta-training job', tags, params: IdParams, response: { 200: Job, ...problemResponses(404) } },
  }, async (request) => {
    const job = await getJob(app.db, request.tenant.id, request.params.id);
    if (!job) throw new HttpProblem(404, `No meta-training job ${request.params.id}`);
    return job;
  });

  app.post('/meta-train/:id/cancel', {
    schema: {
      operationId: 'cancelMetaTrainJob',
      summary: 'Cancel a job: a queued one at once, a running one within one iteration',
      tags,
      params: IdParams,
      response: { 202: Job, ...problemResponses(404, 409, 503) },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    // A cancel takes a queued job off the queue and tells the running one's worker: both need Redis.
    await assertRedisReady(app.queues);
    const result = await cancelJob(app, redis, request.tenant.id, id);
    if (result.outcome === 'missing') throw new HttpProblem(404, `No meta-training job ${id}`);
    const { job } = result;
    if (result.outcome === 'ended') throw new HttpProblem(409, `Job ${id} already ended (${job.status})`, { extensions: { status: job.status } });
    return reply.code(202).send(job);
  });

  app.get('/meta-train/:id/metrics', {
    schema: {
      operationId: 'getMetaTrainMetrics',
      summary: 'The learning curve: one entry per evaluation (every evalEvery iterations)',
      tags,
      params: IdParams,
      response: { 200: MetricsHistory, ...problemResponses(404) },
    },
  }, async (request) => {
    const items = await listJobMetrics(app.db, request.tenant.id, request.params.id);
    if (!items) throw new HttpProblem(404, `No meta-training job ${request.params.id}`);
    return { items };
  });
};

export default metaTrain;
