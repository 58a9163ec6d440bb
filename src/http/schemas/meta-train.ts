/** Meta-training jobs: the request that starts one, the job resource, its metrics history. */
import { Type, type Static } from 'typebox';
import type { Limits } from '../../config.js';
import { ACTIVATIONS, ALGORITHM_NAMES } from '../../meta/index.js';
import { Id, Literals, Page, PageQuery, Timestamp } from './common.js';
import { EXAMPLE_IDS, EXAMPLE_TIMES } from './examples.js';

/** The demo's request: MAML on the sinusoid family, a 1-40-40-1 body. */
const MAML_REQUEST = {
  name: 'sine-maml',
  familyIds: [EXAMPLE_IDS.family],
  algorithm: 'maml',
  model: { hidden: [40, 40], activation: 'relu' },
  hyper: { iterations: 5000, metaBatchSize: 25, shots: 10, queryShots: 10, innerSteps: 1, innerLr: 0.01, metaLr: 0.001, evalEvery: 500, seed: 0 },
};

const QUEUED_JOB = {
  id: EXAMPLE_IDS.job,
  name: 'sine-maml',
  status: 'queued',
  algorithm: 'maml',
  familyIds: [EXAMPLE_IDS.family],
  model: MAML_REQUEST.model,
  hyper: { ...MAML_REQUEST.hyper, checkpointEvery: 100 },
  progress: { iteration: 0, iterations: 5000 },
  metrics: null,
  metaModelId: null,
  error: null,
  cancelRequested: false,
  createdAt: EXAMPLE_TIMES.created,
  startedAt: null,
  finishedAt: null,
};

const SUCCEEDED_JOB = {
  ...QUEUED_JOB,
  status: 'succeeded',
  progress: { iteration: 5000, iterations: 5000 },
  metrics: { iteration: 5000, trainLoss: 0.58, valLoss: 0.62 },
  metaModelId: EXAMPLE_IDS.metaModel,
  startedAt: EXAMPLE_TIMES.started,
  finishedAt: EXAMPLE_TIMES.finished,
};

/** Examples of the job resource, for the answers where it was just queued. */
export const JOB_EXAMPLES = { queued: QUEUED_JOB, succeeded: SUCCEEDED_JOB };

export const Algorithm = Literals(ALGORITHM_NAMES, {
  description: 'Meta-learning algorithm; protonet needs classification families',
});
export const Activation = Literals(ACTIVATIONS);
export const JobStatus = Literals(['queued', 'running', 'succeeded', 'failed', 'cancelled']);

const positive = (description: string) => Type.Number({ exclusiveMinimum: 0, maximum: 1e6, description });

/** POST /meta-train body; bounds come from the configured limits (MAX_ITERATIONS, MAX_HIDDEN_UNITS, ...). */
export function MetaTrainCreate(limits: Limits) {
  const count = (description: string, maximum: number) => Type.Integer({ minimum: 1, maximum, description });
  return Type.Object(
    {
      name: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Meta-model name. Default `<family>-<algorithm>`' })),
      familyIds: Type.Array(Id, { minItems: 1, maxItems: 16, uniqueItems: true, description: 'Several families = multi-task meta-training' }),
      algorithm: Algorithm,
      model: Type.Optional(
        Type.Object(
          {
            hidden: Type.Optional(
              Type.Array(Type.Integer({ minimum: 1, maximum: limits.maxHiddenUnits }), {
                minItems: 1,
                maxItems: 8,
                description: 'Hidden layer sizes of the body. Default [128, 64]',
              }),
            ),
            activation: Type.Optional(Activation),
          },
          { additionalProperties: false },
        ),
      ),
      hyper: Type.Optional(
        Type.Object(
          {
            iterations: Type.Optional(count('Outer-loop iterations. Default 1000', limits.maxIterations)),
            metaBatchSize: Type.Optional(count('Tasks per meta-batch. Default 25', 1000)),
            shots: Type.Optional(count('Support examples per task or class. Default 10', limits.maxSupportExamples)),
            queryShots: Type.Optional(count('Query examples per task or class. Default 10', limits.maxSupportExamples)),
            innerSteps: Type.Optional(count('Inner-loop steps. Default 1', limits.maxInnerSteps)),
            innerLr: Type.Optional(positive('Inner-loop step size. Default 0.01')),
            metaLr: Type.Optional(positive('Outer-loop (Adam) step size. Default 0.001')),
            evalEvery: Type.Optional(count('Evaluate on held-out tasks every N iterations. Default 100', limits.maxIterations)),
            checkpointEvery: Type.Optional(count('Checkpoint every N iterations. Default 100', limits.maxIterations)),
            seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, description: 'Default 0' })),
            clipNorm: Type.Optional(positive('Clip the meta-gradient to this global L2 norm. Default: none')),
          },
          { additionalProperties: false },
        ),
      ),
    },
    { additionalProperties: false, examples: [MAML_REQUEST, { familyIds: [EXAMPLE_IDS.family], algorithm: 'reptile' }] },
  );
}
export type MetaTrainCreate = Static<ReturnType<typeof MetaTrainCreate>>;

