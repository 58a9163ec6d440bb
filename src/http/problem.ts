/** Errors that carry their own problem+json answer, so routes can simply throw. */
import { STATUS_CODES } from 'node:http';
import type { Problem, ValidationIssue } from './schemas/problem.js';

/**
 * Throw from a route or hook to answer with this problem. `type` defaults to about:blank (RFC 9457:
 * the status code alone says what went wrong) and `title` to the status text.
 */
export class HttpProblem extends Error {
  readonly statusCode: number;
  readonly type: string;
  readonly title: string;
  readonly errors?: ValidationIssue[];
  /** Extra members merged into the body (e.g. which readiness check failed). */
  readonly extensions?: Record<string, unknown>;

  constructor(
    status: number,
    detail: string,
    options: { type?: string; title?: string; errors?: ValidationIssue[]; extensions?: Record<string, unknown> } = {},
  ) {
    super(detail);
    this.name = 'HttpProblem';
    this.statusCode = status;
    this.type = options.type ?? 'about:blank';
    this.title = options.title ?? statusTitle(status);
    this.errors = options.errors;
    this.extensions = options.extensions;
  }

  toProblem(instance: string): Problem {
    return {
      ...this.extensions,
      type: this.type,
      title: this.title,
      status: this.statusCode,
      detail: this.message,
      instance,
      ...(this.errors ? { errors: this.errors } : {}),
    };
  }
}

/** The standard reason phrase for a status code, e.g. 404 -> "Not Found". */
export function statusTitle(status: number): string {
  return STATUS_CODES[status] ?? 'Error';
}

/** 409 for a task that has no adapted head yet: /predict and the model export answer it alike. */
export function taskNotAdapted(taskId: string): HttpProblem {
  return new HttpProblem(409, `Task ${taskId} has not been adapted yet; POST /tasks/${taskId}/adapt with its support set first`, {
    title: 'Task not adapted',
    extensions: { taskId },
  });
}
