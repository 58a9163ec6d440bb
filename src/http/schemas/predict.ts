/** Predictions from a task's latest adapted head. */
import { Type } from 'typebox';
import type { Limits } from '../../config.js';
import { HeadVersion, Id } from './common.js';
import { UncertaintyAnswerFields, UncertaintyFields } from './predict-uncertainty.js';

/** GET /predict query: `x` repeats, one input each, as comma-separated numbers (bounded by MAX_PREDICT_INPUTS). */
export function PredictQuery(limits: Limits) {
  return Type.Object(
    {
      taskId: Id,
      version: Type.Optional({ ...HeadVersion("Answer with this head version instead of the served one (GET /tasks/:id/heads lists them); 404 when the task has no such version"), examples: [3] }),
      x: Type.Array(Type.String({ minLength: 1, maxLength: 100_000 }), {
        minItems: 1,
        maxItems: limits.maxPredictInputs,
        description: 'One input per `x`: inputDim comma-separated numbers, e.g. `x=0.5&x=1.25` (inputDim 1) or `x=0.5,2` (inputDim 2)',
        examples: [['0.5', '1.25']],
      }),
      ...UncertaintyFields,
    },
    { additionalProperties: false },
  );
}

/** POST /tasks/:id/predict body: a batch of inputs (bounded by MAX_PREDICT_INPUTS). */
export function PredictBody(limits: Limits) {
  return Type.Object(
    {
      x: Type.Array(Type.Array(Type.Number()), {
        minItems: 1,
        maxItems: limits.maxPredictInputs,
        description: 'Inputs, one row of inputDim numbers each',
      }),
      ...UncertaintyFields,
    },
    { additionalProperties: false, examples: [{ x: [[0.5], [1.25]] }] },
  );
}

const ClassPrediction = Type.Object({
  label: Type.Union([Type.Integer({ minimum: 0 }), Type.String()], { description: 'The most probable class: its name for a task with label names, else its index' }),
  labelIndex: Type.Integer({ minimum: 0, description: 'The most probable class, by index' }),
  probabilities: Type.Array(Type.Number(), { description: 'One probability per class, summing to 1' }),
});

export const Predictions = Type.Object(
  {
    taskId: Id,
    headVersion: Type.Integer({ minimum: 1, description: 'The adapted head that answered' }),
    predictions: Type.Union([
      Type.Array(Type.Number(), { description: 'Regression: one value per input' }),
      Type.Array(ClassPrediction, { description: 'Classification: a label and class probabilities per input' }),
    ]),
    ...UncertaintyAnswerFields,
  },
  {
    examples: [
      { taskId: '01970f6e-2a6b-7c3e-9a51-1f7d3b0c2e44', headVersion: 3, predictions: [0.731, 2.118] },
      { taskId: '01970f6e-2a6b-7c3e-9a51-1f7d3b0c2e44', headVersion: 1, predictions: [{ label: 'bird', labelIndex: 2, probabilities: [0.05, 0.1, 0.85] }] },
    ],
  },
);
