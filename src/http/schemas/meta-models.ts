/** The meta-model registry: learned meta-parameters, versioned per name, with movable aliases. */
import { Type } from 'typebox';
import { CalibrationSchema } from '../../db/calibration-json.js';
import { Id, Page, PageQuery, Timestamp } from './common.js';
import { EXAMPLE_IDS, EXAMPLE_TIMES } from './examples.js';
import { Algorithm, ModelView } from './meta-train.js';
import { TaskKind } from './task-families.js';

/** `:id` accepts an id, `name@version` or `name@alias`. */
export const MetaModelRefParams = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 300, description: 'A meta-model id, `name@version` (e.g. `sine@3`) or `name@alias` (e.g. `sine@production`)', examples: ['sine-maml@production'] }) },
  { additionalProperties: false },
);

export const AliasParams = Type.Object(
  {
    ...MetaModelRefParams.properties,
    alias: Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_.-]{0,63}$', description: 'Alias name: a letter, then letters, digits, _ . -', examples: ['production'] }),
  },
  { additionalProperties: false },
);

/** What the example job of meta-train.ts produced. */
const META_MODEL = {
  id: EXAMPLE_IDS.metaModel,
  name: 'sine-maml',
  version: 1,
  jobId: EXAMPLE_IDS.job,
  algorithm: 'maml',
  kind: 'regression',
  inputDim: 1,
  model: { body: 'mlp', hidden: [40, 40], activation: 'relu' },
  metrics: { iteration: 4500, trainLoss: 0.6, valLoss: 0.6, valLossCi95: 0.09 },
  bestIteration: 4500,
  engine: 'fused-wasm',
  calibration: null,
  aliases: ['latest', 'production'],
  createdAt: EXAMPLE_TIMES.finished,
};

export const MetaModel = Type.Object({
  id: Id,
  name: Type.String(),
  version: Type.Integer({ minimum: 1, description: 'Counts up per name' }),
  jobId: Id,
  algorithm: Algorithm,
  kind: TaskKind,
  inputDim: Type.Integer(),
  nWay: Type.Optional(Type.Integer()),
  model: ModelView,
  metrics: Type.Object(
    {
      iteration: Type.Optional(Type.Integer()),
      trainLoss: Type.Optional(Type.Number()),
      valLoss: Type.Optional(Type.Number()),
      valLossCi95: Type.Optional(Type.Number()),
      valAccuracy: Type.Optional(Type.Number()),
      valAccuracyCi95: Type.Optional(Type.Number()),
    },
    { additionalProperties: true, description: "The job's evaluation of these meta-parameters (as in its metrics history): its best (bestIteration), or its last" },
  ),
  bestIteration: Type.Union([Type.Integer(), Type.Null()], {
    description: "The iteration of the job's best validation evaluation, whose meta-parameters these are (hyper.keepBest); null when they are the last iteration's (keepBest false, or trained before keepBest existed)",
  }),
  engine: Type.Union([Type.String(), Type.Null()], { description: "The engine that meta-trained it (as its job's): 'fused-wasm', 'onnxruntime' or 'tfjs-<backend>'; null for versions stored before engines were recorded" }),
  calibration: Type.Union([CalibrationSchema, Type.Null()], {
    description: 'Fitted on validation tasks at the end of meta-training (what `coverage` and `novelty` in predict use); null for a meta-model without one',
  }),
  aliases: Type.Array(Type.String(), { description: 'Aliases pointing at this version, e.g. latest, production' }),
  createdAt: Timestamp,
}, { examples: [META_MODEL] });

export const MetaModelList = Page(MetaModel, { examples: [{ items: [META_MODEL], nextCursor: null }] });

export const MetaModelListQuery = Type.Object(
  { name: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Only versions of this name', examples: ['sine-maml'] })), ...PageQuery },
  { additionalProperties: false },
);
