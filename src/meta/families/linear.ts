/** Linear regression tasks: y = w . x + b with every slope w_i and the intercept b drawn per task. */

import type { Rng } from '../rng.js';
import { GeneratedFamily, HELD_OUT_KEYS, readHeldOut, regressionEpisode, regressionExamples, type FamilyOptions, type HeldOutParams, type RegressionTask } from './generated.js';
import { checkNumber, numberParam, rangeParam, readParams } from './params.js';

export interface LinearParams extends HeldOutParams {
  /** Interval of each slope component. Default [-3, 3]. */
  slope: [number, number];
  /** Intercept interval. Default [-3, 3]. */
  intercept: [number, number];
  /** Input interval (every dimension). Default [-5, 5]. */
  x: [number, number];
  /** Target noise standard deviation. Default 0. */
  noise: number;
}

const KEYS = ['slope', 'intercept', 'x', 'noise', ...HELD_OUT_KEYS];

/** Linear tasks in `inputDim` dimensions (default 1). */
export function linear(params: Partial<LinearParams> = {}, options: FamilyOptions & { inputDim?: number } = {}): GeneratedFamily<RegressionTask> {
  const path = options.path ?? 'params';
  const inputDim = checkNumber(options.inputDim ?? 1, 'inputDim', { min: 1, max: 4096, integer: true });
  const raw = readParams(params, path, KEYS);
  const slope = rangeParam(raw, 'slope', path, [-3, 3]);
  const intercept = rangeParam(raw, 'intercept', path, [-3, 3]);
  const sampling = { inputDim, x: rangeParam(raw, 'x', path, [-5, 5]), noise: numberParam(raw, 'noise', path, 0, { min: 0 }) };
  return new GeneratedFamily(
    options.name ?? 'linear',
    {
      kind: 'regression',
      inputDim,
      drawTask: (rng: Rng): RegressionTask => {
        const w = Array.from({ length: inputDim }, () => rng.uniform(slope[0], slope[1]));
        const b = rng.uniform(intercept[0], intercept[1]);
        return {
          params: [...w, b],
          value: (x, offset) => {
            let y = b;
            for (let d = 0; d < inputDim; d++) y += w[d] * x[offset + d];
            return y;
          },
        };
      },
      episode: (task, rng, shape) => regressionEpisode(task, rng, shape, sampling),
      outputs: 1,
      examples: (task, rng, n) => regressionExamples(task, rng, n, sampling),
    },
    readHeldOut(raw, path),
  );
}
