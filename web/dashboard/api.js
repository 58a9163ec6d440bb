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
 * Follows a job's Server-Sent Events with fetch and a stream reader: EventSource cannot send an
 * Authorization header, and a key must not travel in a URL. Reconnects with Last-Event-ID until a
 * terminal status arrives or `signal` aborts.
 */
export async function followEvents(jobId, onEvent, signal) {
  let lastId;
  let ended = false;
  while (!ended && !signal.aborted) {
    try {
      const response = await fetch(`/meta-train/${encodeURIComponent(jobId)}/events`, {
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
          if (event.event === 'status' && ['succeeded', 'failed', 'cancelled'].includes(event.data.status)) ended = true;
          onEvent(event);
        }
      }
      // The server closes the stream after a terminal status; any other close is a dropped connection.
    } catch (error) {
      if (signal.aborted || (error instanceof ApiError && error.status < 500)) return;
    }
    if (!ended && !signal.aborted) await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}
