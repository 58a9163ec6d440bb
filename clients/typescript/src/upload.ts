/**
 * Uploading a dataset family from a CSV or NDJSON stream: creates the family empty, sends the rows
 * in parts cut at line boundaries (each CSV part repeats the header), retries a part that failed
 * (the server replaces a part sent again, so a retry never doubles rows), then commits.
 *
 * ```ts
 * const family = await uploadFamily(api, createReadStream('rows.csv'), { name: 'sensors', kind: 'regression', format: 'csv' });
 * ```
 */
import { orThrow, ProblemError, type FastadaptClient, type TaskFamily } from './index.js';

export type UploadFormat = 'csv' | 'ndjson';

export interface UploadProgress {
  /** Parts sent and accepted so far. */
  parts: number;
  /** Rows the server has accepted so far. */
  rows: number;
  /** Bytes of the source read so far. */
  bytes: number;
}

export interface UploadOptions {
  name: string;
  kind: 'regression' | 'classification';
  format: UploadFormat;
  /** Classification: classes per episode. */
  nWay?: number;
  /** Default: read from the first row (CSV: the feature columns; NDJSON: the length of `x`). */
  inputDim?: number;
  /** Largest part sent, in bytes; must not pass the server's MAX_PART_BYTES. Default 16 MiB. */
  partBytes?: number;
  /** Tries per part before giving up. Default 4. */
  attempts?: number;
  /** Called after each accepted part. */
  onProgress?: (progress: UploadProgress) => void;
  /** Called before a part is tried again. */
  onRetry?: (part: number, attempt: number, error: unknown) => void;
}

const NAMED_COLUMNS = new Set(['task', 'y', 'label', 'split']);

/** The family's inputDim from its first line (a CSV header or an NDJSON row). */
export function inputDimOf(firstLine: string, format: UploadFormat): number {
  if (format === 'ndjson') {
    const x = (JSON.parse(firstLine) as { x?: unknown }).x;
    if (!Array.isArray(x)) throw new Error('the first NDJSON row has no x array');
    return x.length;
  }
  return firstLine.split(',').filter((name) => !NAMED_COLUMNS.has(name.trim().replace(/^"|"$/g, '').toLowerCase())).length;
}

/**
 * Groups `source` into parts of whole lines of at most `partBytes` (a single longer line is a part of
 * its own, which the server then refuses with a clear answer). CSV parts start with the header.
 */
export async function* partsOf(source: AsyncIterable<Uint8Array | string>, format: UploadFormat, partBytes: number): AsyncGenerator<{ text: string; header: string; rows: number; bytes: number }> {
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  let header: string | null = format === 'csv' ? null : '';
  let pending = '';
  let lines: string[] = [];
  let size = 0;
  let read = 0;
  const flush = () => {
    const part = { text: (header ? `${header}\n` : '') + lines.join('\n') + '\n', header: header ?? '', rows: lines.length, bytes: read };
    lines = [];
    size = 0;
    return part;
  };
  const take = function* (line: string) {
    if (line.trim() === '') return;
    if (header === null) {
      header = line;
      return;
    }
    const bytes = encoder.encode(line).byteLength + 1;
    if (lines.length > 0 && size + bytes + header.length + 1 > partBytes) yield flush();
    lines.push(line);
    size += bytes;
  };
  for await (const chunk of source) {
    read += typeof chunk === 'string' ? encoder.encode(chunk).byteLength : chunk.byteLength;
    const text = pending + (typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
    const all = text.split('\n');
    pending = all.pop()!;
    for (const line of all) yield* take(line.endsWith('\r') ? line.slice(0, -1) : line);
  }
  pending += decoder.decode();
  yield* take(pending.endsWith('\r') ? pending.slice(0, -1) : pending);
  if (lines.length > 0) yield flush();
}

/** A failure worth retrying: the network, or the server's 5xx / 429 (a 4xx names a problem with the rows). */
function retryable(error: unknown): boolean {
  return !(error instanceof ProblemError) || error.status >= 500 || error.status === 429;
}

/**
 * Creates the family, uploads `source` in parts and commits it; resolves with the ready family.
 * @throws ProblemError for a part the server refuses (a bad row: its part, line and column) or a
 * refused commit; the family is then left uploading (or failed) for the caller to delete.
 */
export async function uploadFamily(api: FastadaptClient, source: AsyncIterable<Uint8Array | string>, options: UploadOptions): Promise<TaskFamily> {
  const { format, partBytes = 16 * 1024 * 1024, attempts = 4 } = options;
  const contentType = format === 'csv' ? 'text/csv' : 'application/x-ndjson';
  let familyId: string | null = null;
  const progress: UploadProgress = { parts: 0, rows: 0, bytes: 0 };
  let n = 0;
  for await (const part of partsOf(source, format, partBytes)) {
    n++;
    if (familyId === null) {
      const inputDim = options.inputDim ?? inputDimOf(format === 'csv' ? part.header : part.text.slice(0, part.text.indexOf('\n')), format);
      const created = await orThrow(api.POST('/task-families', {
        body: { name: options.name, kind: options.kind, inputDim, source: 'upload', ...(options.nWay === undefined ? {} : { nWay: options.nWay }) },
      }));
      familyId = created.id;
    }
    for (let attempt = 1; ; attempt++) {
      try {
        const sent = await orThrow(api.PUT('/task-families/{id}/parts/{n}', {
          params: { path: { id: familyId, n } },
          body: part.text,
          bodySerializer: (body: string) => body,
          headers: { 'content-type': contentType },
        }));
        progress.rows = sent.family.rowCount;
        break;
      } catch (error) {
        if (attempt >= attempts || !retryable(error)) throw error;
        options.onRetry?.(n, attempt, error);
        await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** (attempt - 1)));
      }
    }
    progress.parts = n;
    progress.bytes = part.bytes;
    options.onProgress?.({ ...progress });
  }
  if (familyId === null) throw new Error('the source holds no rows');
  return orThrow(api.POST('/task-families/{id}/commit', { params: { path: { id: familyId } } }));
}
