/**
 * Sinusoid regression as in Finn et al. 2017 (MAML): y = A sin(x - phi) with amplitude A ~ U[0.1, 5],
 * phase phi ~ U[0, pi] and inputs x ~ U[-5, 5].
 */

import type { Rng } from '../rng.js';
import { GeneratedFamily, HELD_OUT_KEYS, readHeldOut, regressionEpisode, regressionExamples, type FamilyOptions, type HeldOutParams, type RegressionTask } from './generated.js';
import { numberParam, rangeParam, readParams } from './params.js';

export interface SinusoidParams extends HeldOutParams {
  /** Amplitude interval. Default [0.1, 5]. */
  amplitude: [number, number];
  /** Phase interval (radians). Default [0, pi]. */
  phase: [number, number];
  /** Input interval. Default [-5, 5]. */
  x: [number, number];
  /** Target noise standard deviation. Default 0. */
  noise: number;
}

const KEYS = ['amplitude', 'phase', 'x', 'noise', ...HELD_OUT_KEYS];

/** The sinusoid family (inputDim 1); parameters are validated at runtime (they may come from JSON). */
export function sinusoid(params: Partial<SinusoidParams> = {}, options: FamilyOptions = {}): GeneratedFamily<RegressionTask> {
  const path = options.path ?? 'params';
  const raw = readParams(params, path, KEYS);
  const amplitude = rangeParam(raw, 'amplitude', path, [0.1, 5]);
  const phase = rangeParam(raw, 'phase', path, [0, Math.PI]);
  const sampling = { inputDim: 1, x: rangeParam(raw, 'x', path, [-5, 5]), noise: numberParam(raw, 'noise', path, 0, { min: 0 }) };
  return new GeneratedFamily(
    options.name ?? 'sinusoid',
    {
      kind: 'regression',
      inputDim: 1,
      drawTask: (rng: Rng): RegressionTask => {
        const a = rng.uniform(amplitude[0], amplitude[1]);
        const phi = rng.uniform(phase[0], phase[1]);
        return { params: [a, phi], value: (x, i) => a * Math.sin(x[i] - phi) };
      },
      episode: (task, rng, shape) => regressionEpisode(task, rng, shape, sampling),
      outputs: 1,
      examples: (task, rng, n) => regressionExamples(task, rng, n, sampling),
    },
    readHeldOut(raw, path),
  );
}
