/**
 * Studies: POST /studies (checked against the families like every candidate's job would be, written
 * with its first rung's trials, which are enqueued as far as the tenant's job quota allows), list,
 * get, cancel. The scheduler in the workers moves a study on (jobs/study-scheduler.ts); the live
 * stream is in study-events.ts.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { ActiveJobLimitError } from '../../db/repositories/jobs.js';
import { cancelStudy, createStudy, getStudy, listStudies, StudyIdempotencyConflictError, type NewStudy, type StoredCandidate } from '../../db/repositories/studies.js';
import { summariseFamilies } from '../../db/repositories/task-families.js';
import { evaluationFamily } from '../../jobs/evaluate-processor.js';
import { enqueueMetaTrain } from '../../jobs/queues.js';
import { EpisodeShapeError } from '../../meta/families/index.js';
import { DEFAULT_HYPER, Rng, type StoredModelConfig } from '../../meta/index.js';
import { defaultSearchSpace, defaultTrials, DEFAULT_STUDY_ITERATIONS, STUDY_ETA, StudyBudgetError, studySchedule, type StudyCandidate } from '../../meta/study.js';
import { withTimeout } from '../../util/timeout.js';
import { assertRedisReady, ENQUEUE_TIMEOUT_MS } from '../dependency-errors.js';
import { HttpProblem } from '../problem.js';
import { IdParams, invalidField, LocationHeader, problemResponses, withCursor } from '../schemas/common.js';
import { DEFAULT_EVALUATION_TASKS, DEFAULT_QUERY_SHOTS } from '../schemas/evaluations.js';
import { IdempotencyHeaders, type MetaTrainCreate } from '../schemas/meta-train.js';
import { Study, StudyCreate, StudyList, StudyListQuery } from '../schemas/studies.js';
import { cancelJob, planJob, requestIdempotency } from './meta-train.js';

const tags = ['studies'];

/** Hyper-parameters a candidate may not set: the study sets them for every trial. */
const STUDY_FIELDS = { iterations: 'budget.iterations and the rungs', shots: 'shots' } as const;

/**
 * One candidate as a job would be planned (planJob: families, algorithm, model, hyper-parameters),
 * at the top rung's iterations; a refusal names the candidate's field (`/candidates/2/algorithm`),
 * or the study's own (`/shots`).
 */
async function planCandidate(app: FastifyInstance, tenantId: string, body: StudyCreate, candidate: StudyCandidate, index: number, plan: { shots: number; iterations: number; checkEpisodes: boolean }) {
  try {
    // A candidate's hyper-parameters are the API's (the request schema, or the default space's grid).
    const hyper = { ...candidate.hyper, shots: plan.shots, iterations: plan.iterations } as MetaTrainCreate['hyper'];
    return await planJob(app, tenantId, { name: body.name, familyIds: body.familyIds, algorithm: candidate.algorithm, model: body.model, hyper }, { checkEpisodes: plan.checkEpisodes });
  } catch (error) {
    const issue = error instanceof HttpProblem ? error.errors?.[0] : undefined;
    if (!issue) throw error;
    if (issue.path === '/hyper/shots') throw invalidField('/shots', issue.message);
    if (body.candidates && (issue.path.startsWith('/algorithm') || issue.path.startsWith('/hyper'))) throw invalidField(`/candidates/${index}${issue.path}`, issue.message);
    throw error;
  }
}

/**
 * Turns a request into a study: its candidates (the user's, or the default space for the families'
 * kind), the first `budget.trials` of them (default: all of the user's, or as many of the default space
 * as {@link defaultTrials} gives the budget), each checked as its job would be; the successive-halving
 * schedule the budget affords; and the winner's evaluation, which must be drawable from the test split.
 */
