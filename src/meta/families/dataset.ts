/**
 * A family of stored tasks (each a labelled set of examples), as clients upload them. An episode picks
 * one task of the split and splits its examples into support and query sets by sampling without
 * replacement. Classification episodes pick N classes present in the task and relabel them 0..N-1
 * in random order, so labels carry no meaning across episodes.
 *
 * Splits of JSON tasks: with 5 or more tasks every 5th task (index 4, 9, ...) is held out for 'val'
 * and 'test'; with fewer there is nothing to hold out, and 'val'/'test' reuse the training tasks.
 *
 * Uploaded families come packed ({@link PackedDataset}): every row of the family in one Float32Array,
 * each task a range of it with its own split. Tasks are views into that array, so building a family
 * and drawing episodes never copy the dataset (an episode copies only its own rows).
 */

import type { Rng } from '../rng.js';
import type { Episode, EpisodeShape, Examples, Split, TaskFamily, TaskKind, TaskPool } from '../types.js';
import { checkShape, classificationEpisode, EpisodeShapeError, resolveWays, sampleDistinct } from './episode.js';
import { FamilySpecError, isRecord, MAX_PARAM_MAGNITUDE } from './params.js';

/** A stored task as the API receives it: `x` is [n][inputDim], `y` is [n] (values or class labels). */
export interface StoredTask {
  x: number[][];
  y: number[];
}

export interface DatasetOptions {
  kind: TaskKind;
  inputDim: number;
  /** Classification: the default number of ways an episode draws. */
  ways?: number;
  /** Inputs are images of this [height, width, channels] (already checked against inputDim). */
  inputShape?: readonly [number, number, number];
  /** Default 'dataset'. */
  name?: string;
  /** Where the tasks sit in the caller's input, for error paths. Default 'tasks'. */
  path?: string;
}

/**
 * Rows of an uploaded family: `x` is rows x inputDim, `y` rows, and each task is `count` rows from
 * row `start`, in one split. With `classPool` the family is labelled examples of many classes rather
 * than tasks: all rows of a split form one pool from which an episode draws N classes (the tasks are
 * then the classes, each a contiguous range, and a split's classes must be adjacent).
 */
export interface PackedDataset {
  x: Float32Array;
  y: Float32Array;
  tasks: { split: Split; start: number; count: number }[];
  classPool?: boolean;
}

interface Task {
  x: Float32Array;
  y: Float32Array;
  n: number;
  /** Classification: example indices of each label, ordered by label. */
  classes: number[][];
}

function readTask(raw: unknown, path: string, kind: TaskKind, inputDim: number): Task {
  if (!isRecord(raw)) throw new FamilySpecError(path, 'must be an object with x and y');
  const { x: rows, y: labels } = raw;
  if (!Array.isArray(rows)) throw new FamilySpecError(`${path}.x`, 'must be an array of input rows');
  if (!Array.isArray(labels)) throw new FamilySpecError(`${path}.y`, 'must be an array');
  if (rows.length !== labels.length) {
    throw new FamilySpecError(`${path}.y`, `has ${labels.length} entries but x has ${rows.length} rows`);
  }
  if (rows.length < 2) throw new FamilySpecError(`${path}.x`, 'needs at least 2 examples (one support, one query)');
  const n = rows.length;
  const x = new Float32Array(n * inputDim);
  const y = new Float32Array(n);
  const byLabel = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const row: unknown = rows[i];
    if (!Array.isArray(row) || row.length !== inputDim) {
      throw new FamilySpecError(`${path}.x[${i}]`, `must be an array of inputDim (${inputDim}) numbers`);
    }
    for (let d = 0; d < inputDim; d++) {
      const v: unknown = row[d];
      if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > MAX_PARAM_MAGNITUDE) {
        throw new FamilySpecError(`${path}.x[${i}][${d}]`, `must be a finite number within ±${MAX_PARAM_MAGNITUDE}`);
      }
      x[i * inputDim + d] = v;
    }
    const label: unknown = labels[i];
    if (typeof label !== 'number' || !Number.isFinite(label) || Math.abs(label) > MAX_PARAM_MAGNITUDE) {
      throw new FamilySpecError(`${path}.y[${i}]`, `must be a finite number within ±${MAX_PARAM_MAGNITUDE}`);
    }
    if (kind === 'classification') {
      if (!Number.isInteger(label) || label < 0) throw new FamilySpecError(`${path}.y[${i}]`, 'must be a class label (integer >= 0)');
      const members = byLabel.get(label) ?? [];
      members.push(i);
      byLabel.set(label, members);
    }
    y[i] = label;
  }
  return { x, y, n, classes: classesOf(byLabel) };
}

