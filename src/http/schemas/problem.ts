/** RFC 9457 problem details: the body of every error this API answers. */
import { Type, type Static } from 'typebox';

/** One invalid input: where it is (a JSON pointer into that part of the request) and what is wrong. */
export const ValidationIssue = Type.Object(
  {
    path: Type.String({ description: 'JSON pointer to the bad field, e.g. /support/x/0', examples: ['/support/x/0'] }),
    message: Type.String(),
    in: Type.Optional(Type.Union([Type.Literal('body'), Type.Literal('query'), Type.Literal('path'), Type.Literal('header')])),
  },
  { additionalProperties: false },
);
export type ValidationIssue = Static<typeof ValidationIssue>;

export const Problem = Type.Object(
  {
    type: Type.String({ description: 'URI of the problem type; about:blank when the status says it all' }),
    title: Type.String(),
    status: Type.Integer({ minimum: 400, maximum: 599 }),
    detail: Type.Optional(Type.String()),
    instance: Type.Optional(Type.String({ description: 'The request path' })),
    errors: Type.Optional(Type.Array(ValidationIssue)),
  },
  { additionalProperties: true },
);
export type Problem = Static<typeof Problem>;

/** The media type of every error body. */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
