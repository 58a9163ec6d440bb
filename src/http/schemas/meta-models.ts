/** The meta-model registry: learned meta-parameters, versioned per name, with movable aliases. */
import { Type } from 'typebox';
import { Id, Page, PageQuery, Timestamp } from './common.js';
import { Activation, Algorithm } from './meta-train.js';
import { TaskKind } from './task-families.js';

/** `:id` accepts an id, `name@version` or `name@alias`. */
export const MetaModelRefParams = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 300, description: 'A meta-model id, `name@version` (e.g. `sine@3`) or `name@alias` (e.g. `sine@production`)' }) },
  { additionalProperties: false },
);

export const AliasParams = Type.Object(
  {
    ...MetaModelRefParams.properties,
    alias: Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_.-]{0,63}$', description: 'Alias name: a letter, then letters, digits, _ . -' }),
  },
  { additionalProperties: false },
);

export const MetaModel = Type.Object({
  id: Id,
  name: Type.String(),
  version: Type.Integer({ minimum: 1, description: 'Counts up per name' }),
  jobId: Id,
  algorithm: Algorithm,
  kind: TaskKind,
  inputDim: Type.Integer(),
  nWay: Type.Optional(Type.Integer()),
  model: Type.Object({ hidden: Type.Array(Type.Integer()), activation: Activation }, { additionalProperties: true }),
  metrics: Type.Object(
    {
      iteration: Type.Optional(Type.Integer()),
      trainLoss: Type.Optional(Type.Number()),
      valLoss: Type.Optional(Type.Number()),
      valAccuracy: Type.Optional(Type.Number()),
    },
    { additionalProperties: true, description: 'Final evaluation of the job that produced it' },
  ),
  aliases: Type.Array(Type.String(), { description: 'Aliases pointing at this version, e.g. latest, production' }),
  createdAt: Timestamp,
});

export const MetaModelList = Page(MetaModel);

export const MetaModelListQuery = Type.Object(
  { name: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'Only versions of this name' })), ...PageQuery },
  { additionalProperties: false },
);
