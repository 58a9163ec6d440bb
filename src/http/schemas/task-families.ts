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

/** An empty family that receives its rows by upload (PUT .../parts/:n, then POST .../commit). */
const UPLOAD_FAMILY = { name: 'sensor-drift', kind: 'regression', inputDim: 16, source: 'upload' };

/** The digits generator: 14x14 grey images, 5-way; its inputShape is its own. */
const DIGITS_FAMILY = { name: 'digits', kind: 'classification', inputDim: 196, nWay: 5, generator: { type: 'digits' } };

/** Uploaded 28x28 grey images: declaring inputShape lets a conv body (model.body 'conv') read them. */
const IMAGE_UPLOAD_FAMILY = { name: 'glyphs', kind: 'classification', inputDim: 784, nWay: 5, inputShape: [28, 28, 1], source: 'upload' };

const InputShape = (description: string) => Type.Array(Type.Integer({ minimum: 1, maximum: MAX_INPUT_DIM }), { minItems: 3, maxItems: 3, description });

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
      inputShape: Type.Optional(InputShape(
        'Inputs are images: [height, width, channels], each row of inputDim numbers one image flattened row-major (h, w, c); the product must be inputDim. For stored or uploaded tasks; a generator has its own (digits: [14, 14, 1]). A conv body (POST /meta-train with model.body conv) takes its inputShape from here',
      )),
      source: Type.Optional(Type.Literal('upload', {
        description: 'Create the family empty and upload its rows in parts (PUT /task-families/{id}/parts/{n}, then POST /task-families/{id}/commit); no generator or tasks then',
      })),
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
    { additionalProperties: false, examples: [SINE_FAMILY, DATASET_FAMILY, UPLOAD_FAMILY, DIGITS_FAMILY, IMAGE_UPLOAD_FAMILY] },
  );
}
export type TaskFamilyCreate = Static<ReturnType<typeof TaskFamilyCreate>>;

export const TaskFamily = Type.Object({
  id: Id,
  name: Type.String(),
  kind: TaskKind,
  inputDim: Type.Integer(),
  nWay: Type.Optional(Type.Integer()),
  inputShape: Type.Optional(InputShape('Image inputs: [height, width, channels]; absent when inputs are not images')),
  generator: Type.Optional(Type.Object({ type: Type.String(), params: Type.Record(Type.String(), Type.Unknown()) })),
  source: Literals(['generator', 'tasks', 'upload'] as const, { description: 'Where its episodes come from' }),
  status: Literals(['uploading', 'ready'] as const, {
    description: 'uploading: parts are arriving; ready: usable for meta-training (generator and JSON-task families always are)',
  }),
  taskCount: Type.Integer({ description: 'Stored tasks (0 for a generator family); for an upload, tasks or classes once committed' }),
  rowCount: Type.Integer({ description: 'Uploaded rows so far (0 unless uploaded)' }),
  createdAt: Timestamp,
}, { examples: [{ id: EXAMPLE_IDS.family, ...SINE_FAMILY, source: 'generator', status: 'ready', taskCount: 0, rowCount: 0, createdAt: EXAMPLE_TIMES.created }] });

export const TaskFamilyList = Page(TaskFamily, {
  examples: [{ items: [{ id: EXAMPLE_IDS.family, ...SINE_FAMILY, source: 'generator', status: 'ready', taskCount: 0, rowCount: 0, createdAt: EXAMPLE_TIMES.created }], nextCursor: null }],
});

/** The media types a part may have. */
export const PART_MEDIA_TYPES = ['text/csv', 'application/x-ndjson'] as const;

export const PartParams = Type.Object({
  id: Id,
  n: Type.Integer({ minimum: 1, maximum: 100_000, description: 'Part number; uploading a number again replaces that part', examples: [1] }),
}, { additionalProperties: false });

/** A part's body: parsed as it streams in, never held whole (see upload-rows.ts for the columns). */
export const PartBody = Type.String({
  description: 'Rows of the family. CSV with a header row: regression `task,y,x1..xd`; classification `label,x1..xd` (a pool of classes) or `task,label,x1..xd`; an optional `split` column (train|val|test). NDJSON: one object a line, `{"task","y","x":[..]}` or `{"label","x":[..]}` (optional `task`, `split`).',
  examples: ['task,y,x1,x2\nsensor-1,0.52,0.1,0.9\nsensor-1,0.48,0.2,0.8\n'],
});

export const PartResult = Type.Object({
  part: Type.Integer(),
  rows: Type.Integer({ description: 'Rows of this part' }),
  family: TaskFamily,
}, { examples: [{ part: 1, rows: 2, family: { id: EXAMPLE_IDS.family, ...UPLOAD_FAMILY, status: 'uploading', taskCount: 0, rowCount: 2, createdAt: EXAMPLE_TIMES.created } }] });

export const TaskFamilyListQuery = Type.Object(PageQuery, { additionalProperties: false });
