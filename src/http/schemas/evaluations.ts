/** Evaluations of a meta-model against baselines on held-out tasks: the request, the rows, the list. */
import { Type } from 'typebox';
import type { Limits } from '../../config.js';
import { EVALUATION_BASELINES, EVALUATION_COVERAGE, SCRATCH_STEPS } from '../../meta/index.js';
import { Id, Literals, Page, PageQuery, Timestamp } from './common.js';
import { EXAMPLE_IDS, EXAMPLE_TIMES } from './examples.js';
import { JobStatus } from './meta-train.js';
import { MetaModelRefParams } from './meta-models.js';

/** Shots evaluated when the request names none. */
export const DEFAULT_EVALUATION_SHOTS = [1, 5, 10];
/** Held-out tasks per number of shots when the request names no count. */
export const DEFAULT_EVALUATION_TASKS = 100;
/** Query examples per task (or per class) when the request names no count. */
export const DEFAULT_QUERY_SHOTS = 10;
/** Most entries in the `shots` and `steps` grids (each cell is a full pass over the tasks). */
export const MAX_GRID = 10;

const EVALUATION_METHODS = ['adapted', ...EVALUATION_BASELINES] as const;

const Baselines = (description: string) => Type.Array(Literals(EVALUATION_BASELINES), { uniqueItems: true, maxItems: EVALUATION_BASELINES.length, description });

/** POST /meta-models/:id/evaluations body: every field optional. */
export function EvaluationCreate(limits: Limits) {
  const grid = { minItems: 1, maxItems: MAX_GRID, uniqueItems: true };
  return Type.Object(
    {
      shots: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: limits.maxSupportExamples }), {
        ...grid,
        description: `Support examples per task (regression) or per class (classification); one set of rows each. Default ${JSON.stringify(DEFAULT_EVALUATION_SHOTS)}`,
      })),
      steps: Type.Optional(Type.Array(Type.Integer({ minimum: 0, maximum: limits.maxInnerSteps }), {
        ...grid,
        description: "Inner steps of the meta-model's adaptation; one `adapted` row each. Default: the steps it was meta-trained with",
      })),
      tasks: Type.Optional(Type.Integer({ minimum: 1, maximum: limits.maxEvaluationTasks, description: `Held-out tasks per number of shots, the same for every method (MAX_EVALUATION_TASKS). Default ${DEFAULT_EVALUATION_TASKS}` })),
      queryShots: Type.Optional(Type.Integer({ minimum: 1, maximum: limits.maxSupportExamples, description: `Query examples per task (or per class) that each method is scored on. Default ${DEFAULT_QUERY_SHOTS}` })),
      familyId: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: "A task family of yours (e.g. an uploaded dataset) to draw the held-out tasks from, instead of the meta-model's own families; it must match the model's kind, inputDim and ways" })),
      seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, description: 'Seed of the task draws and of the scratch baseline. Default 0' })),
      baselines: Type.Optional(Baselines(`The baselines to run beside the meta-model's adapted rows, each at most once (empty: none, only the adapted rows). Default all: ${JSON.stringify(EVALUATION_BASELINES)}`)),
    },
    { additionalProperties: false, examples: [{ shots: [1, 5, 10], steps: [1, 10], tasks: 100, baselines: ['unadapted', 'scratch'] }] },
  );
}

const MeanCi = Type.Object(
  { mean: Type.Number(), ci95: Type.Number({ minimum: 0, description: 'Half-width of the 95% confidence interval of the mean over tasks (1.96 standard errors)' }) },
);

/** What a calibrated meta-model's own 'adapted' row adds (src/meta/calibration-eval.ts). */
const CalibrationRowFields = {
  coverage: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: `Calibrated meta-model, 'adapted' at its own inner steps: share of query examples inside their interval or set at nominal coverage ${EVALUATION_COVERAGE}` })),
  width: Type.Optional(Type.Number({ minimum: 0, description: 'Regression: mean interval width at that coverage' })),
  setSize: Type.Optional(Type.Number({ minimum: 0, description: 'Classification: mean prediction-set size at that coverage' })),
  ece: Type.Optional(Type.Object({ before: Type.Number(), after: Type.Number() }, { description: 'Classification: expected calibration error (15 bins) of the probabilities as served and after the temperature' })),
  noveltyAuroc: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: "AUROC of novelty: inputs outside the task (classes it does not have; for regression, beyond the family's input range) against its own queries" })),
};

