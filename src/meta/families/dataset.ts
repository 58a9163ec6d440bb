/**
 * A family of stored tasks (each a labelled set of examples), as clients upload them. An episode picks
 * one task of the split and splits its examples into support and query sets by sampling without
 * replacement. Classification episodes pick N classes present in the task and relabel them 0..N-1
 * in random order, so labels carry no meaning across episodes.
 *
 * Splits: with 5 or more tasks every 5th task (index 4, 9, ...) is held out for 'val' and 'test';
 * with fewer there is nothing to hold out, and 'val'/'test' reuse the training tasks.
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
  /** Default 'dataset'. */
  name?: string;
  /** Where the tasks sit in the caller's input, for error paths. Default 'tasks'. */
  path?: string;
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
  const classes = [...byLabel.entries()].sort((a, b) => a[0] - b[0]).map(([, members]) => members);
  return { x, y, n, classes };
}

export class DatasetFamily implements TaskFamily {
  readonly name: string;
  readonly kind: TaskKind;
  readonly inputDim: number;
  readonly ways?: number;
  private readonly train: Task[];
  private readonly heldOut: Task[];
  /** Tasks able to serve a given episode size, per split: computed once per shape. */
  private readonly eligible = new Map<string, Task[]>();

  constructor(tasks: unknown, options: DatasetOptions) {
    const path = options.path ?? 'tasks';
    this.name = options.name ?? 'dataset';
    this.kind = options.kind;
    this.inputDim = options.inputDim;
    if (options.kind === 'classification') this.ways = options.ways ?? 2;
    if (!Array.isArray(tasks) || tasks.length === 0) throw new FamilySpecError(path, 'must be a non-empty array of tasks');
    const all = tasks.map((task, i) => readTask(task, `${path}[${i}]`, options.kind, options.inputDim));
    const held = all.length >= 5 ? all.filter((_, i) => i % 5 === 4) : all;
    this.train = all.length >= 5 ? all.filter((_, i) => i % 5 !== 4) : all;
    this.heldOut = held;
    if (this.ways !== undefined) {
      // The smallest episode (1 shot + 1 query per class) must be possible in every split.
      for (const [split, list] of [['train', this.train], ['val', this.heldOut]] as const) {
        if (!list.some((t) => t.classes.filter((c) => c.length >= 2).length >= this.ways!)) {
          throw new FamilySpecError(path, `no ${split} task has ${this.ways} classes with at least 2 examples each (needed for ${this.ways}-way episodes)`);
        }
      }
    }
  }

  /** The number of tasks in a split (for inspection and tests). */
  taskCount(split: Split): number {
    return split === 'train' ? this.train.length : this.heldOut.length;
  }

  sampleEpisode(rng: Rng, split: Split, shape: EpisodeShape): Episode {
    const { shots, queryShots } = checkShape(shape);
    const per = shots + queryShots;
    const source = split === 'train' ? this.train : this.heldOut;
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

  /** The stored training tasks, whatever the size asked for; class labels index a task's own classes. */
  trainingPool(): TaskPool {
    const d = this.inputDim;
    const tasks = this.train;
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
    const cacheKey = `${split === 'train' ? 'train' : 'held'}:${key}`;
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

/**
 * A family over stored tasks (`StoredTask[]`, typed `unknown` because it usually comes from JSON);
 * validates them and throws FamilySpecError with the field path.
 */
export function dataset(tasks: unknown, options: DatasetOptions): DatasetFamily {
  return new DatasetFamily(tasks, options);
}