async function planStudy(app: FastifyInstance, tenantId: string, body: StudyCreate): Promise<NewStudy> {
  if (body.promote === 'latest') throw invalidField('/promote', "'latest' already moves to the study's winner when it ends; name another alias (e.g. production)");
  body.candidates?.forEach((candidate, i) => {
    for (const [field, owner] of Object.entries(STUDY_FIELDS)) {
      if (candidate.hyper?.[field as keyof typeof STUDY_FIELDS] !== undefined) throw invalidField(`/candidates/${i}/hyper/${field}`, `is set by the study (${owner}), not by a candidate`);
    }
  });
  const families = await summariseFamilies(app.db, tenantId, body.familyIds);
  const first = families.get(body.familyIds[0]);
  if (!first) throw invalidField('/familyIds/0', `names no task family (${body.familyIds[0]})`);
  const space: StudyCandidate[] = body.candidates?.map((c) => ({ algorithm: c.algorithm, hyper: c.hyper ?? {} })) ?? defaultSearchSpace(first.kind);
  const budget = body.budget?.iterations ?? DEFAULT_STUDY_ITERATIONS;
  const maxIterations = app.config.limits.maxIterations;
  const chosen = space.slice(0, body.budget?.trials ?? (body.candidates ? space.length : defaultTrials(space, budget, { eta: STUDY_ETA, maxIterations })));
  let schedule;
  try {
    schedule = studySchedule(chosen.length, budget, { eta: STUDY_ETA, maxIterations });
  } catch (error) {
    if (error instanceof StudyBudgetError) throw invalidField('/budget/iterations', error.message);
    throw error;
  }
  const shots = body.shots ?? DEFAULT_HYPER.shots;
  const iterations = schedule.rungs[schedule.rungs.length - 1].iterations;
  const candidates: StoredCandidate[] = [];
  let model: StoredModelConfig | undefined;
  for (const [i, candidate] of chosen.entries()) {
    // Candidates share families, shots and queryShots: whether episodes can be drawn is checked once.
    const job = await planCandidate(app, tenantId, body, candidate, i, { shots, iterations, checkEpisodes: i === 0 });
    model ??= job.model;
    candidates.push({ algorithm: job.algorithm, hyper: job.hyper });
  }
  const evaluation = { tasks: DEFAULT_EVALUATION_TASKS, queryShots: DEFAULT_QUERY_SHOTS, seed: 0 };
  const family = await evaluationFamily(app.db, tenantId, body.familyIds);
  try {
    family?.sampleEpisode(new Rng(0), 'test', { shots, queryShots: evaluation.queryShots, ways: first.nWay ?? undefined });
  } catch (error) {
    if (!(error instanceof EpisodeShapeError)) throw error;
    throw invalidField('/shots', `shots ${shots} + queryShots ${evaluation.queryShots} cannot be drawn from the test split the winner is evaluated on: ${error.message}`);
  }
  return {
    name: body.name,
    familyIds: body.familyIds,
    settings: {
      kind: first.kind, model: model!, shots, eta: STUDY_ETA, budget: { iterations: budget, trials: chosen.length },
      rungs: schedule.rungs, cost: schedule.cost, candidates, promote: body.promote ?? null, evaluation,
    },
  };
}

export interface StudyRouteOptions {
  /** Where trial cancels are published (the app owns and closes it). */
  redis: Redis;
}

