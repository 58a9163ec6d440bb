/**
 * Rows of one uploaded part (PUT /task-families/:id/parts/:n), parsed as the body arrives and packed
 * into float32 chunks, one run of rows per group (a task, or a class of a class pool) and split.
 *
 * Formats (the family fixes kind and inputDim):
 * - CSV with a header row. Regression: columns `task`, `y` and inputDim feature columns (any names, in
 *   order). Classification: `label` (an integer class >= 0) and the features, with `task` when the
 *   family is many tasks of a few labels each rather than one pool of classes. An optional `split`
 *   column (train|val|test). Fields may be double-quoted.
 * - NDJSON: one object a line, `{ "task", "y", "x": [..] }` or `{ "label", "x": [..], "task"? }`, with
 *   an optional `split`; the first row fixes which keys every row has.
 *
 * Group keys say what the group is (`task:<name>` or `class:<label>`), so a commit can tell a class
 * pool from tasks and refuse a family whose parts mix the two.
 */
import { MAX_PARAM_MAGNITUDE, type Split, type TaskKind } from '../meta/index.js';
import { eachLine, LineTooLongError } from '../util/lines.js';

export type UploadFormat = 'csv' | 'ndjson';

/** A run of rows of one group and split, as stored (x: examples x inputDim, y: examples). */
export interface PartChunk {
  groupKey: string;
  split: Split | null;
  examples: number;
  x: Float32Array;
  y: Float32Array;
}

export interface ParsedPart {
  rows: number;
  chunks: PartChunk[];
}

/** A row the part cannot hold: where (1-based line of the body, column name) and why. */
export class RowError extends Error {
  constructor(readonly line: number, readonly column: string | null, readonly detail: string) {
    super(`line ${line}${column === null ? '' : `, column ${column}`}: ${detail}`);
    this.name = 'RowError';
  }
}

/** The part holds more rows than the family has room for. */
export class TooManyRowsError extends Error {
  constructor(readonly maxRows: number) {
    super(`the part takes the family past ${maxRows} rows`);
    this.name = 'TooManyRowsError';
  }
}

export interface PartOptions {
  kind: TaskKind;
  inputDim: number;
  format: UploadFormat;
  /** Most rows this part may add. */
  maxRows: number;
}

const SPLITS: readonly string[] = ['train', 'val', 'test'];
/** Rows per stored chunk: about 1 MiB of inputs, so a chunk is one reasonable bytea value. */
const chunkRows = (inputDim: number) => Math.max(16, Math.floor(262_144 / inputDim));
/** Longest line accepted: room for inputDim numbers written out in full, plus the named columns. */
export const maxLineBytes = (inputDim: number) => 4096 + inputDim * 64;
/** Longest task name (a group key). */
const MAX_TASK_NAME = 200;

/** Rows of one group and split being collected: grows by doubling, flushed as a chunk when full. */
class Run {
  x: Float32Array;
  y: Float32Array;
  n = 0;
  constructor(readonly groupKey: string, readonly split: Split | null, private readonly inputDim: number) {
    this.x = new Float32Array(4 * inputDim);
    this.y = new Float32Array(4);
  }

  /** Makes room for one more row; returns its index. */
  next(): number {
    if (this.n === this.y.length) {
      const x = new Float32Array(this.x.length * 2);
      x.set(this.x);
      const y = new Float32Array(this.y.length * 2);
      y.set(this.y);
      this.x = x;
      this.y = y;
    }
    return this.n++;
  }

  take(): PartChunk {
    const chunk = { groupKey: this.groupKey, split: this.split, examples: this.n, x: this.x.slice(0, this.n * this.inputDim), y: this.y.slice(0, this.n) };
    this.n = 0;
    return chunk;
  }
}

/** One CSV line's fields; quotes only when the line has any (the common numeric line is a plain split). */
function csvFields(text: string, line: number): string[] {
  if (!text.includes('"')) return text.split(',');
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        const close = text.indexOf('"', i);
        if (close === -1) throw new RowError(line, null, 'a quoted field is not closed');
        field += text.slice(i, close);
        i = close + 1;
        if (text[i] !== '"') break;
        field += '"';
        i++;
      }
      if (i < text.length && text[i] !== ',') throw new RowError(line, null, 'text after a closing quote');
    } else {
      const comma = text.indexOf(',', i);
      const end = comma === -1 ? text.length : comma;
      field = text.slice(i, end);
      i = end;
    }
    fields.push(field);
    if (i >= text.length) return fields;
    i++; // the comma
  }
}

/**
 * A plain decimal (`-12.345`, up to 15 digits) read straight from `text[start, end)`, or NaN for
 * anything else (exponents, `Infinity`, spaces), which the caller then reads with Number(). Exact:
 * the digits make an integer below 2^53 and one division by a power of ten rounds it correctly,
 * as Number() would. Most of an upload's time is reading numbers, and this skips a substring each.
 */
