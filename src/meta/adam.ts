/**
 * The outer loop's optimiser: Adam (Kingma & Ba, 2015; PyTorch's formulation) with optional
 * global-norm gradient clipping.
 *
 * It runs on plain Float32Arrays rather than tensors, for two reasons. Its state (m, v, t) is then
 * exactly what a checkpoint stores, so a resumed run continues bit for bit. And at meta-learning
 * sizes an update is cheaper in a JS loop than as ~12 tensor ops per parameter: the per-op
 * overhead of tfjs dominates, and the meta-gradient has to be downloaded once anyway for the
 * non-finite check. Arithmetic is float64 per element, stored as float32: the same on every backend.
 *
 * A step is all or nothing: with a huge but finite meta-gradient (an outer step size far too large)
 * the second moment overflows float32 long before the loss does, and the parameters would then
 * freeze behind an infinite denominator. So each step writes into spare buffers, checks what it
 * wrote, and only then commits; a refused step changes nothing.
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
  /** Where a step writes before it commits; swapped with m and v on commit. */
  private readonly next: { m: ParamArrays; v: ParamArrays; w: ParamArrays };

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
    this.next = { m: zerosLike(params), v: zerosLike(params), w: zerosLike(params) };
  }

  /** Steps taken so far. */
  get steps(): number {
    return this.t;
  }

  /**
   * One update of `params` in place, with the gradients multiplied by `scale` (clipping).
   * @returns false, changing nothing (parameters, moments, step count), when a moment or a parameter
   *   would not be finite as float32 after the update.
   */
  step(params: ParamArrays, grads: Gradients, scale = 1): boolean {
    const t = this.t + 1;
    const { beta1, beta2, epsilon } = this;
    const stepSize = this.lr / (1 - beta1 ** t);
    const vCorrection = Math.sqrt(1 - beta2 ** t);
    // x * 0 is 0 for every finite x and NaN for an infinity or NaN: one branch-free sum checks all.
    let probe = 0;
    for (const [name, p] of Object.entries(params)) {
      const g = grads[name];
      if (!g || g.length !== p.data.length) throw new Error(`no gradient of the right size for parameter '${name}'`);
      const m = this.m[name].data;
      const v = this.v[name].data;
      const w = p.data;
      const m1 = this.next.m[name].data;
      const v1 = this.next.v[name].data;
      const w1 = this.next.w[name].data;
      for (let i = 0; i < w.length; i++) {
        const gi = g[i] * scale;
        // Rounded to float32 before use, as they are stored: a resumed run sees the same values.
        const mi = Math.fround(beta1 * m[i] + (1 - beta1) * gi);
        const vi = Math.fround(beta2 * v[i] + (1 - beta2) * gi * gi);
        const wi = Math.fround(w[i] - (stepSize * mi) / (Math.sqrt(vi) / vCorrection + epsilon));
        m1[i] = mi;
        v1[i] = vi;
        w1[i] = wi;
        probe += mi * 0 + vi * 0 + wi * 0;
      }
    }
    if (probe !== 0) return false;
    this.t = t;
    for (const [name, p] of Object.entries(params)) {
      [this.m[name].data, this.next.m[name].data] = [this.next.m[name].data, this.m[name].data];
      [this.v[name].data, this.next.v[name].data] = [this.next.v[name].data, this.v[name].data];
      p.data.set(this.next.w[name].data);
    }
    return true;
  }

  /** The state as plain data (copies). */
  getState(): AdamState {
    return { t: this.t, m: copy(this.m), v: copy(this.v) };
  }
}
