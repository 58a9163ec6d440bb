/** Minibatches of a task pool (multitask's training data), packed like a meta-batch: task-major. */

import type { Rng } from '../rng.js';
import type { PoolBatch, TaskPool } from '../types.js';

/**
 * `tasks` pool tasks drawn uniformly with replacement, `n` examples each.
 * @throws RangeError for an empty pool or examples whose size does not fit `inputDim`.
 */
export function samplePoolBatch(pool: TaskPool, rng: Rng, tasks: number, n: number, inputDim: number): PoolBatch {
  const size = pool.outputs.length;
  if (size === 0) throw new RangeError('the task pool is empty');
  const batch: PoolBatch = { tasks, inputDim, n, taskIds: new Int32Array(tasks), outputs: new Int32Array(tasks), x: new Float32Array(tasks * n * inputDim), y: new Float32Array(tasks * n) };
  for (let t = 0; t < tasks; t++) {
    const id = rng.int(size);
    const ex = pool.examples(id, rng, n);
    if (ex.n !== n || ex.x.length !== n * inputDim || ex.y.length !== n) throw new RangeError(`pool task ${id} gave ${ex.n} examples of ${ex.x.length / Math.max(1, ex.n)} inputs, expected ${n} of ${inputDim}`);
    batch.taskIds[t] = id;
    batch.outputs[t] = pool.outputs[id];
    batch.x.set(ex.x, t * n * inputDim);
    batch.y.set(ex.y, t * n);
  }
  return batch;
}

/** Task `t` of a pool minibatch as a minibatch of one (for the per-task loop mode). */
export function slicePoolBatch(batch: PoolBatch, t: number): PoolBatch {
  const { n, inputDim: d } = batch;
  return { tasks: 1, inputDim: d, n, taskIds: batch.taskIds.subarray(t, t + 1), outputs: batch.outputs.subarray(t, t + 1), x: batch.x.subarray(t * n * d, (t + 1) * n * d), y: batch.y.subarray(t * n, (t + 1) * n) };
}
