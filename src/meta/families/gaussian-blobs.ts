/**
 * N-way classification of Gaussian blobs: a task draws one mean per class in `inputDim` dimensions,
 * and each example is its class mean plus isotropic Gaussian noise. Labels carry no meaning across
 * tasks, so only fast adaptation can solve a new task.
 */

import type { Rng } from '../rng.js';
import { checkShape, classificationEpisode, resolveWays, sampleDistinct } from './episode.js';
import { GeneratedFamily, HELD_OUT_KEYS, readHeldOut, type FamilyOptions, type HeldOutParams } from './generated.js';
import { checkNumber, numberParam, readParams } from './params.js';

export interface GaussianBlobsParams extends HeldOutParams {
  /** Standard deviation of the class means around the origin. Default 3. */
  meanScale: number;
  /** Standard deviation of the examples around their class mean. Default 1. */
  spread: number;
}

/** One task: `ways` class means, row-major [ways, inputDim]. */
export interface BlobsTask {
  means: Float32Array;
}

const KEYS = ['meanScale', 'spread', ...HELD_OUT_KEYS];

/** Gaussian blobs with `ways` classes (default 5) in `inputDim` dimensions (default 2). */
export function gaussianBlobs(
  params: Partial<GaussianBlobsParams> = {},
  options: FamilyOptions & { inputDim?: number; ways?: number } = {},
): GeneratedFamily<BlobsTask> {
  const path = options.path ?? 'params';
  const inputDim = checkNumber(options.inputDim ?? 2, 'inputDim', { min: 1, max: 4096, integer: true });
  const taskWays = checkNumber(options.ways ?? 5, 'nWay', { min: 2, max: 1000, integer: true });
  const raw = readParams(params, path, KEYS);
  const meanScale = numberParam(raw, 'meanScale', path, 3, { min: 0, max: 1000 });
  const spread = numberParam(raw, 'spread', path, 1, { min: 0, max: 1000 });
  const family = new GeneratedFamily<BlobsTask>(
    options.name ?? 'gaussian-blobs',
    {
      kind: 'classification',
      inputDim,
      ways: taskWays,
      drawTask: (rng: Rng) => ({ means: Float32Array.from({ length: taskWays * inputDim }, () => meanScale * rng.normal()) }),
      episode: (task, rng, shape) => {
        const { shots, queryShots } = checkShape(shape);
        const ways = resolveWays(family, shape, taskWays);
        // An episode with fewer ways than the task has uses a random subset of its classes.
        const classes = sampleDistinct(rng, taskWays, ways);
        return classificationEpisode(inputDim, ways, shots, queryShots, (way, _j, out, offset) => {
          const mean = classes[way] * inputDim;
          for (let d = 0; d < inputDim; d++) out[offset + d] = task.means[mean + d] + spread * rng.normal();
        });
      },
      outputs: taskWays,
      examples: (task, rng, n) => {
        const x = new Float32Array(n * inputDim);
        const y = new Float32Array(n);
        for (let i = 0; i < n; i++) {
          const c = rng.int(taskWays);
          y[i] = c;
          for (let d = 0; d < inputDim; d++) x[i * inputDim + d] = task.means[c * inputDim + d] + spread * rng.normal();
        }
        return { x, y, n };
      },
    },
    readHeldOut(raw, path),
  );
  return family;
}
