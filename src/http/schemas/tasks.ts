/** Tasks: a new task bound to a meta-model, adapted from its support set and then served. */
import { Type } from 'typebox';
import { Id, Page, PageQuery, Timestamp } from './common.js';
import { TaskKind } from './task-families.js';

const MetaModelRef = Type.String({
  minLength: 1,
  maxLength: 300,
  description: 'A meta-model id, `name@version` (e.g. `sine-maml@3`) or `name@alias` (e.g. `sine-maml@production`)',
  examples: ['sine-maml@latest'],
});

export const TaskCreate = Type.Object(
  {
    metaModelId: MetaModelRef,
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200, examples: ['customer-42'] })),
  },
  { additionalProperties: false, examples: [{ metaModelId: 'sine-maml@latest', name: 'customer-42' }] },
);

const TASK_EXAMPLE = { id: '01970f6e-2a6b-7c3e-9a51-1f7d3b0c2e44', metaModelId: '01970f5d-8f21-7b0e-8a3c-5d2e9f1a7b60', kind: 'regression', inputDim: 1, headVersion: null, createdAt: '2026-01-01T12:00:00.000Z' };

export const Task = Type.Object(
  {
    id: Id,
    metaModelId: Type.String({ description: 'The meta-model version it adapts from (a reference is resolved once, at creation)' }),
    name: Type.Optional(Type.String()),
    kind: TaskKind,
    inputDim: Type.Integer({ description: 'Numbers in one input' }),
    nWay: Type.Optional(Type.Integer({ description: 'Classes (classification only); labels are 0..nWay-1' })),
    headVersion: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: 'Latest adapted head; null until the first adaptation' }),
    createdAt: Timestamp,
  },
  { examples: [TASK_EXAMPLE] },
);

export const TaskList = Page(Task, { examples: [{ items: [{ ...TASK_EXAMPLE, name: 'customer-42', headVersion: 3 }], nextCursor: null }] });

export const TaskListQuery = Type.Object(
  { metaModelId: Type.Optional({ ...MetaModelRef, description: 'Only tasks of this meta-model (id, name@version or name@alias)' }), ...PageQuery },
  { additionalProperties: false },
);
