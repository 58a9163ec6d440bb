/**
 * The losses' first and second derivatives: cross-entropy is built from ops whose higher-order
 * gradients are exact; checked with Hessian-vector products against finite differences of the
 * gradient, and its value and gradient against tfjs' own softmaxCrossEntropy.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, tf } from '../../../src/meta/backend.js';
import { accuracy, crossEntropy, logSumExp, meanSquaredError, softmax } from '../../../src/meta/losses.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const logits = [
  [0.3, -1.2, 2.0, 0.1],
  [1.5, 0.2, -0.4, -2.2],
  [-0.7, 0.9, 0.05, 1.1],
];
const labels = [2, 0, 3];

function oneHot(): tf.Tensor {
  return tf.oneHot(tf.tensor1d(labels, 'int32'), 4).toFloat();
}

/** Hessian-vector product of f at x along v, and the central difference of the gradient. */
function hvpAndFd(f: (x: tf.Tensor) => tf.Scalar, x0: number[][], v: number[][], eps = 1e-2): { hvp: Float32Array; fd: Float32Array } {
  return tf.tidy(() => {
    const x = tf.tensor2d(x0);
    const dir = tf.tensor2d(v);
    const hvp = tf.grad((y: tf.Tensor) => tf.sum(tf.mul(tf.grad(f)(y), dir)))(x).dataSync() as Float32Array;
    const gp = tf.grad(f)(tf.add(x, tf.mul(dir, eps))).dataSync();
    const gm = tf.grad(f)(tf.sub(x, tf.mul(dir, eps))).dataSync();
    return { hvp, fd: Float32Array.from(gp, (g, i) => (g - gm[i]) / (2 * eps)) };
  });
}

function expectClose(actual: Float32Array, expected: Float32Array, rel: number): void {
  const scale = Math.max(...Array.from(expected, Math.abs));
  expect(scale).toBeGreaterThan(1e-3);
  actual.forEach((a, i) => expect(Math.abs(a - expected[i])).toBeLessThan(rel * scale));
}

const direction = [
  [0.5, -0.2, 0.8, 0.1],
  [-0.3, 0.7, 0.2, -0.6],
  [0.4, 0.1, -0.9, 0.3],
];

describe('cross-entropy', () => {
  it('equals tfjs softmaxCrossEntropy in value and gradient', () => {
    const [ours, theirs, gOurs, gTheirs] = tf.tidy(() => {
      const x = tf.tensor2d(logits);
      const y = oneHot();
      const mine = (z: tf.Tensor) => crossEntropy(z, y) as tf.Scalar;
      const ref = (z: tf.Tensor) => tf.losses.softmaxCrossEntropy(y, z) as tf.Scalar;
      return [mine(x).dataSync()[0], ref(x).dataSync()[0], tf.grad(mine)(x).dataSync(), tf.grad(ref)(x).dataSync()] as const;
    });
    expect(ours).toBeCloseTo(theirs, 5);
    expectClose(gOurs as Float32Array, gTheirs as Float32Array, 1e-5);
  });

  it('has the right Hessian (second-order gradients through logSumExp and softmax)', () => {
    const y = oneHot();
    const { hvp, fd } = hvpAndFd((z) => crossEntropy(z, y) as tf.Scalar, logits, direction);
    expectClose(hvp, fd, 1e-3);
    y.dispose();
  });

  it('the check detects the tfjs defect it guards against: a naive log(sum(exp)) Hessian is wrong', () => {
    const y = oneHot();
    const naive = (z: tf.Tensor) => tf.mean(tf.sub(tf.log(tf.sum(tf.exp(z), 1)), tf.sum(tf.mul(y, z), 1))) as tf.Scalar;
    const { hvp, fd } = hvpAndFd(naive, logits, direction);
    const scale = Math.max(...Array.from(fd, Math.abs));
    expect(Math.max(...Array.from(hvp, (h, i) => Math.abs(h - fd[i])))).toBeGreaterThan(0.1 * scale);
    y.dispose();
  });

  it('has the right third derivatives (gradient of a Hessian-vector product)', () => {
    const y = oneHot();
    const dir = tf.tensor2d(direction);
    // g(x) = <grad CE(x), v> has gradient H v; its own Hessian-vector product needs third derivatives.
    const g = (z: tf.Tensor) => tf.sum(tf.mul(tf.grad((w: tf.Tensor) => crossEntropy(w, y) as tf.Scalar)(z), dir)) as tf.Scalar;
    const { hvp, fd } = hvpAndFd(g, logits, direction);
    expectClose(hvp, fd, 2e-3);
    tf.dispose([y, dir]);
  });

  it('is stable for large logits (no overflow in exp)', () => {
    const [value, grad] = tf.tidy(() => {
      const x = tf.tensor2d([[1000, 0, -1000]]);
      const y = tf.tensor2d([[0, 1, 0]]);
      return [crossEntropy(x, y).dataSync()[0], tf.grad((z: tf.Tensor) => crossEntropy(z, y) as tf.Scalar)(x).dataSync()] as const;
    });
    expect(value).toBeCloseTo(1000, 3);
    expect(Array.from(grad)).toEqual([expect.closeTo(1, 5), expect.closeTo(-1, 5), expect.closeTo(0, 5)]);
  });

  it('is computed per task for [T, n, C] logits', () => {
    const perTask = tf.tidy(() => {
      const x = tf.stack([tf.tensor2d(logits), tf.mul(tf.tensor2d(logits), 2)]);
      const y = tf.stack([oneHot(), oneHot()]);
      return crossEntropy(x, y).arraySync() as number[];
    });
    const single = tf.tidy(() => [crossEntropy(tf.tensor2d(logits), oneHot()), crossEntropy(tf.mul(tf.tensor2d(logits), 2), oneHot())].map((t) => t.dataSync()[0]));
    expect(perTask[0]).toBeCloseTo(single[0], 6);
    expect(perTask[1]).toBeCloseTo(single[1], 6);
  });
});

describe('softmax, logSumExp, MSE, accuracy', () => {
  it('softmax rows sum to one and match tf.softmax; logSumExp matches tf.logSumExp', () => {
    const [p, ref, lse, lseRef] = tf.tidy(() => {
      const x = tf.tensor2d(logits);
      return [softmax(x).dataSync(), tf.softmax(x).dataSync(), logSumExp(x).dataSync(), tf.logSumExp(x, 1).dataSync()];
    });
    expectClose(p as Float32Array, ref as Float32Array, 1e-6);
    expectClose(lse as Float32Array, lseRef as Float32Array, 1e-6);
  });

  it('MSE has the right Hessian and is per task', () => {
    const target = tf.tensor2d([[0.5, -1, 2, 0], [1, 1, 1, 1], [0, 0, 0, 0]]);
    const { hvp, fd } = hvpAndFd((z) => meanSquaredError(tf.square(z), target) as tf.Scalar, logits, direction);
    expectClose(hvp, fd, 1e-3);
    const perTask = tf.tidy(() => meanSquaredError(tf.tensor3d([[[1], [3]], [[0], [0]]]), tf.tensor3d([[[0], [1]], [[0], [2]]])).arraySync());
    expect(perTask).toEqual([2.5, 2]);
    target.dispose();
  });

  it('accuracy counts arg-max hits per task', () => {
    // Rows' arg-max: 2, 0, 3; labels 2, 1, 3.
    const acc = tf.tidy(() => accuracy(tf.tensor3d([logits]), tf.stack([tf.oneHot(tf.tensor1d([2, 1, 3], 'int32'), 4).toFloat()])).arraySync());
    expect(acc).toEqual([expect.closeTo(2 / 3, 6)]);
  });
});
