/**
 * The outer loop's optimiser: Adam (Kingma & Ba, 2015; PyTorch's formulation) with optional
 * global-norm gradient clipping.
 *
 * It runs on plain Float32Arrays rather than tensors, for two reasons. Its state (m, v, t) is then
 * exactly what a checkpoint stores, so a resumed run continues bit for bit. And at meta-learning
 * sizes an update is cheaper in a JS loop than as ~12 tensor ops per parameter: the per-op
 * overhead of tfjs dominates, and the meta-gradient has to be downloaded once anyway for the
 * non-finite check. Arithmetic is float64 per element, stored as float32: the same on every backend.
 */

import type { ParamArrays } from './model.js';

export interface AdamOptions {
  /** Step size (the meta learning rate). */
  lr: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  epsilon?: number;
}

/** Adam's state as plain data: step count and first/second moment estimates per parameter. */
export interface AdamState {
  t: number;
  m: ParamArrays;
  v: ParamArrays;
}

/** Gradients by parameter name, laid out like the parameters' data. */
export type Gradients = Record<string, Float32Array>;

/** sqrt of the sum of squares of every gradient entry (NaN or Infinity if any entry is). */
export function globalNorm(grads: Gradients): number {
  let sum = 0;
  for (const g of Object.values(grads)) for (let i = 0; i < g.length; i++) sum += g[i] * g[i];
  return Math.sqrt(sum);
}

/** The factor that brings a gradient of norm `norm` within `maxNorm` (1 when no clipping is needed). */
export function clipScale(norm: number, maxNorm?: number): number {
  return maxNorm === undefined || norm <= maxNorm ? 1 : maxNorm / norm;
}

function zerosLike(params: ParamArrays): ParamArrays {
  return Object.fromEntries(Object.entries(params).map(([n, p]) => [n, { shape: [...p.shape], data: new Float32Array(p.data.length) }]));
}

function copy(params: ParamArrays): ParamArrays {
  return Object.fromEntries(Object.entries(params).map(([n, p]) => [n, { shape: [...p.shape], data: Float32Array.from(p.data) }]));
}

export class Adam {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  private t: number;
  private readonly m: ParamArrays;
  private readonly v: ParamArrays;

  /** A fresh optimiser for parameters of these shapes, or one continuing from a saved state. */
  constructor(options: AdamOptions, params: ParamArrays, state?: AdamState) {
    this.lr = options.lr;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-8;
    if (state) {
      for (const [name, p] of Object.entries(params)) {
        for (const moments of [state.m, state.v]) {
          if (moments[name]?.data.length !== p.data.length) throw new Error(`optimizer state does not match parameter '${name}'`);
        }
      }
      this.t = state.t;
      this.m = copy(state.m);
      this.v = copy(state.v);
    } else {
      this.t = 0;
      this.m = zerosLike(params);
      this.v = zerosLike(params);
    }
  }

  /** Steps taken so far. */
  get steps(): number {
    return this.t;
  }

  /** One update of `params` in place, with the gradients multiplied by `scale` (clipping). */
  step(params: ParamArrays, grads: Gradients, scale = 1): void {
    this.t += 1;
    const { beta1, beta2, epsilon } = this;
    const stepSize = this.lr / (1 - beta1 ** this.t);
    const vCorrection = Math.sqrt(1 - beta2 ** this.t);
    for (const [name, p] of Object.entries(params)) {
      const g = grads[name];
      if (!g || g.length !== p.data.length) throw new Error(`no gradient of the right size for parameter '${name}'`);
      const m = this.m[name].data;
      const v = this.v[name].data;
      const w = p.data;
      for (let i = 0; i < w.length; i++) {
        const gi = g[i] * scale;
        m[i] = beta1 * m[i] + (1 - beta1) * gi;
        v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
        w[i] = w[i] - (stepSize * m[i]) / (Math.sqrt(v[i]) / vCorrection + epsilon);
      }
    }
  }

  /** The state as plain data (copies). */
  getState(): AdamState {
    return { t: this.t, m: copy(this.m), v: copy(this.v) };
  }
}
