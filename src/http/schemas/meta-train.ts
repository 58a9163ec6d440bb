/** Meta-training jobs: the request that starts one, the job resource, its metrics history. */
import { Type, type Static, type TBoolean, type TInteger, type TNumber, type TOptional } from 'typebox';
import type { Limits } from '../../config.js';
import { JOB_STATUSES } from '../../db/repositories/jobs.js';
import { ACTIVATIONS, ALGORITHM_NAMES, BODY_KINDS, MAX_CONV_BLOCKS, API_HYPER_NAMES, getAlgorithm, TASK_KINDS, describeHyper, HYPER_FIELDS, VALIDATION_METRICS, type ApiHyperName, type HyperField, type HyperParams } from '../../meta/index.js';
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

/** ProtoNets with a Conv-4 body on a family of images: the body reads the family's inputShape. */
const CONV_REQUEST = {
  name: 'digits-conv',
  familyIds: [EXAMPLE_IDS.family],
  algorithm: 'protonet',
  model: { body: 'conv', channels: [64, 64, 64, 64] },
  hyper: { iterations: 2000, shots: 1, queryShots: 5 },
};

const QUEUED_JOB = {
  id: EXAMPLE_IDS.job,
  name: 'sine-maml',
  status: 'queued',
  algorithm: 'maml',
  familyIds: [EXAMPLE_IDS.family],
  // A job answers its model with the body named and defaults filled in.
  model: { body: 'mlp', ...MAML_REQUEST.model },
  // A job answers every hyper-parameter after defaults, `tasks` (multitask's pool) too.
  hyper: { ...MAML_REQUEST.hyper, checkpointEvery: 100, zeroHead: false, keepBest: true, tasks: 1000 },
  progress: { iteration: 0, iterations: 5000 },
  metrics: null,
  bestIteration: null,
  bestValidation: null,
  engine: null,
  metaModelId: null,
  error: null,
  cancelRequested: false,
  studyId: null,
  createdAt: EXAMPLE_TIMES.created,
  startedAt: null,
  finishedAt: null,
};

const SUCCEEDED_JOB = {
  ...QUEUED_JOB,
  status: 'succeeded',
  progress: { iteration: 5000, iterations: 5000 },
  metrics: { iteration: 5000, trainLoss: 0.58, valLoss: 0.62, valLossCi95: 0.09 },
  bestIteration: 4500,
  bestValidation: { metric: 'loss', mean: 0.6, ci95: 0.09, iteration: 4500 },
  engine: 'fused-wasm',
  metaModelId: EXAMPLE_IDS.metaModel,
  startedAt: EXAMPLE_TIMES.started,
  finishedAt: EXAMPLE_TIMES.finished,
};

/** Examples of the job resource, for the answers where it was just queued. */
export const JOB_EXAMPLES = { queued: QUEUED_JOB, succeeded: SUCCEEDED_JOB };

/** What each algorithm asks of its families, said once by the algorithm itself (e.g. protonet: classification). */
const KIND_RULES = ALGORITHM_NAMES.map(getAlgorithm)
  .filter((algorithm) => algorithm.kinds.length < TASK_KINDS.length)
  .map((algorithm) => `${algorithm.name} needs ${algorithm.kinds.join(' or ')} families`);

export const Algorithm = Literals(ALGORITHM_NAMES, {
  description: ['Meta-learning algorithm', ...KIND_RULES].join('; '),
});
export const Activation = Literals(ACTIVATIONS);
export const BodyKind = Literals(BODY_KINDS);

/** A model as jobs and meta-models report it: the body's architecture with its defaults filled in. */
export const ModelView = Type.Object({
  body: BodyKind,
  hidden: Type.Optional(Type.Array(Type.Integer(), { description: 'MLP body: hidden layer sizes' })),
  inputShape: Type.Optional(Type.Array(Type.Integer(), { description: 'Conv body: [height, width, channels] of an input' })),
  channels: Type.Optional(Type.Array(Type.Integer(), { description: 'Conv body: output channels of each block' })),
  activation: Activation,
});
export const JobStatus = Literals(JOB_STATUSES);