function plainDecimal(text: string, start: number, end: number): number {
  let i = start;
  const negative = text.charCodeAt(i) === 45; // '-'
  if (negative) i++;
  let mantissa = 0;
  let digits = 0;
  let scale = -1;
  for (; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code >= 48 && code <= 57) {
      mantissa = mantissa * 10 + (code - 48);
      digits++;
    } else if (code === 46 && scale === -1) {
      scale = i;
    } else {
      return NaN;
    }
  }
  if (digits === 0 || digits > 15) return NaN;
  const decimals = scale === -1 ? 0 : end - scale - 1;
  const value = decimals === 0 ? mantissa : mantissa / POWERS_OF_TEN[decimals];
  return negative ? -value : value;
}

const POWERS_OF_TEN = Array.from({ length: 16 }, (_, k) => 10 ** k);

/** A CSV field as a number: the fast path for plain decimals, Number() for the rest. */
function fieldNumber(text: string, start: number, end: number, line: number, column: string): number {
  const fast = plainDecimal(text, start, end);
  if (fast === fast && Math.abs(fast) <= MAX_PARAM_MAGNITUDE) return fast; // not NaN, within bounds
  return number(text.slice(start, end), line, column);
}

/** A finite number the engine accepts, from a CSV field or a JSON value. */
function number(raw: unknown, line: number, column: string): number {
  const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : typeof raw === 'number' ? raw : NaN;
  if (!Number.isFinite(value) || Math.abs(value) > MAX_PARAM_MAGNITUDE) {
    throw new RowError(line, column, `must be a finite number within ±${MAX_PARAM_MAGNITUDE}, got ${JSON.stringify(raw)?.slice(0, 40)}`);
  }
  return value;
}

function label(raw: unknown, line: number): number {
  const value = number(raw, line, 'label');
  if (!Number.isInteger(value) || value < 0) throw new RowError(line, 'label', `must be a class label (an integer >= 0), got ${JSON.stringify(raw)?.slice(0, 40)}`);
  return value;
}

function taskName(raw: unknown, line: number): string {
  const name = typeof raw === 'number' && Number.isFinite(raw) ? String(raw) : raw;
  if (typeof name !== 'string' || name.trim() === '' || name.length > MAX_TASK_NAME) {
    throw new RowError(line, 'task', `must be a non-empty name of at most ${MAX_TASK_NAME} characters`);
  }
  return name.trim();
}

function split(raw: unknown, line: number): Split {
  const value = typeof raw === 'string' ? raw.trim() : raw;
  if (typeof value !== 'string' || !SPLITS.includes(value)) throw new RowError(line, 'split', `must be train, val or test, got ${JSON.stringify(raw)?.slice(0, 40)}`);
  return value as Split;
}

/** Where each named column sits in a CSV row, from the header. */
interface CsvLayout {
  width: number;
  task: number;
  y: number;
  label: number;
  split: number;
  /** Feature columns, in order, with their names (for errors). */
  features: number[];
  names: string[];
}

function csvLayout(header: string, options: PartOptions): CsvLayout {
  const names = csvFields(header, 1).map((n) => n.trim());
  const find = (name: string) => {
    const at = names.flatMap((n, i) => (n.toLowerCase() === name ? [i] : []));
    if (at.length > 1) throw new RowError(1, name, 'appears more than once in the header');
    return at[0] ?? -1;
  };
  const layout = { width: names.length, task: find('task'), y: find('y'), label: find('label'), split: find('split'), names };
  if (options.kind === 'regression') {
    if (layout.task < 0 || layout.y < 0) throw new RowError(1, null, 'a regression header needs columns task and y (then the features)');
    if (layout.label >= 0) throw new RowError(1, 'label', 'is for classification families (regression rows have y)');
  } else {
    if (layout.label < 0) throw new RowError(1, null, 'a classification header needs a label column (then the features)');
    if (layout.y >= 0) throw new RowError(1, 'y', 'is for regression families (classification rows have label)');
  }
  const named = new Set([layout.task, layout.y, layout.label, layout.split]);
  const features = names.flatMap((_, i) => (named.has(i) ? [] : [i]));
  if (features.length !== options.inputDim) {
    throw new RowError(1, null, `has ${features.length} feature columns but the family's inputDim is ${options.inputDim}`);
  }
  return { ...layout, features };
}

/**
 * Parses a part's body as it streams in.
 * @throws RowError naming the line and column of the first bad row; TooManyRowsError past `maxRows`.
 */
