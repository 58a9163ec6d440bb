/** Packs a meta-batch of episodes into the task-major arrays the engine turns into tensors at once. */

import type { Episode, EpisodeBatch } from '../types.js';

/**
 * Concatenates episodes task-major: support.x becomes [tasks, supportSize, inputDim] and so on.
 * Throws if the episodes differ in support size, query size or inputDim (a batch is one tensor).
 */
export function packEpisodes(episodes: readonly Episode[]): EpisodeBatch {
  if (episodes.length === 0) throw new Error('packEpisodes needs at least one episode');
  const { support, query } = episodes[0];
  if (support.n < 1 || query.n < 1) throw new Error('episodes need at least one support and one query example');
  const inputDim = support.x.length / support.n;
  if (!Number.isInteger(inputDim)) throw new Error(`episode 0 support.x has ${support.x.length} values, not a multiple of n=${support.n}`);
  const batch: EpisodeBatch = {
    tasks: episodes.length,
    inputDim,
    supportSize: support.n,
    querySize: query.n,
    support: { x: new Float32Array(episodes.length * support.n * inputDim), y: new Float32Array(episodes.length * support.n) },
    query: { x: new Float32Array(episodes.length * query.n * inputDim), y: new Float32Array(episodes.length * query.n) },
  };
  episodes.forEach((episode, t) => {
    for (const [part, size] of [['support', batch.supportSize], ['query', batch.querySize]] as const) {
      const ex = episode[part];
      if (ex.n !== size || ex.x.length !== size * inputDim || ex.y.length !== size) {
        throw new Error(
          `episode ${t} has ${part} n=${ex.n}, x=${ex.x.length}, y=${ex.y.length}; expected n=${size}, x=${size * inputDim}, y=${size} like episode 0`,
        );
      }
      batch[part].x.set(ex.x, t * size * inputDim);
      batch[part].y.set(ex.y, t * size);
    }
  });
  return batch;
}
