/**
 * The one place where episodes (plain typed arrays) become tensors. Targets are shaped for the loss:
 * regression values as [T, n, 1], class labels as one-hot [T, n, C] (built on the CPU so the upload
 * is the whole conversion and no integer ops reach the tape).
 */

import { tf } from './backend.js';
import type { ModelSpec } from './model.js';
import type { EpisodeBatch, Examples } from './types.js';

/** Inputs [T, n, inputDim] and targets [T, n, 1] (regression) or one-hot [T, n, C]. */
export interface TaskTensors {
  x: tf.Tensor3D;
  y: tf.Tensor3D;
}

/** A meta-batch on the device. */
export interface BatchTensors {
  tasks: number;
  support: TaskTensors;
  query: TaskTensors;
}

/** Targets in the loss's layout: values as they are, or labels as one-hot rows of `ways` (default the model's). */
export function encodeTargets(spec: ModelSpec, y: Float32Array, ways = spec.outputDim): Float32Array {
  if (spec.kind === 'regression') return y;
  const oneHot = new Float32Array(y.length * ways);
  for (let i = 0; i < y.length; i++) {
    const label = y[i];
    if (!Number.isInteger(label) || label < 0 || label >= ways) {
      throw new RangeError(`class label ${label} at example ${i} is not an integer in [0, ${ways})`);
    }
    oneHot[i * ways + label] = 1;
  }
  return oneHot;
}

function checkInputs(x: Float32Array, expected: number, what: string): void {
  if (x.length !== expected) throw new RangeError(`${what} has ${x.length} values, expected ${expected}`);
}

function upload(spec: ModelSpec, tasks: number, n: number, x: Float32Array, y: Float32Array, what: string): TaskTensors {
  checkInputs(x, tasks * n * spec.inputDim, `${what}.x`);
  checkInputs(y, tasks * n, `${what}.y`);
  return {
    x: tf.tensor3d(x, [tasks, n, spec.inputDim]),
    y: tf.tensor3d(encodeTargets(spec, y), [tasks, n, spec.outputDim]),
  };
}

/** Uploads a packed meta-batch. */
export function batchToTensors(spec: ModelSpec, batch: EpisodeBatch): BatchTensors {
  if (batch.inputDim !== spec.inputDim) throw new RangeError(`episodes have inputDim ${batch.inputDim}, the model expects ${spec.inputDim}`);
  return {
    tasks: batch.tasks,
    support: upload(spec, batch.tasks, batch.supportSize, batch.support.x, batch.support.y, 'support'),
    query: upload(spec, batch.tasks, batch.querySize, batch.query.x, batch.query.y, 'query'),
  };
}

/**
 * Uploads several tasks' labelled examples, each of the same size `n`, as one meta-batch: inputs
 * [T, n, inputDim], targets [T, n, 1] or one-hot [T, n, C] (e.g. support sets adapted together).
 */
export function examplesToTensors(spec: ModelSpec, sets: readonly Examples[], what = 'examples'): TaskTensors {
  const { x, y } = packExamples(spec, sets, what);
  return upload(spec, sets.length, sets[0].n, x, y, what);
}

/** Labelled sets of equal size packed task-major, as plain arrays: inputs [T, n, inputDim], labels or values [T, n]. */
export function packExamples(spec: ModelSpec, sets: readonly Examples[], what = 'examples'): { x: Float32Array; y: Float32Array } {
  const { n } = sets[0];
  const d = spec.inputDim;
  const x = new Float32Array(sets.length * n * d);
  const y = new Float32Array(sets.length * n);
  sets.forEach((set, t) => {
    checkInputs(set.x, n * d, `${what}.x`);
    checkInputs(set.y, n, `${what}.y`);
    x.set(set.x, t * n * d);
    y.set(set.y, t * n);
  });
  return { x, y };
}

/** Task `t` of a packed meta-batch as a meta-batch of one (for the per-task loop mode). */
export function sliceEpisodeBatch(batch: EpisodeBatch, t: number, tasks = 1): EpisodeBatch {
  const { inputDim: d, supportSize: s, querySize: q } = batch;
  const end = t + tasks;
  return {
    tasks,
    inputDim: d,
    supportSize: s,
    querySize: q,
    support: { x: batch.support.x.subarray(t * s * d, end * s * d), y: batch.support.y.subarray(t * s, end * s) },
    query: { x: batch.query.x.subarray(t * q * d, end * q * d), y: batch.query.y.subarray(t * q, end * q) },
  };
}
