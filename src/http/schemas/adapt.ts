/** Adapting a task: the support set in, an adapted head version (or a pollable adaptation) out. */
import { Type } from 'typebox';
import type { Limits } from '../../config.js';
import { ADAPTATION_STATUSES } from '../../db/repositories/adaptations.js';
import { GUARD_POLICIES } from '../../meta/index.js';
import { Id, Literals, Timestamp } from './common.js';

/** A target (regression), or a class label: its index, or one of the task's label names. */
export const LabelOrTarget = Type.Union([Type.Number(), Type.String({ minLength: 1, maxLength: 200 })]);

/**
 * POST /tasks/:id/adapt body. The support set's size is bounded by MAX_SUPPORT_EXAMPLES and the
 * steps by MAX_INNER_STEPS; its fit to the task (row width, labels) is checked by the route.
 */
export function AdaptRequest(limits: Limits) {
  const examples = { minItems: 1, maxItems: limits.maxSupportExamples };
  return Type.Object(
    {
      support: Type.Optional(Type.Object(
        {
          x: Type.Array(Type.Array(Type.Number()), { ...examples, description: 'Inputs, one row of inputDim numbers per example' }),
          y: Type.Array(LabelOrTarget, { ...examples, description: 'Targets (regression) or class labels (classification: 0..nWay-1, or the task\'s label names), one per row of x' }),
        },
        { additionalProperties: false, description: 'The labelled examples of the new task. Without it the task adapts on its stored examples (POST /tasks/:id/examples), as they are when the adaptation runs' },
      )),
      steps: Type.Optional(Type.Integer({ minimum: 0, maximum: limits.maxInnerSteps, description: "Inner-loop gradient steps. Default: the meta-model's (what it was meta-trained with); 0 keeps the meta-model's head. ProtoNets and multitask run none (their heads are computed in closed form) and ignore it" })),
      innerLr: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 100, description: "Inner-loop step size. Default: the meta-model's. Meta-SGD uses its learned step sizes instead; ProtoNets and multitask ignore it" })),
      guard: Type.Optional(Literals(GUARD_POLICIES, {
        description: "'best' (default): keep the step with the lowest support loss, so the head never fits the support set worse than the meta-model; a diverging inner loop still answers 200, with `supportLoss.diverged`. 'none': the raw last step (research); a non-finite one fails (422)",
      })),
      wait: Type.Optional(Type.Boolean({ default: true, description: 'Wait for the result (up to ADAPT_WAIT_MS) and answer 200; false answers 202 at once' })),
    },
    {
      additionalProperties: false,
      examples: [{ support: { x: [[-2.1], [0.3], [1.7], [4.0]], y: [-1.2, 2.9, 1.4, -3.1] }, steps: 5, innerLr: 0.01 }],
    },
  );
}

const SupportLoss = Type.Object(
  {
    before: Type.Number({ description: "With the meta-model's parameters" }),
    after: Type.Number({ description: 'With the stored head (the trace at bestStep)' }),
    trace: Type.Array(Type.Union([Type.Number(), Type.Null()]), { description: 'At every step, step 0 (before) first: steps + 1 values, null where the raw loss was not finite; empty for heads stored before traces were recorded' }),
    bestStep: Type.Integer({ minimum: 0, description: 'The step whose parameters were stored' }),
    diverged: Type.Boolean({ description: 'The raw loss rose above the starting one or went non-finite at some step (guard best then stored an earlier step)' }),
  },
  { description: 'Mean loss on the support set (MSE, or cross-entropy) before, after and at every step of the inner loop' },
);

/** 200 answer: the head version now serving predictions. */
export const AdaptResult = Type.Object(
  {
    taskId: Id,
    adaptationId: Id,
    headVersion: Type.Integer({ minimum: 1 }),
    steps: Type.Integer({ minimum: 0, description: 'Inner steps run (0 for ProtoNets and multitask, whose heads are computed in closed form: from class prototypes; by ridge or logistic regression on the body features)' }),
    supportLoss: SupportLoss,
    durationMs: Type.Number({ description: "The worker's time on it: loading, the inner loop and storing the head" }),
  },
  {
    examples: [{ taskId: '01970f6e-2a6b-7c3e-9a51-1f7d3b0c2e44', adaptationId: '01970f6f-0c1d-7e2f-8a3b-4c5d6e7f8a9b', headVersion: 1, steps: 5, supportLoss: { before: 3.91, after: 0.42, trace: [3.91, 2.2, 1.31, 0.84, 0.58, 0.42], bestStep: 5, diverged: false }, durationMs: 4.2 }],
  },
);

/** An adaptation request and where it got to (the 202 answer, and GET .../adaptations/:adaptationId). */
export const Adaptation = Type.Object(
  {
    id: Id,
    taskId: Id,
    status: Literals(ADAPTATION_STATUSES),
    steps: Type.Integer(),
    innerLr: Type.Number(),
    guard: Literals(GUARD_POLICIES),
    supportSize: Type.Integer({ description: 'Examples in the support set (for one on the stored examples: how many there were when it was queued, then when it ran)' }),
    fromExamples: Type.Optional(Type.Boolean({ description: "Adapts on the task's stored examples (no support set sent)" })),
    examplesThrough: Type.Optional(Type.Union([Type.Integer(), Type.Null()], { description: 'The newest stored example (its seq) it adapted on; null until it ran' })),
    headVersion: Type.Union([Type.Integer(), Type.Null()], { description: 'The head version it stored (succeeded only)' }),
    supportLoss: Type.Union([SupportLoss, Type.Null()]),
    durationMs: Type.Union([Type.Number(), Type.Null()]),
    error: Type.Union([Type.String(), Type.Null()], { description: 'Why it failed (failed only)' }),
    createdAt: Timestamp,
    startedAt: Type.Union([Timestamp, Type.Null()]),
    finishedAt: Type.Union([Timestamp, Type.Null()]),
  },
  {
    examples: [{ id: '01970f6f-0c1d-7e2f-8a3b-4c5d6e7f8a9b', taskId: '01970f6e-2a6b-7c3e-9a51-1f7d3b0c2e44', status: 'queued', steps: 5, innerLr: 0.01, guard: 'best', supportSize: 10, headVersion: null, supportLoss: null, durationMs: null, error: null, createdAt: '2026-01-01T12:00:00.000Z', startedAt: null, finishedAt: null }],
  },
);

export const AdaptationParams = Type.Object({ id: Id, adaptationId: Id }, { additionalProperties: false });
