/**
 * Why something failed, as text short enough to show or store: the message of anything thrown,
 * the line of it that carries the reason, and the cut applied before a reason is written to a row.
 */

/** An Error's message, or the text of anything else thrown. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The message's first line: native and wasm loaders open with the reason and follow with a dump. */
export function firstLine(error: unknown): string {
  return errorMessage(error).split('\n')[0];
}

/**
 * The message's last non-blank line, trimmed ('' when there is none): Prisma's messages open with
 * lines of call-site context, and the cause, on the last line, is what an operator needs.
 */
export function lastLine(error: unknown): string {
  const lines = errorMessage(error).split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i].trim();
    if (line !== '') return line;
  }
  return '';
}

/** Longest failure reason stored on a row (a job's or an adaptation's `error`). */
export const MAX_REASON_LENGTH = 2_000;

/** `reason`, cut to `max` characters with an ellipsis when longer, so a huge message cannot bloat a row. */
export function truncateReason(reason: string, max = MAX_REASON_LENGTH): string {
  return reason.length > max ? `${reason.slice(0, max - 1)}…` : reason;
}
