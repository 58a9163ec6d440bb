/** A minimal Server-Sent Events client for tests: reads a stream until the server closes it. */

export interface SseEvent {
  id?: string;
  event: string;
  data: Record<string, unknown>;
}

/** Parses complete frames (`\n\n`-terminated) out of `buffer`; returns the events and the unparsed rest. */
function parseFrames(buffer: string): { events: SseEvent[]; rest: string; comments: number } {
  const frames = buffer.split('\n\n');
  const rest = frames.pop() ?? '';
  const events: SseEvent[] = [];
  let comments = 0;
  for (const frame of frames) {
    const fields: Record<string, string> = {};
    for (const line of frame.split('\n')) {
      if (line.startsWith(':')) comments++;
      const match = /^(\w+): ?(.*)$/.exec(line);
      if (match) fields[match[1]] = match[2];
    }
    if (fields.event) events.push({ ...(fields.id ? { id: fields.id } : {}), event: fields.event, data: JSON.parse(fields.data ?? 'null') as Record<string, unknown> });
  }
  return { events, rest, comments };
}

/**
 * GETs `url` and collects its events until the server ends the stream.
 * @throws when the answer is not 200 text/event-stream, or after `timeoutMs` (default 30 s).
 */
export async function readEventStream(url: string, headers: Record<string, string>, timeoutMs = 30_000): Promise<{ events: SseEvent[]; comments: number; contentType: string | null }> {
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: AbortSignal.timeout(timeoutMs) });
  if (response.status !== 200 || !response.body) throw new Error(`events answered ${response.status}: ${await response.text()}`);
  const decoder = new TextDecoder();
  let buffer = '';
  const events: SseEvent[] = [];
  let comments = 0;
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk, { stream: true });
    const parsed = parseFrames(buffer);
    events.push(...parsed.events);
    comments += parsed.comments;
    buffer = parsed.rest;
  }
  return { events, comments, contentType: response.headers.get('content-type') };
}

/** Orders Redis stream ids (`<ms>-<seq>`). */
export function compareStreamIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  return am === bm ? Number(as - bs) : am < bm ? -1 : 1;
}