const studies: FastifyPluginAsyncTypebox<StudyRouteOptions> = async (app, { redis }) => {
  app.post('/studies', {
    schema: {
      operationId: 'createStudy',
      summary: 'Start a study: which algorithm and inner loop suit these families (answers at once; trials run on the worker pool)',
      description:
        "Meta-trains every candidate (the default search space, or `candidates`) as an ordinary meta-train job with `studyId`, under successive halving: each rung ranks its trials by validation (the job's best evaluation) and the best 1/eta resume from their checkpoints for more iterations, the others stop; the last two (the finalists) both train to the top rung's iterations and the better there by validation wins. The winner is evaluated on the test split against every baseline; with `promote`, the alias moves to it only if it beats each baseline beyond the 95% intervals. The trials' meta-models are versions of the study's `name` but leave its `latest` alone; `latest` moves to the winner when the study ends. Trials count against the tenant's concurrent jobs (MAX_CONCURRENT_JOBS_PER_TENANT): those without a free slot wait; with no free slot at all the study is refused (429).",
      tags,
      headers: IdempotencyHeaders,
      body: StudyCreate(app.config.limits),
      response: {
        202: { description: 'Study created; its first trials are queued; Location names it', headers: LocationHeader, ...Study },
        200: { description: 'Idempotent replay: the study this Idempotency-Key and body created before', headers: LocationHeader, ...Study },
        ...problemResponses(400, 413, 415, 422, 429, 503),
      },
    },
  }, async (request, reply) => {
    const tenantId = request.tenant.id;
    const key = request.headers['idempotency-key'];
    await assertRedisReady(app.queues);
    const plan = await planStudy(app, tenantId, request.body);
    let result;
    try {
      const idempotency = requestIdempotency(key, request.body, app.config.idempotencyTtlMs);
      result = await createStudy(app.db, tenantId, plan, { maxActive: app.config.limits.maxConcurrentJobsPerTenant, ...(idempotency ? { idempotency } : {}) });
    } catch (error) {
      if (error instanceof StudyIdempotencyConflictError) throw new HttpProblem(422, error.message, { extensions: { studyId: error.studyId } });
      if (error instanceof ActiveJobLimitError) throw new HttpProblem(429, `${error.message}; a study's trials count as jobs`, { extensions: { limit: error.limit, active: error.active } });
      throw error;
    }
    for (const jobId of result.jobIds) {
      await withTimeout(enqueueMetaTrain(app.queues, jobId), ENQUEUE_TIMEOUT_MS, () => new Error(`no answer from Redis within ${ENQUEUE_TIMEOUT_MS} ms`))
        .catch((err: unknown) => request.log.warn({ err, jobId }, 'enqueue failed; the reconciler will enqueue the trial'));
    }
    return reply.code(result.created ? 202 : 200).header('location', `/studies/${result.study.id}`).send(result.study);
  });

  app.get('/studies', {
    schema: { operationId: 'listStudies', summary: 'List studies, newest first', tags, querystring: StudyListQuery, response: { 200: StudyList, ...problemResponses(400) } },
  }, async (request) => {
    const { limit = 20, cursor } = request.query;
    return withCursor(() => listStudies(app.db, request.tenant.id, { limit, cursor }));
  });

  app.get('/studies/:id', {
    schema: { operationId: 'getStudy', summary: 'Get one study: its trials by rung, winner, evaluation and decision', tags, params: IdParams, response: { 200: Study, ...problemResponses(404) } },
  }, async (request) => {
    const study = await getStudy(app.db, request.tenant.id, request.params.id);
    if (!study) throw new HttpProblem(404, `No study ${request.params.id}`);
    return study;
  });

  app.post('/studies/:id/cancel', {
    schema: {
      operationId: 'cancelStudy',
      summary: 'Cancel a study and its running trials (their jobs end cancelled; finished trials keep their records)',
      tags,
      params: IdParams,
      response: { 202: Study, ...problemResponses(404, 409, 503) },
    },
  }, async (request, reply) => {
    const tenantId = request.tenant.id;
    const { id } = request.params;
    await assertRedisReady(app.queues);
    const result = await cancelStudy(app.db, tenantId, id);
    if (result.outcome === 'missing') throw new HttpProblem(404, `No study ${id}`);
    if (result.outcome === 'ended') throw new HttpProblem(409, `Study ${id} already ended (${result.study.status})`, { extensions: { status: result.study.status } });
    for (const jobId of result.jobIds) await cancelJob(app, redis, tenantId, jobId);
    return reply.code(202).send((await getStudy(app.db, tenantId, id))!);
  });
};

export default studies;
