/**
 * A reader for text/event-stream bodies (the WHATWG Server-Sent Events format): `id`, `event` and
 * multi-line `data` fields, comment lines (heartbeats) skipped, LF, CRLF or CR line ends.
 */

/** One event as sent: `data` is the raw text (this API always sends one JSON document). */
export interface ServerSentEvent {
  id?: string;
  event: string;
  data: string;
}

function* dispatch(block: string): Generator<ServerSentEvent> {
  let id: string | undefined;
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') id = value;
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length > 0) yield { ...(id === undefined ? {} : { id }), event, data: data.join('\n') };
}

/** Yields each event of `body` as it arrives; ends when the server closes the stream. */
export async function* readServerSentEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      buffer = buffer.replace(/\r\n?/g, '\n');
      const blocks = buffer.split('\n\n');
      buffer = done ? '' : blocks.pop()!;
      for (const block of blocks) yield* dispatch(block);
      if (done) return;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