export const EvaluationRow = Type.Object({
  method: Literals(EVALUATION_METHODS, {
    description: `adapted: the meta-model after its inner loop; unadapted: the meta-model as is; scratch: a fresh model of the same shape trained on the support set alone (${SCRATCH_STEPS} steps); multitask: the newest multitask meta-model of the same families; raw: no model, the support set's raw inputs (nearest class mean for classification, ridge regression with its ridge chosen by generalised cross-validation on the support set for regression)`,
  }),
  shots: Type.Integer({ minimum: 1 }),
  steps: Type.Integer({ minimum: 0, description: 'Inner steps run' }),
  loss: Type.Object(MeanCi.properties, { description: 'Query loss after adaptation (MSE, or cross-entropy)' }),
  accuracy: Type.Optional(Type.Object(MeanCi.properties, { description: 'Query accuracy (classification only)' })),
  diverged: Type.Integer({ minimum: 0, description: "Tasks whose raw inner loop diverged (the guard kept an earlier step)" }),
  ...CalibrationRowFields,
});

const EXAMPLE_EVALUATION = {
  id: '0197a4f5-3e1a-7c42-9b0d-6e5f4a3b2c1d',
  metaModelId: EXAMPLE_IDS.metaModel,
  status: 'succeeded',
  settings: { shots: [5], steps: [10], tasks: 100, queryShots: 10, seed: 0, baselines: [...EVALUATION_BASELINES] },
  multitaskMetaModelId: null,
  rows: [
    { method: 'adapted', shots: 5, steps: 10, loss: { mean: 0.61, ci95: 0.12 }, diverged: 0, coverage: 0.904, width: 2.31, noveltyAuroc: 0.97 },
    { method: 'unadapted', shots: 5, steps: 0, loss: { mean: 3.02, ci95: 0.41 }, diverged: 0 },
    { method: 'scratch', shots: 5, steps: SCRATCH_STEPS, loss: { mean: 2.87, ci95: 0.39 }, diverged: 0 },
    { method: 'raw', shots: 5, steps: 0, loss: { mean: 3.55, ci95: 0.47 }, diverged: 0 },
  ],
  error: null,
  createdAt: EXAMPLE_TIMES.created,
  startedAt: EXAMPLE_TIMES.started,
  finishedAt: EXAMPLE_TIMES.finished,
};

export const Evaluation = Type.Object(
  {
    id: Id,
    metaModelId: Id,
    status: JobStatus,
    settings: Type.Object(
      {
        shots: Type.Array(Type.Integer()),
        steps: Type.Array(Type.Integer()),
        tasks: Type.Integer(),
        queryShots: Type.Integer(),
        seed: Type.Integer(),
        baselines: Type.Optional(Baselines('The baselines run (absent on evaluations created before the field existed, which ran every baseline there was then)')),
        familyId: Type.Optional(Id),
      },
      { description: 'The request after defaults' },
    ),
    multitaskMetaModelId: Type.Union([Id, Type.Null()], { description: 'The meta-model behind the `multitask` rows; null when there is none' }),
    rows: Type.Array(EvaluationRow, { description: 'By shots: adapted (one per steps), then those of unadapted, scratch, multitask, raw that `settings.baselines` names. Empty until it succeeded' }),
    error: Type.Union([Type.String(), Type.Null()], { description: 'Why it failed (failed only)' }),
    createdAt: Timestamp,
    startedAt: Type.Union([Timestamp, Type.Null()]),
    finishedAt: Type.Union([Timestamp, Type.Null()]),
  },
  { examples: [EXAMPLE_EVALUATION] },
);

export const EvaluationList = Page(Evaluation, { examples: [{ items: [EXAMPLE_EVALUATION], nextCursor: null }] });

export const EvaluationListQuery = Type.Object(PageQuery, { additionalProperties: false });

export const EvaluationParams = Type.Object({ ...MetaModelRefParams.properties, evaluationId: Id }, { additionalProperties: false });
