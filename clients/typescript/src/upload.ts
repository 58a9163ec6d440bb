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
  /** Bytes of the source in the parts accepted so far (headers repeated in parts not counted). */
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
  /** Rows are images: [height, width, channels], flattened row-major; what a conv body convolves. */
  inputShape?: [number, number, number];
  /** Largest part sent, in bytes; must not pass the server's MAX_PART_BYTES. Default 16 MiB. */
  partBytes?: number;
  /** Tries per part before giving up. Default 4. */
  attempts?: number;
  /**
   * Parts in flight at once. Default 2: the next part is read and sent while the server parses and
   * stores the last (parts are independent; a family takes its parts' writes one at a time).
   */
  concurrency?: number;
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
 * Cuts `source` into parts of whole lines of at most `partBytes` (a single longer line is a part of
 * its own, which the server then refuses with a clear answer), working on bytes: a part is cut at
 * its last newline, never decoded. CSV parts start with the header line. `bytes` is how much of the
 * source the part covers.
 */
export async function* partsOf(source: AsyncIterable<Uint8Array | string>, format: UploadFormat, partBytes: number): AsyncGenerator<{ body: Uint8Array; header: string; bytes: number }> {
  const encoder = new TextEncoder();
  let header: Uint8Array | null = format === 'csv' ? null : new Uint8Array(0);
  let held: Uint8Array[] = [];
  let heldBytes = 0;
  let covered = 0;
  const part = (body: Uint8Array) => {
    covered += body.byteLength;
    const withHeader = new Uint8Array(header!.byteLength + body.byteLength);
    withHeader.set(header!);
    withHeader.set(body, header!.byteLength);
    // The first part carries the file's own header; later parts repeat it.
    const size = body.byteLength + (covered === body.byteLength ? header!.byteLength : 0);
    return { body: withHeader, header: new TextDecoder().decode(header!).trim(), bytes: size };
  };
  const joined = () => {
    const all = new Uint8Array(heldBytes);
    let at = 0;
    for (const piece of held) {
      all.set(piece, at);
      at += piece.byteLength;
    }
    return all;
  };
  for await (const chunk of source) {
    let bytes = typeof chunk === 'string' ? encoder.encode(chunk) : chunk;
    if (header === null) {
      // The header is the first line; it may span chunks.
      held.push(bytes);
      heldBytes += bytes.byteLength;
      const all = joined();
      const end = all.indexOf(10);
      if (end === -1) continue;
      header = all.subarray(0, end + 1);
      bytes = all.subarray(end + 1);
      held = [];
      heldBytes = 0;
    }
    held.push(bytes);
    heldBytes += bytes.byteLength;
    while (heldBytes + header.byteLength > partBytes) {
      const all = joined();
      let cut = all.lastIndexOf(10, Math.max(0, partBytes - header.byteLength - 1));
      if (cut === -1) cut = all.indexOf(10);
      if (cut === -1) break;
      yield part(all.subarray(0, cut + 1));
      held = [all.subarray(cut + 1)];
      heldBytes = held[0].byteLength;
    }
  }
  if (header === null && heldBytes > 0) {
    // A CSV of a header alone: nothing to send.
    return;
  }
  const rest = joined();
  if (rest.some((b) => b !== 10 && b !== 13 && b !== 32)) yield part(rest);
}

/** A failure worth retrying: the network, or the server's 5xx / 429 (a 4xx names a problem with the rows). */
function retryable(error: unknown): boolean {
  return !(error instanceof ProblemError) || error.status >= 500 || error.status === 429;
}

/**
 * Creates the family, uploads `source` in parts and commits it; resolves with the ready family.
 * @throws ProblemError for a part the server refuses (a bad row: its part, line and column) or a
 * refused commit; the family is then left uploading for the caller to fix or delete.
 */
export async function uploadFamily(api: FastadaptClient, source: AsyncIterable<Uint8Array | string>, options: UploadOptions): Promise<TaskFamily> {
  const { format, partBytes = 16 * 1024 * 1024, attempts = 4, concurrency = 2 } = options;
  const contentType = format === 'csv' ? 'text/csv' : 'application/x-ndjson';
  let familyId: string | null = null;
  const progress: UploadProgress = { parts: 0, rows: 0, bytes: 0 };
  const rowsOfPart = new Map<number, number>();

  const send = async (n: number, body: Uint8Array, bytes: number) => {
    for (let attempt = 1; ; attempt++) {
      try {
        const sent = await orThrow(api.PUT('/task-families/{id}/parts/{n}', {
          params: { path: { id: familyId!, n } },
          body: body as unknown as string,
          bodySerializer: (raw: unknown) => raw as string,
          headers: { 'content-type': contentType },
        }));
        rowsOfPart.set(n, sent.rows);
        break;
      } catch (error) {
        if (attempt >= attempts || !retryable(error)) throw error;
        options.onRetry?.(n, attempt, error);
        await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** (attempt - 1)));
      }
    }
    progress.parts++;
    progress.rows = [...rowsOfPart.values()].reduce((sum, rows) => sum + rows, 0);
    progress.bytes += bytes;
    options.onProgress?.({ ...progress });
  };

  const inFlight = new Set<Promise<void>>();
  let failed: unknown = null;
  let n = 0;
  for await (const part of partsOf(source, format, partBytes)) {
    n++;
    if (familyId === null) {
      const firstLine = format === 'csv' ? part.header : new TextDecoder().decode(part.body.subarray(0, part.body.indexOf(10) === -1 ? undefined : part.body.indexOf(10)));
      const inputDim = options.inputDim ?? inputDimOf(firstLine, format);
      const created = await orThrow(api.POST('/task-families', {
        body: {
          name: options.name,
          kind: options.kind,
          inputDim,
          source: 'upload',
          ...(options.nWay === undefined ? {} : { nWay: options.nWay }),
          ...(options.inputShape === undefined ? {} : { inputShape: options.inputShape }),
        },
      }));
      familyId = created.id;
    }
    const sending: Promise<void> = send(n, part.body, part.bytes).catch((error: unknown) => {
      failed ??= error;
    }).finally(() => inFlight.delete(sending));
    inFlight.add(sending);
    if (inFlight.size >= concurrency) await Promise.race(inFlight);
    if (failed !== null) break;
  }
  await Promise.all(inFlight);
  if (failed !== null) throw failed;
  if (familyId === null) throw new Error('the source holds no rows');
  return orThrow(api.POST('/task-families/{id}/commit', { params: { path: { id: familyId } } }));
}
