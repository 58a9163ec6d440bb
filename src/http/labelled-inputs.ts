/**
 * Labelled examples as requests send them (a support set, appended examples): checked against the
 * task (row width, finite values, a label the task has: an index, or one of its names) and packed
 * as float32, the class index standing for a label. The first bad value answers 400 naming its
 * field and index, and nothing of the request is used.
 */
import type { SupportArrays } from '../db/repositories/adaptations.js';
import type { AdaptTarget } from '../db/repositories/tasks.js';
import { isFiniteFloat32 } from '../util/numbers.js';
import { invalidField } from './schemas/common.js';

/** A label as a request gives it: a class index, or (for a task with names) a class name. */
export type LabelInput = number | string;

/** The class index of `value` for the task, or the 400 naming `path`. */
export function labelIndex(target: Pick<AdaptTarget, 'nWay' | 'labels'>, value: LabelInput, path: string): number {
  const ways = target.nWay ?? 0;
  if (typeof value === 'string') {
    const index = target.labels.indexOf(value);
    if (index >= 0) return index;
    const known = target.labels.length === 0 ? 'the task has no label names (give an index)' : `the task's labels are ${JSON.stringify(target.labels).slice(0, 300)}`;
    throw invalidField(path, `is not a label of the task (${JSON.stringify(value.slice(0, 60))}): ${known}`);
  }
  if (!Number.isInteger(value) || value < 0 || value >= ways) {
    throw invalidField(path, `must be a class label, an integer 0..${ways - 1} (the task is ${ways}-way)${target.labels.length > 0 ? ' or one of its label names' : ''}`);
  }
  return value;
}

/** Checks `x` and `y` (fields under `base`, e.g. `/support`) against the task and packs them. */
export function readLabelledSet(target: AdaptTarget, set: { x: number[][]; y: LabelInput[] }, base = ''): SupportArrays {
  const n = set.x.length;
  const d = target.inputDim;
  if (set.y.length !== n) throw invalidField(`${base}/y`, `has ${set.y.length} values but ${base.slice(1) || 'the body'}'s x has ${n} rows; give one target per row`);
  const x = new Float32Array(n * d);
  set.x.forEach((row, i) => {
    if (row.length !== d) throw invalidField(`${base}/x/${i}`, `has ${row.length} values; the task's inputDim is ${d}`);
    row.forEach((v, j) => {
      if (!isFiniteFloat32(v)) throw invalidField(`${base}/x/${i}/${j}`, 'must be a finite number within float32 range');
      x[i * d + j] = v;
    });
  });
  const y = new Float32Array(n);
  set.y.forEach((v, i) => {
    const path = `${base}/y/${i}`;
    if (target.kind === 'classification') y[i] = labelIndex(target, v, path);
    else if (typeof v !== 'number' || !isFiniteFloat32(v)) throw invalidField(path, 'must be a finite number within float32 range (the task is a regression)');
    else y[i] = v;
  });
  return { n, x, y };
}

/**
 * Label names for a new task: only for classification, one per class, distinct. Returns the 400
 * naming the field, or null when they fit.
 */
export function labelNamesProblem(labels: readonly string[], model: { kind: string; nWay: number | null }) {
  if (model.kind !== 'classification') return invalidField('/labels', 'are for classification tasks; the meta-model is a regression');
  if (labels.length !== model.nWay) return invalidField('/labels', `has ${labels.length} names but the meta-model is ${model.nWay}-way; name every class, in index order`);
  const seen = new Set<string>();
  for (const [i, name] of labels.entries()) {
    if (seen.has(name)) return invalidField(`/labels/${i}`, `repeats ${JSON.stringify(name)}; names must be distinct`);
    seen.add(name);
  }
  return null;
}
