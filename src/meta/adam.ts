/**
 * The outer loop's optimiser: Adam (Kingma & Ba, 2015) on named tensors, with optional global-norm
 * gradient clipping. Written here rather than taken from tf.train so that its whole state (m, v, t)
 * is plain data a checkpoint can hold and a resumed run restores bit for bit.
 */

import { tf } from './backend.js';
import { toArrays, toTensors, type NamedTensors, type ParamArrays } from './model.js';

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

/** sqrt of the sum of squares of every gradient entry, as a scalar tensor. */
export function globalNorm(grads: NamedTensors): tf.Scalar {
  return tf.tidy(() => tf.sqrt(tf.addN(Object.values(grads).map((g) => tf.sum(tf.square(g))))) as tf.Scalar);
}

/** Scales all gradients by min(1, maxNorm / norm) (norm as computed by globalNorm). */
export function clipByGlobalNorm(grads: NamedTensors, norm: tf.Scalar, maxNorm: number): NamedTensors {
  return tf.tidy(() => {
    const limit = tf.scalar(maxNorm);
    const scale = tf.div(limit, tf.maximum(norm, limit));
    return Object.fromEntries(Object.entries(grads).map(([name, g]) => [name, tf.mul(g, scale)]));
  });
}

export class Adam {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  private t: number;
  private m: NamedTensors;
  private v: NamedTensors;

  /** A fresh optimiser for parameters of these shapes, or one continuing from a saved state. */
  constructor(options: AdamOptions, params: ParamArrays, state?: AdamState) {
    this.lr = options.lr;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.epsilon = options.epsilon ?? 1e-8;
    if (state) {
      for (const name of Object.keys(params)) {
        if (!state.m[name] || !state.v[name]) throw new Error(`optimizer state has no moments for parameter '${name}'`);
      }
      this.t = state.t;
      this.m = tf.tidy(() => toTensors(state.m));
      this.v = tf.tidy(() => toTensors(state.v));
    } else {
      this.t = 0;
      this.m = tf.tidy(() => Object.fromEntries(Object.entries(params).map(([n, p]) => [n, tf.zeros(p.shape)])));
      this.v = tf.tidy(() => Object.fromEntries(Object.entries(params).map(([n, p]) => [n, tf.zeros(p.shape)])));
    }
  }

  /** Steps taken so far. */
  get steps(): number {
    return this.t;
  }

  /**
   * One Adam update (PyTorch's formulation). Returns new parameter tensors (kept: the caller owns
   * them and disposes the old ones); the moment estimates are replaced internally.
   */
  step(params: NamedTensors, grads: NamedTensors): NamedTensors {
    const t = this.t + 1;
    const { beta1, beta2 } = this;
    const next = tf.tidy(() => {
      const b1 = tf.scalar(beta1);
      const b2 = tf.scalar(beta2);
      const c1 = tf.scalar(1 - beta1);
      const c2 = tf.scalar(1 - beta2);
      const stepSize = tf.scalar(this.lr / (1 - beta1 ** t));
      const vCorrection = tf.scalar(Math.sqrt(1 - beta2 ** t));
      const eps = tf.scalar(this.epsilon);
      const out: Record<string, NamedTensors> = { params: {}, m: {}, v: {} };
      for (const [name, p] of Object.entries(params)) {
        const g = grads[name];
        if (!g) throw new Error(`no gradient for parameter '${name}'`);
        const m = tf.add(tf.mul(b1, this.m[name]), tf.mul(c1, g));
        const v = tf.add(tf.mul(b2, this.v[name]), tf.mul(c2, tf.square(g)));
        const denom = tf.add(tf.div(tf.sqrt(v), vCorrection), eps);
        out.params[name] = tf.sub(p, tf.mul(stepSize, tf.div(m, denom)));
        out.m[name] = m;
        out.v[name] = v;
      }
      return out;
    });
    tf.dispose([this.m, this.v]);
    // Kept so that a step taken inside a caller's tf.tidy survives it.
    for (const group of [next.params, next.m, next.v]) Object.values(group).forEach((x) => tf.keep(x));
    this.m = next.m;
    this.v = next.v;
    this.t = t;
    return next.params;
  }

  /** The state as plain data (copies). */
  getState(): AdamState {
    return { t: this.t, m: toArrays(this.m), v: toArrays(this.v) };
  }

  dispose(): void {
    tf.dispose([this.m, this.v]);
  }
}
