/** Task families: what meta-training learns from (a built-in generator or uploaded dataset tasks). */
import { Type, type Static } from 'typebox';
import type { Limits } from '../../config.js';
import { GENERATOR_TYPES, MAX_INPUT_DIM } from '../../meta/families/index.js';
import { TASK_KINDS } from '../../meta/index.js';
import { Id, Literals, Page, PageQuery, Timestamp } from './common.js';
import { EXAMPLE_IDS, EXAMPLE_TIMES } from './examples.js';

/** Sinusoids y = A sin(x - phase): the regression family of the MAML paper. */
const SINE_FAMILY = { name: 'sine', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid', params: { amplitude: [0.1, 5], phase: [0, 3.14] } } };

/** Two uploaded 2-way tasks of two examples each: the smallest dataset family. */
const DATASET_FAMILY = {
  name: 'sensor-faults',
  kind: 'classification',
  inputDim: 2,
  nWay: 2,
  tasks: [
    { x: [[0.1, 0.9], [0.8, 0.2]], y: [0, 1] },
    { x: [[0.3, 0.7], [0.9, 0.4]], y: [0, 1] },
  ],
};

export const TaskKind = Literals(TASK_KINDS);

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
    { additionalProperties: false, examples: [SINE_FAMILY, DATASET_FAMILY] },
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
}, { examples: [{ id: EXAMPLE_IDS.family, ...SINE_FAMILY, taskCount: 0, createdAt: EXAMPLE_TIMES.created }] });

export const TaskFamilyList = Page(TaskFamily, {
  examples: [{ items: [{ id: EXAMPLE_IDS.family, ...SINE_FAMILY, taskCount: 0, createdAt: EXAMPLE_TIMES.created }], nextCursor: null }],
});

export const TaskFamilyListQuery = Type.Object(PageQuery, { additionalProperties: false });
