/**
 * The `raw` baseline (issue 23 item 2): nearest class mean against a hand computation on 2-d points;
 * ridge regression against a direct solve of its normal equations, with the ridge that a brute-force
 * generalised cross-validation (explicit hat matrices) picks; and what a correct implementation must
 * do on whole families: near-perfect on well separated blobs and on linear tasks, poor on sinusoids
 * (a line cannot follow a sine).
 */

import { describe, expect, it } from 'vitest';
import { meanCi, queryScores } from '../../../src/meta/evaluation.js';
import { gaussianBlobs, linear, sinusoid } from '../../../src/meta/families/index.js';
import { GCV_RIDGE_MULTIPLES, ridgeLambdaByGcv } from '../../../src/meta/linear-head.js';
import { nearestMeanPredict, rawPredict, rawRidge } from '../../../src/meta/raw-baseline.js';
import { Rng } from '../../../src/meta/rng.js';
import type { Examples, TaskFamily } from '../../../src/meta/types.js';

const examples = (rows: number[][], y: number[]): Examples => ({ x: Float32Array.from(rows.flat()), y: Float32Array.from(y), n: rows.length });

/** Solves A x = b (A dense [m][m]) by Gaussian elimination with partial pivoting: independent of the engine's Cholesky. */
function solve(a: number[][], b: number[]): number[] {
  const m = b.length;
  const aug = a.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < m; c++) {
    const pivot = aug.slice(c).reduce((best, row, i) => (Math.abs(row[c]) > Math.abs(aug[best][c]) ? c + i : best), c);
    [aug[c], aug[pivot]] = [aug[pivot], aug[c]];
    for (let r = 0; r < m; r++) {
      if (r === c) continue;
      const f = aug[r][c] / aug[c][c];
      for (let k = c; k <= m; k++) aug[r][k] -= f * aug[c][k];
    }
  }
  return aug.map((row, i) => row[m] / row[i]);
}

/**
 * Ridge with a free bias straight from its definition: minimise mean((x.w + b - y)^2) + lambda |w|^2
 * over (w, b), i.e. (X~'X~ / n + lambda P) theta = X~'y / n with X~ = [X, 1] and P = diag(1..1, 0).
 * Also the hat matrix's trace and the residuals, for GCV.
 */
function directRidge(x: number[][], y: number[], lambda: number) {
  const n = x.length;
  const d = x[0].length;
  const xt = x.map((row) => [...row, 1]);
  const normal = Array.from({ length: d + 1 }, (_, p) => Array.from({ length: d + 1 }, (_, q) => xt.reduce((s, row) => s + row[p] * row[q], 0) / n + (p === q && p < d ? lambda : 0)));
  const theta = solve(normal, Array.from({ length: d + 1 }, (_, p) => xt.reduce((s, row, i) => s + row[p] * y[i], 0) / n));
  // H = X~ (normal)^-1 X~' / n: its diagonal one column at a time.
  let trace = 0;
  xt.forEach((row) => {
    const column = solve(normal, row.map((v) => v / n));
    trace += row.reduce((s, v, p) => s + v * column[p], 0);
  });
  const residuals = xt.map((row, i) => y[i] - row.reduce((s, v, p) => s + v * theta[p], 0));
  return { weight: theta.slice(0, d), bias: theta[d], trace, residuals };
}

describe('nearest class mean', () => {
  it('takes the class of the nearest support mean; probabilities are the softmax of minus the squared distances', () => {
    // Class 0's mean is (1, 0), class 1's (0, 5); class 2 has no support example.
    const support = examples([[0, 0], [2, 0], [0, 4], [0, 6]], [0, 0, 1, 1]);
    const query = examples([[1, 1], [0, 3], [0.5, 2.5]], [0, 1, 1]);
    const prediction = nearestMeanPredict(support, query.x, 2, 3);
    if (prediction.kind !== 'classification') throw new Error('expected classification');
    // (1, 1): squared distances 1 and 17; (0, 3): 10 and 4; (0.5, 2.5): 6.5 and 6.5, a tie to the lower label.
    expect(prediction.labels).toEqual([0, 1, 0]);
    const softmax = (d0: number, d1: number) => [1 / (1 + Math.exp(d0 - d1)), 1 / (1 + Math.exp(d1 - d0)), 0];
    [softmax(1, 17), softmax(10, 4), softmax(6.5, 6.5)].forEach((expected, i) => {
      expected.forEach((p, c) => expect(prediction.probabilities[i][c]).toBeCloseTo(p, 12));
    });
    // Scored as every evaluation row is: two right of three, cross-entropy of the true labels' probabilities.
    const scores = queryScores(prediction, query);
    expect(scores.accuracy).toBeCloseTo(2 / 3, 12);
    expect(scores.loss).toBeCloseTo(-(Math.log(softmax(1, 17)[0]) + Math.log(softmax(10, 4)[1]) + Math.log(0.5)) / 3, 10);
  });
});