export const JobMetrics = Type.Object({
  iteration: Type.Integer(),
  trainLoss: Type.Number(),
  valLoss: Type.Number(),
  valAccuracy: Type.Optional(Type.Number()),
});

export const Job = Type.Object({
  id: Id,
  name: Type.String(),
  status: JobStatus,
  algorithm: Algorithm,
  familyIds: Type.Array(Id),
  model: Type.Object({ hidden: Type.Array(Type.Integer()), activation: Activation }),
  hyper: Type.Object(
    {
      iterations: Type.Integer(),
      metaBatchSize: Type.Integer(),
      shots: Type.Integer(),
      queryShots: Type.Integer(),
      innerSteps: Type.Integer(),
      innerLr: Type.Number(),
      metaLr: Type.Number(),
      evalEvery: Type.Integer(),
      checkpointEvery: Type.Integer(),
      seed: Type.Integer(),
      clipNorm: Type.Optional(Type.Number()),
    },
    { additionalProperties: true, description: 'Hyper-parameters after defaults were applied' },
  ),
  progress: Type.Object({ iteration: Type.Integer(), iterations: Type.Integer() }),
  metrics: Type.Union([JobMetrics, Type.Null()], { description: 'The latest evaluation' }),
  metaModelId: Type.Union([Id, Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  cancelRequested: Type.Boolean({ description: 'A cancel was asked for; a running job ends `cancelled` within one iteration' }),
  createdAt: Timestamp,
  startedAt: Type.Union([Timestamp, Type.Null()]),
  finishedAt: Type.Union([Timestamp, Type.Null()]),
}, { examples: [SUCCEEDED_JOB] });
export type Job = Static<typeof Job>;

export const JobList = Page(Job, { examples: [{ items: [SUCCEEDED_JOB], nextCursor: null }] });

export const JobListQuery = Type.Object(
  { status: Type.Optional(JobStatus), ...PageQuery },
  { additionalProperties: false },
);

export const MetricsHistory = Type.Object({
  items: Type.Array(Type.Object({ ...JobMetrics.properties, at: Timestamp })),
}, {
  examples: [{
    items: [
      { iteration: 0, trainLoss: 2.31, valLoss: 2.22, at: EXAMPLE_TIMES.started },
      { iteration: 2500, trainLoss: 0.74, valLoss: 0.79, at: '2026-01-01T12:00:11.300Z' },
      { iteration: 5000, trainLoss: 0.58, valLoss: 0.62, at: EXAMPLE_TIMES.finished },
    ],
  }],
});

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({ minLength: 1, maxLength: 200, description: 'Same key and body: the same job (200); same key, other body: 422', examples: ['sine-maml-2026-01-01'] }),
  ),
});