/** One hyper-parameter's request schema, from its one declaration (HYPER_FIELDS): bounds, meaning, default. */
function hyperField(name: ApiHyperName, limits: Limits): TNumber | TInteger | TBoolean {
  const field: HyperField = HYPER_FIELDS[name];
  const description = describeHyper(name);
  if (field.type === 'boolean') return Type.Boolean({ description });
  const maximum = typeof field.max === 'number' ? field.max : limits[field.max];
  return field.type === 'integer' ? Type.Integer({ minimum: field.min ?? 1, maximum, description }) : Type.Number({ exclusiveMinimum: 0, maximum, description });
}
type HyperSchemas = { [K in ApiHyperName]: TOptional<HyperParams[K] extends boolean ? TBoolean : TNumber | TInteger> };

/** POST /meta-train body; bounds come from the configured limits (MAX_ITERATIONS, MAX_HIDDEN_UNITS, ...). */
export function MetaTrainCreate(limits: Limits) {
  return Type.Object(
    {
      name: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Meta-model name. Default `<family>-<algorithm>`' })),
      familyIds: Type.Array(Id, { minItems: 1, maxItems: 16, uniqueItems: true, description: 'Several families = multi-task meta-training' }),
      algorithm: Algorithm,
      model: Type.Optional(
        Type.Object(
          {
            body: Type.Optional({ ...BodyKind, description: "'mlp' (default): fully connected layers; 'conv': 3x3 convolution blocks over images (Conv-4 by default)" }),
            hidden: Type.Optional(
              Type.Array(Type.Integer({ minimum: 1, maximum: limits.maxHiddenUnits }), {
                minItems: 1,
                maxItems: 8,
                description: 'MLP body: hidden layer sizes. Default [128, 64]',
              }),
            ),
            inputShape: Type.Optional(
              Type.Array(Type.Integer({ minimum: 1, maximum: 4096 }), {
                minItems: 3,
                maxItems: 3,
                description: "Conv body: [height, width, channels] of an input (flattened row-major); default the families' own",
              }),
            ),
            channels: Type.Optional(
              Type.Array(Type.Integer({ minimum: 1, maximum: limits.maxHiddenUnits }), {
                minItems: 1,
                maxItems: MAX_CONV_BLOCKS,
                description: 'Conv body: output channels of each block (3x3 convolution, layer norm, activation, 2x2 max pool). Default [64, 64, 64, 64]',
              }),
            ),
            activation: Type.Optional(Activation),
          },
          { additionalProperties: false },
        ),
      ),
      hyper: Type.Optional(
        Type.Object(Object.fromEntries(API_HYPER_NAMES.map((name) => [name, Type.Optional(hyperField(name, limits))])) as HyperSchemas, {
          additionalProperties: false,
        }),
      ),
    },
    { additionalProperties: false, examples: [MAML_REQUEST, CONV_REQUEST, { familyIds: [EXAMPLE_IDS.family], algorithm: 'reptile' }] },
  );
}
export type MetaTrainCreate = Static<ReturnType<typeof MetaTrainCreate>>;

const CI95 = 'Half-width of the 95% confidence interval of the mean over the validation tasks (1.96 standard errors; absent in points recorded before it was)';

export const JobMetrics = Type.Object({
  iteration: Type.Integer(),
  trainLoss: Type.Number({ description: 'Mean meta-training loss since the previous evaluation' }),
  valLoss: Type.Number({ description: "Mean post-adaptation query loss over the job's validation tasks (the same tasks at every evaluation)" }),
  valLossCi95: Type.Optional(Type.Number({ minimum: 0, description: CI95 })),
  valAccuracy: Type.Optional(Type.Number({ description: 'Mean post-adaptation query accuracy over the validation tasks (classification)' })),
  valAccuracyCi95: Type.Optional(Type.Number({ minimum: 0, description: CI95 })),
});

