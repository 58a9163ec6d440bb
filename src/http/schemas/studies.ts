/** Studies: the request that starts one (POST /studies) and the study resource with its trials and decision. */
import { Type, type Static } from 'typebox';
import type { Limits } from '../../config.js';
import { DEFAULT_STUDY_ITERATIONS, STUDY_ETA } from '../../meta/study.js';
import { TASK_KINDS } from '../../meta/index.js';
import { Id, Literals, Page, PageQuery, Timestamp } from './common.js';
import { EXAMPLE_IDS, EXAMPLE_TIMES } from './examples.js';
import { Algorithm, Job, JOB_EXAMPLES, JobStatus, MetaTrainCreate, ModelView } from './meta-train.js';

/** Candidates a request may name, and trials it may ask to start with. */
export const MAX_STUDY_CANDIDATES = 200;

const TRIAL_STATUSES = ['pending', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'promoted', 'dropped', 'pruned', 'winner'] as const;

/** POST /studies body. */
export function StudyCreate(limits: Limits) {
  const { familyIds, model, hyper } = MetaTrainCreate(limits).properties;
  return Type.Object(
    {
      name: Type.String({ minLength: 1, maxLength: 200, description: "The study's name, and the meta-model name of every trial (so `promote` moves `<name>@<alias>`)" }),
      familyIds,
      model,
      candidates: Type.Optional(
        Type.Array(
          Type.Object(
            {
              algorithm: Algorithm,
              hyper: Type.Optional({ ...hyper, description: "Hyper-parameters of this candidate; `iterations` and `shots` are the study's (budget, shots)" }),
            },
            { additionalProperties: false },
          ),
          { minItems: 1, maxItems: MAX_STUDY_CANDIDATES, description: 'The learners to try. Default: the search space for the families\' kind (every algorithm that suits it, with inner step sizes 0.01 and 0.1 (and 0.4 for classification), 1 or 5 inner steps, and a zero head on and off where the algorithm meta-learns a head), each algorithm\'s settings plainest first and then spread over the grid' },
        ),
      ),
      budget: Type.Optional(
        Type.Object(
          {
            iterations: Type.Optional(Type.Integer({ minimum: 1, maximum: limits.maxIterations * 100, description: `Meta-iterations over all trials and rungs together (a promoted trial resumes, so only its increments count). Default ${DEFAULT_STUDY_ITERATIONS}: four default training runs` })),
            trials: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_STUDY_CANDIDATES, description: 'Candidates that start in the first rung (the first ones of the list, which the default space orders round robin over algorithms). Default: all of `candidates`; of the default space, the most whose first rung trains at least a ninth of the top rung while the finalists train at least one default run (14 at the default budget), and at least one per algorithm' })),
          },
          { additionalProperties: false },
        ),
      ),
      shots: Type.Optional(Type.Integer({ minimum: 1, maximum: limits.maxSupportExamples, description: 'Support examples per task (or class) each trial meta-trains with and the winner is evaluated at. Default 10' })),
      promote: Type.Optional(Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_.-]{0,63}$', description: "Alias to move to the winner (e.g. `production`) only if it beats every baseline beyond the 95% intervals on the test split; not `latest`" })),
    },
    {
      additionalProperties: false,
      examples: [
        { name: 'blobs', familyIds: [EXAMPLE_IDS.family], promote: 'production' },
        { name: 'sine-small', familyIds: [EXAMPLE_IDS.family], candidates: [{ algorithm: 'maml', hyper: { innerLr: 0.01 } }, { algorithm: 'multitask' }], budget: { iterations: 2000 } },
      ],
    },
  );
}
export type StudyCreate = Static<ReturnType<typeof StudyCreate>>;

const Metric = Literals(['accuracy', 'loss'] as const, { description: 'accuracy (higher is better) for classification, loss (MSE, lower is better) for regression' });
const Interval = { mean: Type.Number(), ci95: Type.Number({ minimum: 0, description: 'Half-width of the 95% confidence interval of the mean' }) };

const Validation = Type.Object(
  { metric: Metric, ...Interval, iteration: Type.Integer({ description: 'The evaluation it is from (the best so far)' }) },
  { description: "The trial's best validation evaluation so far: what the rung ranks it by" },
);

const Trial = Type.Object({
  jobId: Type.Union([Id, Type.Null()], { description: 'Its meta-train job (null while it waits for a free job slot of the tenant)' }),
  candidate: Type.Integer({ minimum: 0, description: 'Index in settings.candidates' }),
  algorithm: Algorithm,
  hyper: Job.properties.hyper,
  rung: Type.Integer({ minimum: 0 }),
  iterations: Type.Integer({ description: 'Iterations it has run when its rung ends (a promoted trial resumes from there)' }),
  validation: Type.Union([Validation, Type.Null()]),
  status: Literals(TRIAL_STATUSES, {
    description: 'pending: waiting for a job slot; queued..cancelled: its job; after its rung: promoted (goes on), dropped (stopped), pruned (failed, diverged or was cancelled), winner',
  }),
});

const Rung = Type.Object({ trials: Type.Integer(), iterations: Type.Integer() });