describe('ridge regression on the raw inputs', () => {
  const rng = new Rng(3);
  const draw = (n: number, d: number, noise: number) => {
    const w = Array.from({ length: d }, () => rng.normal());
    const x = Array.from({ length: n }, () => Array.from({ length: d }, () => 2 * rng.normal() + 1));
    const y = x.map((row) => row.reduce((s, v, k) => s + v * w[k], 0.5) + noise * rng.normal());
    // Through float32, as examples are stored, so that the direct solve sees the same numbers.
    return { x: x.map((row) => row.map(Math.fround)), y: y.map(Math.fround) };
  };

  it.each([
    // More examples than inputs, noisy; and fewer examples than inputs (the fit lives in their span).
    [12, 2, 3],
    [4, 6, 10],
  ])('n=%i, d=%i: the fit solves its normal equations at the ridge brute-force GCV picks', (n, d, noise) => {
    const { x, y } = draw(n, d, noise);
    const support = examples(x, y);
    const fit = rawRidge(support, d);
    // GCV from explicit hat matrices over the same grid, relative to the mean squared distance from the mean input.
    const mean = Array.from({ length: d }, (_, k) => x.reduce((s, row) => s + row[k], 0) / n);
    const scale = x.reduce((s, row) => s + row.reduce((a, v, k) => a + (v - mean[k]) ** 2, 0), 0) / n;
    const gcv = GCV_RIDGE_MULTIPLES.map((multiple) => {
      const { trace, residuals } = directRidge(x, y, multiple * scale);
      return (n * residuals.reduce((s, r) => s + r * r, 0)) / (n - trace) ** 2;
    });
    const best = gcv.indexOf(Math.min(...gcv));
    expect(fit.lambda / scale).toBeCloseTo(GCV_RIDGE_MULTIPLES[best], 12);
    // Not an edge of the grid: the data, not the grid's bounds, chose it.
    expect(best).toBeGreaterThan(0);
    expect(best).toBeLessThan(GCV_RIDGE_MULTIPLES.length - 1);
    const direct = directRidge(x, y, fit.lambda);
    fit.weight.forEach((w, k) => expect(w).toBeCloseTo(direct.weight[k], 8));
    expect(fit.bias[0]).toBeCloseTo(direct.bias, 8);
    // And its predictions are that line.
    const query = examples([[1, ...new Array<number>(d - 1).fill(-2)]], [0]);
    const prediction = rawPredict('regression', support, query.x, d);
    expect(prediction.kind === 'regression' && prediction.values[0]).toBeCloseTo(direct.weight.reduce((s, w, k) => s + w * query.x[k], direct.bias), 6);
  });

  it('fits inputs far from the origin (a year, a price) as well as centred ones', () => {
    const support = examples([0, 1, 2, 3, 4, 5].map((k) => [1e5 + k]), [0, 1, 2, 3, 4, 5].map((k) => 2 * k + 1));
    const prediction = rawPredict('regression', support, Float32Array.of(1e5 + 10), 1);
    // The line is exact, so GCV takes the weakest ridge: 1e-6 of the spread shrinks the slope by 1e-6.
    expect(prediction.kind === 'regression' && prediction.values[0]).toBeCloseTo(21, 3);
  });

  it('with inputs that do not vary it predicts the mean of the support targets', () => {
    for (const support of [examples([[2, 3]], [4]), examples([[2, 3], [2, 3], [2, 3]], [1, 2, 6])]) {
      expect(ridgeLambdaByGcv(support.x, support.y, support.n, 2)).toBe(1);
      const prediction = rawPredict('regression', support, Float32Array.of(-5, 7), 2);
      expect(prediction.kind === 'regression' && prediction.values[0]).toBeCloseTo(support.y.reduce((a, b) => a + b, 0) / support.n, 10);
    }
  });
});

/** Mean over `tasks` test tasks of the raw baseline's query scores, and of each query set's variance of y. */
function rawOn(family: TaskFamily, shots: number, tasks: number, ways?: number) {
  const rng = new Rng(77);
  const scores = Array.from({ length: tasks }, () => {
    const { support, query } = family.sampleEpisode(rng, 'test', { shots, queryShots: 20, ways });
    const mean = query.y.reduce((a, b) => a + b, 0) / query.n;
    return { ...queryScores(rawPredict(family.kind, support, query.x, family.inputDim, ways), query), variance: query.y.reduce((a, v) => a + (v - mean) ** 2, 0) / query.n };
  });
  return {
    loss: meanCi(scores.map((s) => s.loss)).mean,
    accuracy: meanCi(scores.map((s) => s.accuracy ?? NaN)).mean,
    variance: meanCi(scores.map((s) => s.variance)).mean,
  };
}

describe('the raw baseline on whole families', () => {
  it('classifies well separated blobs almost perfectly from one shot, and overlapping ones far less well', () => {
    const separated = rawOn(gaussianBlobs({ meanScale: 10, spread: 0.5 }, { inputDim: 8, ways: 5 }), 1, 50, 5);
    expect(separated.accuracy).toBeGreaterThan(0.99);
    // The same classes drowned in noise: the labels are no longer in the inputs' means alone.
    const overlapping = rawOn(gaussianBlobs({ meanScale: 0.5, spread: 3 }, { inputDim: 8, ways: 5 }), 1, 50, 5);
    expect(overlapping.accuracy).toBeLessThan(0.5);
  });

  it('fits linear tasks almost exactly, and a sinusoid barely better than its mean', () => {
    const line = rawOn(linear({}, { inputDim: 3 }), 10, 50);
    expect(line.loss).toBeLessThan(1e-3 * line.variance);
    // Over x in [-5, 5] the best line explains about 5% of a sine's variance; 10 points fit it worse.
    const sine = rawOn(sinusoid(), 10, 100);
    expect(sine.loss).toBeGreaterThan(0.8 * sine.variance);
  });
});
