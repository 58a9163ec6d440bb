/**
 * Tensor ops the engine writes itself, with gradients that tfjs lacks or runs slowly, each written in
 * differentiable ops so that a second-order meta-gradient (MAML) can differentiate them again.
 */

import { tf } from './backend.js';

/** tfjs types the function as taking its inputs and a save callback in one rest parameter. */
export type CustomGradient = Parameters<typeof tf.customGrad>[0];

/**
 * a @ b for 2-D a and b, with a gradient that stays on the same path. The wasm backend runs only a
 * plain [m, k] x [k, n] product on XNNPACK; a transposed or batched one falls back to a loop that
 * is 5-10x slower at these sizes, and tfjs' own matMul gradient uses the transposed forms. So
 * transposes are made explicit (cheap copies) and every product, forward or backward, is a plain one.
 */
export const plainMatMul: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor = tf.customGrad(((a: tf.Tensor, b: tf.Tensor, save: (t: tf.Tensor[]) => void) => {
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, [sa, sb]: tf.Tensor[]) => [plainMatMul(dy, tf.transpose(sb)), plainMatMul(tf.transpose(sa), dy)],
  };
}) as unknown as CustomGradient) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor;