/** A run's standing on validation: the metric it is selected on at one evaluation (src/meta/selection.ts). */
export const Validation = Type.Object(
  {
    metric: Literals(VALIDATION_METRICS, { description: 'accuracy (higher is better) for classification, loss (MSE, lower is better) for regression' }),
    mean: Type.Number({ description: 'Mean over the validation tasks' }),
    ci95: Type.Number({ minimum: 0, description: 'Half-width of its 95% confidence interval (1.96 standard errors)' }),
    iteration: Type.Integer({ description: 'The evaluation it was measured at' }),
  },
  { additionalProperties: false },
);

export const Job = Type.Object({
  id: Id,
  name: Type.String(),
  status: JobStatus,
  algorithm: Algorithm,
  familyIds: Type.Array(Id),
  model: ModelView,
  // The API's hyper-parameters from their one declaration: those with a default are always there.
  hyper: Type.Object(
    Object.fromEntries(API_HYPER_NAMES.map((name) => {
      const field: HyperField = HYPER_FIELDS[name];
      const type = { integer: Type.Integer, positive: Type.Number, boolean: Type.Boolean }[field.type]();
      return [name, field.default === undefined ? Type.Optional(type) : type];
    })) as Record<string, TNumber | TBoolean>,
    { additionalProperties: false, description: 'Hyper-parameters after defaults were applied' },
  ),
  progress: Type.Object({ iteration: Type.Integer(), iterations: Type.Integer() }),
  metrics: Type.Union([JobMetrics, Type.Null()], { description: 'The latest evaluation' }),
  bestIteration: Type.Union([Type.Integer(), Type.Null()], {
    description: 'The iteration of the best validation evaluation so far: the meta-model stored with hyper.keepBest (default true) holds its meta-parameters. Null before the first evaluation',
  }),
  bestValidation: Type.Union([Validation, Type.Null()], { description: 'That evaluation on the metric runs are selected on, with its interval; null before the first evaluation' }),
  engine: Type.Union([Type.String(), Type.Null()], {
    description: "The engine meta-training ran on: 'fused-wasm' (MLP bodies on a CPU), 'onnxruntime' (conv bodies on a CPU, algorithms that need only first-order derivatives of the body) or 'tfjs-<backend>'; null until the job succeeds",
  }),
  metaModelId: Type.Union([Id, Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  cancelRequested: Type.Boolean({ description: 'A cancel was asked for; a running job ends `cancelled` within one iteration' }),
  studyId: Type.Union([Id, Type.Null()], { description: 'The study this job is a trial of (POST /studies), or null' }),
  createdAt: Timestamp,
  startedAt: Type.Union([Timestamp, Type.Null()]),
  finishedAt: Type.Union([Timestamp, Type.Null()]),
}, { examples: [SUCCEEDED_JOB] });
export type Job = Static<typeof Job>;

export const JobList = Page(Job, { examples: [{ items: [SUCCEEDED_JOB], nextCursor: null }] });

export const JobListQuery = Type.Object(
  { status: Type.Optional(JobStatus), studyId: Type.Optional({ ...Id, description: "Only this study's trials" }), ...PageQuery },
  { additionalProperties: false },
);

export const MetricsHistory = Type.Object({
  items: Type.Array(Type.Object({ ...JobMetrics.properties, at: Timestamp })),
}, {
  examples: [{
    items: [
      { iteration: 500, trainLoss: 2.31, valLoss: 2.22, valLossCi95: 0.41, at: EXAMPLE_TIMES.started },
      { iteration: 2500, trainLoss: 0.74, valLoss: 0.79, valLossCi95: 0.12, at: '2026-01-01T12:00:11.300Z' },
      { iteration: 5000, trainLoss: 0.58, valLoss: 0.62, valLossCi95: 0.09, at: EXAMPLE_TIMES.finished },
    ],
  }],
});

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({ minLength: 1, maxLength: 200, description: 'Same key and body: the same job (200); same key, other body: 422', examples: ['sine-maml-2026-01-01'] }),
  ),
});
