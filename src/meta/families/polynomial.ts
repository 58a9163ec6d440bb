/** Polynomial regression tasks: y = c_0 + c_1 x + ... + c_d x^d (d <= 3), coefficients drawn per task. */

import type { Rng } from '../rng.js';
import { GeneratedFamily, HELD_OUT_KEYS, readHeldOut, regressionEpisode, regressionExamples, type FamilyOptions, type HeldOutParams, type RegressionTask } from './generated.js';
import { numberParam, rangeParam, readParams } from './params.js';

export interface PolynomialParams extends HeldOutParams {
  /** Degree, 0 to 3. Default 3. */
  degree: number;
  /** Interval of every coefficient. Default [-1, 1]. */
  coefficient: [number, number];
  /** Input interval. Default [-2, 2]. */
  x: [number, number];
  /** Target noise standard deviation. Default 0. */
  noise: number;
}

const KEYS = ['degree', 'coefficient', 'x', 'noise', ...HELD_OUT_KEYS];

/** Polynomial tasks of one input (inputDim 1). */
export function polynomial(params: Partial<PolynomialParams> = {}, options: FamilyOptions = {}): GeneratedFamily<RegressionTask> {
  const path = options.path ?? 'params';
  const raw = readParams(params, path, KEYS);
  const degree = numberParam(raw, 'degree', path, 3, { min: 0, max: 3, integer: true });
  const coefficient = rangeParam(raw, 'coefficient', path, [-1, 1]);
  // |x| is capped so x^3 times a coefficient stays far inside float32.
  const sampling = {
    inputDim: 1,
    x: rangeParam(raw, 'x', path, [-2, 2], { min: -1000, max: 1000 }),
    noise: numberParam(raw, 'noise', path, 0, { min: 0 }),
  };
  return new GeneratedFamily(
    options.name ?? 'polynomial',
    {
      kind: 'regression',
      inputDim: 1,
      drawTask: (rng: Rng): RegressionTask => {
        const c = Array.from({ length: degree + 1 }, () => rng.uniform(coefficient[0], coefficient[1]));
        return {
          params: c,
          value: (x, i) => {
            let y = 0;
            for (let k = degree; k >= 0; k--) y = y * x[i] + c[k]; // Horner
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