export async function parsePart(body: AsyncIterable<Uint8Array | string>, options: PartOptions): Promise<ParsedPart> {
  const { inputDim, kind } = options;
  const perChunk = chunkRows(inputDim);
  const runs = new Map<string, Run>();
  const chunks: PartChunk[] = [];
  let rows = 0;
  let layout: CsvLayout | null = null;
  /** NDJSON: which optional keys the first row had (every row must match). */
  let keys: { task: boolean; split: boolean } | null = null;

  const add = (group: string, rowSplit: Split | null, target: number, fill: (x: Float32Array, at: number) => void) => {
    if (++rows > options.maxRows) throw new TooManyRowsError(options.maxRows);
    const key = rowSplit === null ? group : `${rowSplit}\u0000${group}`;
    let run = runs.get(key);
    if (!run) runs.set(key, (run = new Run(group, rowSplit, inputDim)));
    const i = run.next();
    fill(run.x, i * inputDim);
    run.y[i] = target;
    if (run.n === perChunk) chunks.push(run.take());
  };

  /** Where each field of the current line starts and ends (the fast path for lines without quotes). */
  let bounds = new Int32Array(0);
  const csvRow = (line: number, text: string) => {
    if (layout === null) {
      layout = csvLayout(text, options);
      bounds = new Int32Array(2 * layout.width);
      return;
    }
    const l: CsvLayout = layout;
    if (!text.includes('"')) {
      let from = 0;
      let count = 0;
      for (;;) {
        const comma = text.indexOf(',', from);
        const end = comma === -1 ? text.length : comma;
        if (count < l.width) {
          bounds[2 * count] = from;
          bounds[2 * count + 1] = end;
        }
        count++;
        if (comma === -1) break;
        from = comma + 1;
      }
      if (count !== l.width) throw new RowError(line, null, `has ${count} columns, the header ${l.width}`);
      const field = (c: number) => text.slice(bounds[2 * c], bounds[2 * c + 1]);
      const rowSplit = l.split >= 0 ? split(field(l.split), line) : null;
      const target = kind === 'regression' ? fieldNumber(text, bounds[2 * l.y], bounds[2 * l.y + 1], line, l.names[l.y]) : label(field(l.label), line);
      const group = kind === 'classification' && l.task < 0 ? `class:${target}` : `task:${taskName(field(l.task), line)}`;
      add(group, rowSplit, target, (x, at) => {
        for (let d = 0; d < inputDim; d++) {
          const c = l.features[d];
          x[at + d] = fieldNumber(text, bounds[2 * c], bounds[2 * c + 1], line, l.names[c]);
        }
      });
      return;
    }
    const fields = csvFields(text, line);
    if (fields.length !== l.width) throw new RowError(line, null, `has ${fields.length} columns, the header ${l.width}`);
    const rowSplit = l.split >= 0 ? split(fields[l.split], line) : null;
    const target = kind === 'regression' ? number(fields[l.y], line, l.names[l.y]) : label(fields[l.label], line);
    const group = kind === 'classification' && l.task < 0 ? `class:${target}` : `task:${taskName(fields[l.task], line)}`;
    add(group, rowSplit, target, (x, at) => {
      for (let d = 0; d < inputDim; d++) x[at + d] = number(fields[l.features[d]], line, l.names[l.features[d]]);
    });
  };

  const ndjsonRow = (line: number, text: string) => {
    let row: unknown;
    try {
      row = JSON.parse(text);
    } catch {
      throw new RowError(line, null, 'is not a JSON value');
    }
    if (row === null || typeof row !== 'object' || Array.isArray(row)) throw new RowError(line, null, 'must be a JSON object');
    const r = row as Record<string, unknown>;
    const allowed = kind === 'regression' ? ['task', 'y', 'x', 'split'] : ['task', 'label', 'x', 'split'];
    for (const key of Object.keys(r)) if (!allowed.includes(key)) throw new RowError(line, key, `unknown key; expected ${allowed.join(', ')}`);
    keys ??= { task: 'task' in r, split: 'split' in r };
    for (const key of ['task', 'split'] as const) {
      if (keys[key] !== key in r) throw new RowError(line, key, `must be ${keys[key] ? 'on every row, as on the first' : 'on no row, as on the first'}`);
    }
    if (kind === 'regression' && !keys.task) throw new RowError(line, 'task', 'is required for regression rows');
    const x = r.x;
    if (!Array.isArray(x) || x.length !== inputDim) throw new RowError(line, 'x', `must be an array of inputDim (${inputDim}) numbers`);
    const target = kind === 'regression' ? number(r.y, line, 'y') : label(r.label, line);
    const group = kind === 'classification' && !keys.task ? `class:${target}` : `task:${taskName(r.task, line)}`;
    add(group, keys.split ? split(r.split, line) : null, target, (out, at) => {
      for (let d = 0; d < inputDim; d++) out[at + d] = number(x[d], line, `x[${d}]`);
    });
  };

  const visit = options.format === 'csv' ? csvRow : ndjsonRow;
  try {
    await eachLine(body, maxLineBytes(inputDim), (line, text) => {
      if (text.trim() !== '') visit(line, text);
    });
  } catch (error) {
    if (error instanceof LineTooLongError) throw new RowError(error.line, null, `is longer than ${error.maxBytes} bytes`);
    throw error;
  }
  if (options.format === 'csv' && layout === null) throw new RowError(1, null, 'the body is empty: a CSV part starts with a header row');
  if (rows === 0) throw new RowError(1, null, 'the part holds no rows');
  for (const run of runs.values()) if (run.n > 0) chunks.push(run.take());
  return { rows, chunks };
}
