/** Task families: what meta-training learns from (a built-in generator or uploaded dataset tasks). */
import { Type, type Static } from 'typebox';
import type { Limits } from '../../config.js';
import { GENERATOR_TYPES, MAX_INPUT_DIM } from '../../meta/families/index.js';
import { Id, Literals, Page, PageQuery, Timestamp } from './common.js';

export const TaskKind = Literals(['regression', 'classification']);

export const Generator = Type.Object(
  {
    type: Literals(GENERATOR_TYPES, { description: 'Built-in task generator' }),
    params: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), {
        description: 'Generator parameters, e.g. sinusoid `{ "amplitude": [0.1, 5], "phase": [0, 3.14] }`',
      }),
    ),
  },
  { additionalProperties: false },
);

/**
 * POST /task-families body. Sizes come from the configured limits: tasks per family
 * (MAX_DATASET_TASKS) and examples per task (MAX_SUPPORT_EXAMPLES, the same bound as a support set).
 */
export function TaskFamilyCreate(limits: Limits) {
  const examples = { minItems: 2, maxItems: limits.maxSupportExamples };
  return Type.Object(
    {
      name: Type.String({ minLength: 1, maxLength: 200 }),
      kind: TaskKind,
      inputDim: Type.Integer({ minimum: 1, maximum: MAX_INPUT_DIM }),
      nWay: Type.Optional(Type.Integer({ minimum: 2, maximum: 1000, description: 'Classes per episode (classification only)' })),
      generator: Type.Optional(Generator),
      tasks: Type.Optional(
        Type.Array(
          Type.Object(
            {
              x: Type.Array(Type.Array(Type.Number()), { ...examples, description: 'Inputs, one row of inputDim numbers per example' }),
              y: Type.Array(Type.Number(), { ...examples, description: 'Targets (regression) or class labels 0..n-1' }),
            },
            { additionalProperties: false },
          ),
          { minItems: 1, maxItems: limits.maxDatasetTasks, description: 'Stored tasks; exactly one of generator and tasks' },
        ),
      ),
    },
    { additionalProperties: false },
  );
}
export type TaskFamilyCreate = Static<ReturnType<typeof TaskFamilyCreate>>;

export const TaskFamily = Type.Object({
  id: Id,
  name: Type.String(),
  kind: TaskKind,
  inputDim: Type.Integer(),
  nWay: Type.Optional(Type.Integer()),
  generator: Type.Optional(Type.Object({ type: Type.String(), params: Type.Record(Type.String(), Type.Unknown()) })),
  taskCount: Type.Integer({ description: 'Stored tasks (0 for a generator family)' }),
  createdAt: Timestamp,
});

export const TaskFamilyList = Page(TaskFamily);

export const TaskFamilyListQuery = Type.Object(PageQuery, { additionalProperties: false });
