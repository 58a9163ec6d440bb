/** Tasks: a new task bound to a meta-model, adapted from its support set and then served. */
import { Type } from 'typebox';
import { READAPT_POLICIES } from '../../db/repositories/tasks.js';
import { Id, Literals, Page, PageQuery, Timestamp } from './common.js';
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
    labels: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), {
      minItems: 1,
      maxItems: 1000,
      description: 'Classification: the class names in index order, one per class, distinct. Labels may then be given by name (support.y, examples) and predictions answer the name',
      examples: [['cat', 'dog', 'bird']],
    })),
    readapt: Type.Optional(Literals(READAPT_POLICIES, {
      description: "'manual' (default): the task adapts when asked (POST /tasks/:id/adapt). 'auto': it adapts on its stored examples after appends, a burst coalescing into a few adaptations (READAPT_DELAY_MS), never two at once, the last including the newest example",
    })),
  },
  { additionalProperties: false, examples: [{ metaModelId: 'sine-maml@latest', name: 'customer-42' }, { metaModelId: 'pets-protonet@production', labels: ['cat', 'dog', 'bird'], readapt: 'auto' }] },
);

const LiveWindow = Type.Object({
  scored: Type.Integer({ minimum: 0, description: 'Examples scored' }),
  value: Type.Union([Type.Number(), Type.Null()], { description: 'Accuracy or MSE over them; null when none was scored' }),
});

/** Prequential ("test, then train") measure of the served task. */
export const Live = Type.Object(
  {
    metric: Type.Union([Type.Literal('accuracy'), Type.Literal('mse')]),
    allTime: LiveWindow,
    recent: Type.Object({
      ...LiveWindow.properties,
      scores: Type.Array(Type.Number(), { description: "Each one's score, oldest first: 1 or 0 (right or wrong), or the squared error" }),
    }, { description: 'The last 100 scored examples' }),
  },
  { description: 'Each appended labelled example is first scored by the head serving at that moment (before it joins the support set): an honest held-out accuracy (classification) or mean squared error (regression) of the live task. Examples appended before the first head are not scored' },
);

const TASK_EXAMPLE = {
  id: '01970f6e-2a6b-7c3e-9a51-1f7d3b0c2e44', metaModelId: '01970f5d-8f21-7b0e-8a3c-5d2e9f1a7b60', kind: 'regression', inputDim: 1, headVersion: null, pinnedVersion: null,
  readapt: 'manual', exampleCount: 0, live: { metric: 'mse', allTime: { scored: 0, value: null }, recent: { scored: 0, value: null, scores: [] } }, createdAt: '2026-01-01T12:00:00.000Z',
};

export const Task = Type.Object(
  {
    id: Id,
    metaModelId: Type.String({ description: 'The meta-model version it adapts from (a reference is resolved once, at creation)' }),
    name: Type.Optional(Type.String()),
    kind: TaskKind,
    inputDim: Type.Integer({ description: 'Numbers in one input' }),
    nWay: Type.Optional(Type.Integer({ description: 'Classes (classification only); labels are 0..nWay-1' })),
    headVersion: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: 'Latest adapted head; null until the first adaptation' }),
    pinnedVersion: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: 'The head version served instead of the latest (PUT /tasks/:id/head); null: the latest serves' }),
    labels: Type.Optional(Type.Array(Type.String(), { description: 'Class names in index order (when created with names)' })),
    readapt: Literals(READAPT_POLICIES),
    exampleCount: Type.Integer({ minimum: 0, description: 'Labelled examples stored (POST /tasks/:id/examples)' }),
    live: Live,
    createdAt: Timestamp,
  },
  { examples: [TASK_EXAMPLE] },
);

export const TaskList = Page(Task, { examples: [{ items: [{ ...TASK_EXAMPLE, name: 'customer-42', headVersion: 3 }], nextCursor: null }] });

export const TaskListQuery = Type.Object(
  { metaModelId: Type.Optional({ ...MetaModelRef, description: 'Only tasks of this meta-model (id, name@version or name@alias)' }), ...PageQuery },
  { additionalProperties: false },
);