const Decision = Type.Object({
  promoted: Type.Boolean({ description: 'The alias was moved to the winner' }),
  alias: Type.Union([Type.String(), Type.Null()]),
  reason: Type.String({ description: 'Which baselines the winner beat, and which tied or won otherwise' }),
  metric: Metric,
  winner: Type.Object(Interval, { description: "The winner's test metric" }),
  baselines: Type.Array(Type.Object({ method: Type.String(), ...Interval, outcome: Literals(['beaten', 'tied', 'won'] as const) })),
});

/** A job's hyper-parameters after defaults, at `iterations`. */
const hyperAt = (iterations: number) => ({ ...JOB_EXAMPLES.succeeded.hyper, iterations });

const EXAMPLE_STUDY = {
  id: '0197a4f6-2b3c-7d4e-9f50-6a7b8c9d0e1f',
  name: 'blobs',
  status: 'succeeded',
  familyIds: [EXAMPLE_IDS.family],
  settings: {
    kind: 'classification', model: { body: 'mlp', hidden: [128, 64], activation: 'relu' }, shots: 10, eta: STUDY_ETA,
    budget: { iterations: 120, trials: 3 }, rungs: [{ trials: 3, iterations: 24 }, { trials: 1, iterations: 72 }], cost: 120,
    candidates: [{ algorithm: 'protonet', hyper: hyperAt(72) }, { algorithm: 'maml', hyper: hyperAt(72) }, { algorithm: 'multitask', hyper: hyperAt(72) }],
    promote: 'production', evaluation: { tasks: 100, queryShots: 10, seed: 0 },
  },
  rung: 1,
  trials: [
    { jobId: EXAMPLE_IDS.job, candidate: 0, algorithm: 'protonet', hyper: hyperAt(24), rung: 0, iterations: 24, validation: { metric: 'accuracy', mean: 0.97, ci95: 0.02, iteration: 24 }, status: 'promoted' },
    { jobId: EXAMPLE_IDS.job, candidate: 0, algorithm: 'protonet', hyper: hyperAt(72), rung: 1, iterations: 72, validation: { metric: 'accuracy', mean: 0.99, ci95: 0.01, iteration: 72 }, status: 'winner' },
  ],
  winner: { jobId: EXAMPLE_IDS.job, metaModelId: EXAMPLE_IDS.metaModel, algorithm: 'protonet', hyper: hyperAt(72) },
  evaluationId: '0197a4f5-3e1a-7c42-9b0d-6e5f4a3b2c1d',
  decision: { promoted: true, alias: 'production', reason: "production moved to the winner: the winner's test accuracy 0.990 ± 0.010 beats every baseline beyond the 95% intervals", metric: 'accuracy', winner: { mean: 0.99, ci95: 0.01 }, baselines: [{ method: 'scratch', mean: 0.61, ci95: 0.03, outcome: 'beaten' }] },
  error: null,
  createdAt: EXAMPLE_TIMES.created,
  startedAt: EXAMPLE_TIMES.created,
  finishedAt: EXAMPLE_TIMES.finished,
};

export const Study = Type.Object({
  id: Id,
  name: Type.String(),
  status: JobStatus,
  familyIds: Type.Array(Id),
  settings: Type.Object({
    kind: Literals(TASK_KINDS),
    model: ModelView,
    shots: Type.Integer(),
    eta: Type.Integer({ description: 'Reduction factor: each rung promotes the best 1/eta' }),
    budget: Type.Object({ iterations: Type.Integer(), trials: Type.Integer() }),
    rungs: Type.Array(Rung, { description: 'Successive halving, fixed up front: trials and the iteration each rung trains them to' }),
    cost: Type.Integer({ description: 'Meta-iterations the schedule runs, all trials and rungs together (at most budget.iterations)' }),
    candidates: Type.Array(Type.Object({ algorithm: Algorithm, hyper: Job.properties.hyper })),
    promote: Type.Union([Type.String(), Type.Null()]),
    evaluation: Type.Object({ tasks: Type.Integer(), queryShots: Type.Integer(), seed: Type.Integer() }),
  }),
  rung: Type.Integer({ description: 'The rung being trained (the last one once the winner is evaluated)' }),
  trials: Type.Array(Trial, { description: 'Every candidate at every rung it reached, by rung' }),
  winner: Type.Union([Type.Object({ jobId: Id, metaModelId: Id, algorithm: Algorithm, hyper: Job.properties.hyper }), Type.Null()]),
  evaluationId: Type.Union([Id, Type.Null()], { description: "The winner's evaluation on the test split against every baseline (GET /meta-models/:id/evaluations/:evaluationId)" }),
  decision: Type.Union([Decision, Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  createdAt: Timestamp,
  startedAt: Type.Union([Timestamp, Type.Null()]),
  finishedAt: Type.Union([Timestamp, Type.Null()]),
}, { examples: [EXAMPLE_STUDY] });

export const StudyList = Page(Study, { examples: [{ items: [EXAMPLE_STUDY], nextCursor: null }] });

/** What a client of GET /studies/:id/events reads (shown in the OpenAPI document; data shortened). */
export const STUDY_EVENTS_EXAMPLE = [
  `event: study\ndata: ${JSON.stringify({ ...EXAMPLE_STUDY, status: 'running', trials: [], winner: null, evaluationId: null, decision: null, finishedAt: null })}\n`,
  `event: study\ndata: ${JSON.stringify(EXAMPLE_STUDY)}\n\n`,
].join('\n');
export const StudyListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false });
