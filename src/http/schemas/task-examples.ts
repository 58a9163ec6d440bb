/** A task's stored labelled examples, and its head versions (list, pin). */
import { Type } from 'typebox';
import type { Limits } from '../../config.js';
import { LabelOrTarget } from './adapt.js';
import { HeadVersion, Id, Timestamp } from './common.js';

/** POST /tasks/:id/examples body: at most MAX_TASK_EXAMPLES examples. */
export function ExamplesAppend(limits: Limits) {
  const examples = { minItems: 1, maxItems: limits.maxTaskExamples };
  return Type.Object(
    {
      x: Type.Array(Type.Array(Type.Number()), { ...examples, description: 'Inputs, one row of inputDim numbers per example' }),
      y: Type.Array(LabelOrTarget, { ...examples, description: "Targets (regression) or class labels (an index, or one of the task's label names), one per row of x" }),
    },
    { additionalProperties: false, examples: [{ x: [[0.4, 1.2]], y: ['dog'] }] },
  );
}

export const ExamplesAppended = Type.Object(
  {
    added: Type.Integer({ minimum: 0 }),
    stored: Type.Integer({ minimum: 0, description: 'Examples the task stores now' }),
    evicted: Type.Integer({ minimum: 0, description: 'The oldest examples removed to stay within MAX_TASK_EXAMPLES (each class keeps its newest few)' }),
    lastSeq: Type.Integer({ minimum: 1, description: 'The sequence number of the last example appended (examples are numbered from 1 per task)' }),
    prequential: Type.Object(
      {
        scored: Type.Integer({ minimum: 0, description: 'Examples scored before joining the set (0 when the task had no head yet)' }),
        correct: Type.Optional(Type.Integer({ minimum: 0, description: 'Classification: how many of them the serving head classified right' })),
        squaredError: Type.Optional(Type.Number({ minimum: 0, description: 'Regression: their summed squared error' })),
        headVersion: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: 'The head that scored them' }),
        predicted: Type.Array(Type.Number(), { description: 'What that head predicted for each (the value, or the class index), so the score can be recomputed' }),
      },
      { description: "Each example was first scored by the head serving at that moment (test, then train): see the task's `live`" },
    ),
    readaptId: Type.Optional(Type.String({ description: 'readapt auto: the adaptation of the stored examples this append started' })),
  },
  { examples: [{ added: 1, stored: 41, evicted: 0, lastSeq: 41, prequential: { scored: 1, correct: 1, headVersion: 7, predicted: [1] } }] },
);

export const ExamplesQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
    after: Type.Optional(Type.Integer({ minimum: 0, default: 0, description: 'Examples with a larger sequence number (the previous page\'s nextAfter)' })),
  },
  { additionalProperties: false },
);

export const ExampleList = Type.Object({
  items: Type.Array(Type.Object({
    seq: Type.Integer({ minimum: 1 }),
    x: Type.Array(Type.Number()),
    y: Type.Number({ description: 'The target, or the class index' }),
    label: Type.Optional(Type.String({ description: 'The class name (tasks with names)' })),
    createdAt: Timestamp,
  })),
  nextAfter: Type.Union([Type.Integer(), Type.Null()], { description: 'Pass as `after` for the next page; null on the last' }),
}, { examples: [{ items: [{ seq: 41, x: [0.4, 1.2], y: 1, label: 'dog', createdAt: '2026-01-01T12:00:00.000Z' }], nextAfter: null }] });

export const HeadList = Type.Object(
  {
    items: Type.Array(Type.Object({
      version: Type.Integer({ minimum: 1 }),
      supportSize: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'Examples it was adapted on' }),
      examplesThrough: Type.Union([Type.Integer(), Type.Null()], { description: 'Adapted on the stored examples: the newest one it saw (its seq)' }),
      supportLoss: Type.Object({ before: Type.Number(), after: Type.Number() }),
      diverged: Type.Boolean(),
      adaptationId: Type.Union([Id, Type.Null()]),
      createdAt: Timestamp,
    })),
    pinned: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: 'The version served instead of the latest; null: the latest serves' }),
    latest: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]),
  },
  {
    description: 'Newest first',
    examples: [{
      items: [
        { version: 2, supportSize: 41, examplesThrough: 41, supportLoss: { before: 0.9, after: 0.2 }, diverged: false, adaptationId: '01970f6f-0c1d-7e2f-8a3b-4c5d6e7f8a9b', createdAt: '2026-01-01T12:05:00.000Z' },
        { version: 1, supportSize: 10, examplesThrough: null, supportLoss: { before: 1.1, after: 0.4 }, diverged: false, adaptationId: '01970f6e-9a1d-7e2f-8a3b-4c5d6e7f8a9b', createdAt: '2026-01-01T12:00:00.000Z' },
      ],
      pinned: 1,
      latest: 2,
    }],
  },
);

export const HeadPin = Type.Object(
  { version: Type.Union([HeadVersion('A version of GET /tasks/:id/heads'), Type.Null()], { description: 'The head version to serve; null follows the latest again' }) },
  { additionalProperties: false, examples: [{ version: 3 }, { version: null }] },
);