function classesOf(byLabel: Map<number, number[]>): number[][] {
  return [...byLabel.entries()].sort((a, b) => a[0] - b[0]).map(([, members]) => members);
}

/** A task over rows [start, start + count) of a packed dataset: views, not copies. */
function packedTask(data: PackedDataset, inputDim: number, kind: TaskKind, start: number, count: number): Task {
  const x = data.x.subarray(start * inputDim, (start + count) * inputDim);
  const y = data.y.subarray(start, start + count);
  const byLabel = new Map<number, number[]>();
  if (kind === 'classification') {
    for (let i = 0; i < count; i++) {
      const members = byLabel.get(y[i]);
      if (members) members.push(i);
      else byLabel.set(y[i], [i]);
    }
  }
  return { x, y, n: count, classes: classesOf(byLabel) };
}

const SPLITS: readonly Split[] = ['train', 'val', 'test'];

/** A packed dataset's tasks by split (a class pool: one task per split, spanning its classes). */
function packedSplits(data: PackedDataset, inputDim: number, kind: TaskKind, path: string): Record<Split, Task[]> {
  if (data.x.length !== data.y.length * inputDim) throw new FamilySpecError(path, `holds ${data.x.length} inputs for ${data.y.length} rows of inputDim ${inputDim}`);
  const out: Record<Split, Task[]> = { train: [], val: [], test: [] };
  for (const split of SPLITS) {
    const ranges = data.tasks.filter((t) => t.split === split);
    for (const { start, count } of ranges) {
      if (!(start >= 0 && count >= 1 && start + count <= data.y.length)) throw new FamilySpecError(path, `task rows ${start}+${count} lie outside the ${data.y.length} rows`);
    }
    if (!data.classPool) {
      out[split] = ranges.map((t) => packedTask(data, inputDim, kind, t.start, t.count));
    } else if (ranges.length > 0) {
      const start = Math.min(...ranges.map((t) => t.start));
      const end = Math.max(...ranges.map((t) => t.start + t.count));
      const rows = ranges.reduce((sum, t) => sum + t.count, 0);
      if (end - start !== rows) throw new FamilySpecError(path, `the ${split} classes are not adjacent rows`);
      out[split] = [packedTask(data, inputDim, kind, start, rows)];
    }
  }
  return out;
}

export class DatasetFamily implements TaskFamily {
  readonly name: string;
  readonly kind: TaskKind;
  readonly inputDim: number;
  readonly inputShape?: readonly [number, number, number];
  readonly ways?: number;
  private readonly splits: Record<Split, Task[]>;
  /** Tasks able to serve a given episode size, per split: computed once per shape. */
  private readonly eligible = new Map<string, Task[]>();

  /** `tasks`: JSON tasks (StoredTask[], validated here) or a {@link PackedDataset}. */
  constructor(tasks: unknown, options: DatasetOptions) {
    const path = options.path ?? 'tasks';
    this.name = options.name ?? 'dataset';
    this.kind = options.kind;
    this.inputDim = options.inputDim;
    if (options.inputShape) this.inputShape = options.inputShape;
    if (options.kind === 'classification') this.ways = options.ways ?? 2;
    if (isPacked(tasks)) {
      this.splits = packedSplits(tasks, options.inputDim, options.kind, path);
    } else {
      if (!Array.isArray(tasks) || tasks.length === 0) throw new FamilySpecError(path, 'must be a non-empty array of tasks');
      const all = tasks.map((task, i) => readTask(task, `${path}[${i}]`, options.kind, options.inputDim));
      const heldOut = all.length >= 5 ? all.filter((_, i) => i % 5 === 4) : all;
      this.splits = { train: all.length >= 5 ? all.filter((_, i) => i % 5 !== 4) : all, val: heldOut, test: heldOut };
    }
    checkSplits(this.splits, this.ways, path);
  }

  /** The number of tasks in a split (for inspection and tests). */
  taskCount(split: Split): number {
    return this.splits[split].length;
  }

