/**
 * Lines of a byte stream, as they arrive: the stream is never held whole, only the line being read.
 * Lines end at '\n' (a '\r' before it is dropped); the last line needs no '\n'.
 */

/** A line longer than the caller allows (a missing newline, or not a line-based format at all). */
export class LineTooLongError extends Error {
  constructor(readonly line: number, readonly maxBytes: number) {
    super(`line ${line} is longer than ${maxBytes} bytes`);
    this.name = 'LineTooLongError';
  }
}

/**
 * Calls `visit(lineNumber, text)` (numbered from 1) for each line of `source`, decoded as UTF-8. A
 * callback rather than an async generator: a million lines would otherwise cost a million promises.
 * @throws LineTooLongError as soon as a line passes `maxLineBytes` (characters, for decoded input),
 * and whatever `visit` throws.
 */
export async function eachLine(source: AsyncIterable<Uint8Array | string>, maxLineBytes: number, visit: (line: number, text: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let pending = '';
  let line = 0;
  for await (const chunk of source) {
    const text = pending + (typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
    let from = 0;
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', from)) {
      line++;
      if (end - from > maxLineBytes) throw new LineTooLongError(line, maxLineBytes);
      visit(line, text.charCodeAt(end - 1) === 13 && end > from ? text.slice(from, end - 1) : text.slice(from, end));
      from = end + 1;
    }
    pending = text.slice(from);
    if (pending.length > maxLineBytes) throw new LineTooLongError(line + 1, maxLineBytes);
  }
  pending += decoder.decode();
  if (pending.length > 0) {
    line++;
    if (pending.length > maxLineBytes) throw new LineTooLongError(line, maxLineBytes);
    visit(line, pending.endsWith('\r') ? pending.slice(0, -1) : pending);
  }
}
