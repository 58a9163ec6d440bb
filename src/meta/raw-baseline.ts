/**
 * The trivial baseline `raw`: no meta-learning and no body, only one task's support set in input
 * space (an image is its flattened pixels). What a learned model must beat to be worth serving.
 * - classification: nearest class mean. A class is the mean of its support examples and a query takes
 *   the class of the nearest mean by Euclidean distance. Its probabilities are the softmax of minus
 *   the squared distances: ProtoNets with the identity for a body, which gives the cross-entropy
 *   every evaluation row reports.
 * - regression: ridge regression on the inputs with a free bias (linear-head's ridgeHead), the ridge
 *   chosen for each support set by generalised cross-validation on that support set alone.
 * Plain float64 arithmetic: no tensors, so the bench and the service compute the same numbers.
 */

import type { Prediction } from './adapt.js';
import { ridgeHead, ridgeLambdaByGcv, type LinearHead } from './linear-head.js';
import type { Examples, TaskKind } from './types.js';

/** The ridge regression of a support set's targets on its inputs, and the ridge GCV chose. */
export function rawRidge(support: Examples, inputDim: number): LinearHead & { lambda: number } {
  const { x, y, n } = support;
  const lambda = ridgeLambdaByGcv(x, y, n, inputDim);
  // Fitted on centred inputs (the same weights, the bias moved): raw inputs far from the origin
  // (a year, a price) would otherwise leave ridgeHead's bias equation badly conditioned.
  const mean = new Float64Array(inputDim);
  for (let i = 0; i < n; i++) for (let d = 0; d < inputDim; d++) mean[d] += x[i * inputDim + d] / n;
  const centred = Float64Array.from(x, (v, j) => v - mean[j % inputDim]);
  const { weight, bias } = ridgeHead(centred, y, n, inputDim, lambda);
  for (let d = 0; d < inputDim; d++) bias[0] -= mean[d] * weight[d];
  return { weight, bias, lambda };
}

/** The support set's class means, row-major [ways, inputDim]; NaN rows for classes it has no example of. */
function classMeans(support: Examples, inputDim: number, ways: number): Float64Array {
  const means = new Float64Array(ways * inputDim);
  const counts = new Array<number>(ways).fill(0);
  for (let i = 0; i < support.n; i++) {
    const label = support.y[i];
    counts[label]++;
    for (let d = 0; d < inputDim; d++) means[label * inputDim + d] += support.x[i * inputDim + d];
  }
  for (let c = 0; c < ways; c++) {
    for (let d = 0; d < inputDim; d++) means[c * inputDim + d] /= counts[c];
  }
  return means;
}

/**
 * Nearest class mean of `x` (row-major [n, inputDim]) among `support`'s classes 0..ways-1. Ties go
 * to the lower label; a class without support examples is never predicted (probability 0).
 */
export function nearestMeanPredict(support: Examples, x: Float32Array, inputDim: number, ways: number): Prediction {
  const means = classMeans(support, inputDim, ways);
  const n = x.length / inputDim;
  const labels: number[] = [];
  const probabilities: number[][] = [];
  for (let i = 0; i < n; i++) {
    const scores = Array.from({ length: ways }, (_, c) => {
      let distance = 0;
      for (let d = 0; d < inputDim; d++) distance += (x[i * inputDim + d] - means[c * inputDim + d]) ** 2;
      // NaN: a class with no mean; it must lose every comparison below.
      return Number.isNaN(distance) ? -Infinity : -distance;
    });
    const best = Math.max(...scores);
    labels.push(scores.indexOf(best));
    const exps = scores.map((s) => Math.exp(s - best));
    const sum = exps.reduce((a, e) => a + e, 0);
    probabilities.push(exps.map((e) => e / sum));
  }
  return { kind: 'classification', labels, probabilities };
}

/** Ridge regression (rawRidge) of `support` evaluated at `x` (row-major [n, inputDim]). */
export function ridgePredict(support: Examples, x: Float32Array, inputDim: number): Prediction {
  const { weight, bias } = rawRidge(support, inputDim);
  const values = Array.from({ length: x.length / inputDim }, (_, i) => {
    let value = bias[0];
    for (let d = 0; d < inputDim; d++) value += x[i * inputDim + d] * weight[d];
    return value;
  });
  return { kind: 'regression', values };
}

/**
 * The `raw` baseline fitted to `support` and run on `x`: nearest class mean for classification
 * (`ways` classes), ridge regression for regression.
 */
export function rawPredict(kind: TaskKind, support: Examples, x: Float32Array, inputDim: number, ways?: number): Prediction {
  if (kind === 'regression') return ridgePredict(support, x, inputDim);
  if (ways === undefined) throw new RangeError('the raw baseline of a classification task needs its number of ways');
  return nearestMeanPredict(support, x, inputDim, ways);
}