  sampleEpisode(rng: Rng, split: Split, shape: EpisodeShape): Episode {
    const { shots, queryShots } = checkShape(shape);
    const per = shots + queryShots;
    const source = this.splits[split];
    if (this.kind === 'regression') {
      const task = this.pick(rng, split, source, `r${per}`, (t) => t.n >= per, `${per} examples`);
      const idx = sampleDistinct(rng, task.n, per);
      return this.regressionSplit(task, idx, shots);
    }
    const maxWays = Math.max(...source.map((t) => t.classes.length));
    const ways = resolveWays(this, shape, maxWays);
    const enough = (t: Task) => t.classes.filter((c) => c.length >= per).length >= ways;
    const task = this.pick(rng, split, source, `c${ways}x${per}`, enough, `${ways} classes with ${per} examples each`);
    const usable = task.classes.filter((c) => c.length >= per);
    const chosen = sampleDistinct(rng, usable.length, ways).map((c) => {
      const members = usable[c];
      return sampleDistinct(rng, members.length, per).map((k) => members[k]);
    });
    const d = this.inputDim;
    return classificationEpisode(d, ways, shots, queryShots, (way, j, out, offset) => {
      const i = chosen[way][j];
      out.set(task.x.subarray(i * d, (i + 1) * d), offset);
    });
  }

  /**
   * The stored training tasks, whatever the size asked for; class labels index a task's own classes
   * (an uploaded class pool is one task over all its training classes: one softmax over them, as digits).
   */
  trainingPool(): TaskPool {
    const d = this.inputDim;
    const tasks = this.splits.train;
    const classification = this.kind === 'classification';
    return {
      outputs: tasks.map((t) => (classification ? t.classes.length : 1)),
      examples(t: number, rng: Rng, n: number): Examples {
        const task = tasks[t];
        const x = new Float32Array(n * d);
        const y = new Float32Array(n);
        for (let i = 0; i < n; i++) {
          let row: number;
          if (classification) {
            // A class uniformly, then one of its examples: labels are the class's rank in the task.
            const c = rng.int(task.classes.length);
            row = task.classes[c][rng.int(task.classes[c].length)];
            y[i] = c;
          } else {
            row = rng.int(task.n);
            y[i] = task.y[row];
          }
          x.set(task.x.subarray(row * d, (row + 1) * d), i * d);
        }
        return { x, y, n };
      },
    };
  }

  private pick(rng: Rng, split: Split, source: Task[], key: string, ok: (t: Task) => boolean, need: string): Task {
    const cacheKey = `${split}:${key}`;
    let list = this.eligible.get(cacheKey);
    if (!list) {
      list = source.filter(ok);
      this.eligible.set(cacheKey, list);
    }
    if (list.length === 0) throw new EpisodeShapeError(`family '${this.name}' has no ${split} task with ${need}`);
    return list[rng.int(list.length)];
  }

  private regressionSplit(task: Task, idx: number[], shots: number): Episode {
    const d = this.inputDim;
    const part = (rows: number[]) => {
      const x = new Float32Array(rows.length * d);
      const y = new Float32Array(rows.length);
      rows.forEach((i, r) => {
        x.set(task.x.subarray(i * d, (i + 1) * d), r * d);
        y[r] = task.y[i];
      });
      return { x, y, n: rows.length };
    };
    return { support: part(idx.slice(0, shots)), query: part(idx.slice(shots)) };
  }
}

/** The smallest episode (1 shot + 1 query, per class for classification) must be possible in every split. */
function checkSplits(splits: Record<Split, Task[]>, ways: number | undefined, path: string): void {
  for (const split of SPLITS) {
    const list = splits[split];
    if (ways === undefined) {
      if (!list.some((t) => t.n >= 2)) throw new FamilySpecError(path, `no ${split} task has at least 2 examples`);
    } else if (!list.some((t) => t.classes.filter((c) => c.length >= 2).length >= ways)) {
      throw new FamilySpecError(path, `no ${split} task has ${ways} classes with at least 2 examples each (needed for ${ways}-way episodes)`);
    }
  }
}

/**
 * Whether a packed dataset's targets alone make a usable family (its splits and, for classification,
 * its labels): the rule the constructor applies, for a caller that has not loaded the inputs (an
 * upload's commit checks a family too large to hold twice this way).
 * @throws FamilySpecError as `dataset()` would.
 */
export function checkPackedTargets(data: Omit<PackedDataset, 'x'>, options: { kind: TaskKind; ways?: number; path?: string }): void {
  const path = options.path ?? 'rows';
  const ways = options.kind === 'classification' ? options.ways ?? 2 : undefined;
  checkSplits(packedSplits({ ...data, x: new Float32Array(0) }, 0, options.kind, path), ways, path);
}

function isPacked(tasks: unknown): tasks is PackedDataset {
  return isRecord(tasks) && tasks.x instanceof Float32Array && tasks.y instanceof Float32Array && Array.isArray(tasks.tasks);
}

/**
 * A family over stored tasks (`StoredTask[]`, typed `unknown` because it usually comes from JSON);
 * validates them and throws FamilySpecError with the field path.
 */
export function dataset(tasks: unknown | PackedDataset, options: DatasetOptions): DatasetFamily {
  return new DatasetFamily(tasks, options);
}
