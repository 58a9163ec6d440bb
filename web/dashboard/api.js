// The dashboard's only way to the service: the JSON API with the key from sessionStorage.
const KEY = 'fastadapt.apiKey';

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set(key) { sessionStorage.setItem(KEY, key); },
  clear() { sessionStorage.removeItem(KEY); },
};

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function headers(extra = {}) {
  return { authorization: `Bearer ${session.key}`, ...extra };
}

/** One JSON call; a problem+json answer becomes an ApiError with its detail. */
export async function api(path, { method = 'GET', body } = {}) {
  const response = await fetch(path, {
    method,
    headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/**
 * Downloads a file the API answers (a model export) as the browser's own download. A plain link
 * cannot carry the Authorization header (and a key must not travel in a URL), so the file is fetched
 * here and handed to the browser as a blob, under the name the API gives it.
 */
export async function download(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  const name = /filename="([^"]+)"/.exec(response.headers.get('content-disposition') ?? '')?.[1] ?? 'model';
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement('a'), { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  // The click has started the download; the blob URL is not needed after this task.
  setTimeout(() => URL.revokeObjectURL(url), 0);
  return name;
}

function parseFrame(frame) {
  const fields = {};
  for (const line of frame.split('\n')) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, '');
  }
  return fields.event ? { id: fields.id, event: fields.event, data: JSON.parse(fields.data ?? 'null') } : null;
}

/**
 * Follows the Server-Sent Events at `path` with fetch and a stream reader: EventSource cannot send an
 * Authorization header, and a key must not travel in a URL. Reconnects (with Last-Event-ID where the
 * stream gives ids) until `isEnd(event)` says the stream's subject ended or `signal` aborts.
 */
async function followStream(path, isEnd, onEvent, signal) {
  let lastId;
  let ended = false;
  while (!ended && !signal.aborted) {
    try {
      const response = await fetch(path, {
        headers: headers({ accept: 'text/event-stream', ...(lastId ? { 'last-event-id': lastId } : {}) }),
        signal,
      });
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        const frames = buffer.split('\n\n');
        buffer = frames.pop();
        for (const frame of frames) {
          const event = parseFrame(frame);
          if (!event) continue;
          if (event.id) lastId = event.id;
          if (isEnd(event)) ended = true;
          onEvent(event);
        }
      }
      // The server closes the stream after the end; any other close is a dropped connection.
    } catch (error) {
      if (signal.aborted || (error instanceof ApiError && error.status < 500)) return;
    }
    if (!ended && !signal.aborted) await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

export const TERMINAL = ['succeeded', 'failed', 'cancelled'];

/** A job's events (status, progress, metrics) until a terminal status. */
export function followEvents(jobId, onEvent, signal) {
  const isEnd = (event) => event.event === 'status' && TERMINAL.includes(event.data.status);
  return followStream(`/meta-train/${encodeURIComponent(jobId)}/events`, isEnd, onEvent, signal);
}

/** A study's events: the whole study at each change, until it ends (a reconnect starts from its state now). */
export function followStudy(studyId, onEvent, signal) {
  const isEnd = (event) => event.event === 'study' && TERMINAL.includes(event.data.status);
  return followStream(`/studies/${encodeURIComponent(studyId)}/events`, isEnd, onEvent, signal);
}
