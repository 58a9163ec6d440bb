/**
 * A small console progress printer for the demo: numbered steps, a duration for each, detail lines
 * under it, and the first failure reported with its step so a reader knows where the demo stopped.
 */
import { errorMessage } from '../../src/util/error-reason.js';

/** One demo step: a title and the work, which may return detail lines to print under it. */
export interface Step<Context> {
  readonly title: string;
  run(context: Context): Promise<readonly string[] | void>;
}

/** Thrown by {@link runSteps} when a step fails; `step` names it, `cause` is what it threw. */
export class StepError extends Error {
  constructor(
    readonly step: string,
    cause: unknown,
  ) {
    super(errorMessage(cause), { cause });
    this.name = 'StepError';
  }
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;

/**
 * Runs the steps in order, printing `[i/n] title` before each and `ok (duration)` plus its detail
 * lines after it.
 *
 * @param write - where lines go; defaults to stdout.
 * @throws StepError at the first step that throws; later steps do not run.
 */
export async function runSteps<Context>(
  steps: readonly Step<Context>[],
  context: Context,
  write: (line: string) => void = (line) => process.stdout.write(`${line}\n`),
): Promise<void> {
  for (const [index, step] of steps.entries()) {
    write(`[${index + 1}/${steps.length}] ${step.title}`);
    const started = performance.now();
    let details: readonly string[] | void;
    try {
      details = await step.run(context);
    } catch (error) {
      write(`      FAILED after ${seconds(performance.now() - started)}`);
      throw new StepError(step.title, error);
    }
    write(`      ok (${seconds(performance.now() - started)})`);
    for (const line of details ?? []) write(`      ${line}`);
  }
}
