/**
 * Conformal and calibration measures (issue 25 item 1), as pure functions on synthetic data: the
 * finite-sample quantile against its definition and its coverage over many draws, temperature
 * scaling recovering a known temperature, ECE by hand, AUROC against counting pairs, LAC sets.
 */

import { describe, expect, it } from 'vitest';
import { auroc, conformalQuantile, expectedCalibrationError, fitTemperature, predictionSet, sortScores, temperatureNll, temperatureScale } from '../../../src/meta/conformal.js';
import { Rng } from '../../../src/meta/rng.js';

function gaussian(rng: Rng): number {
  return Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
}

describe('conformalQuantile', () => {
  it('is the ceil((n + 1)(1 - alpha))-th smallest score, and Infinity when that rank exceeds n', () => {
    const scores = Array.from({ length: 19 }, (_, i) => i + 1);
    // (19 + 1) * 0.9 = 18: the 18th smallest.
    expect(conformalQuantile(scores, 0.9)).toBe(18);
    expect(conformalQuantile(scores, 0.5)).toBe(10);
    // (19 + 1) * 0.96 = 19.2 -> 20 > 19 scores: unbounded.
    expect(conformalQuantile(scores, 0.96)).toBe(Infinity);
    expect(conformalQuantile([], 0.5)).toBe(Infinity);
    expect(() => conformalQuantile(scores, 1)).toThrow(RangeError);
    expect(() => conformalQuantile(scores, 0)).toThrow(RangeError);
  });

  it('covers a new exchangeable score with probability at least the level (and not much more)', () => {
    const rng = new Rng(7);
    for (const [n, level] of [[20, 0.9], [100, 0.9], [50, 0.8]] as const) {
      let covered = 0;
      const trials = 4000;
      for (let t = 0; t < trials; t++) {
        const scores = sortScores(Array.from({ length: n }, () => Math.abs(gaussian(rng))));
        if (Math.abs(gaussian(rng)) <= conformalQuantile(scores, level)) covered++;
      }
      const rate = covered / trials;
      // Exactly ceil((n+1) level) / (n+1) in expectation; 4000 trials give a standard error ~0.005.
      const expected = Math.ceil((n + 1) * level) / (n + 1);
      expect(rate).toBeGreaterThan(expected - 0.02);
      expect(rate).toBeLessThan(expected + 0.02);
    }
  });

  it('sorts NaN scores last, as uncoverable', () => {
    expect(sortScores([3, NaN, 1])).toEqual([1, 3, Infinity]);
  });
});

describe('temperature scaling', () => {
  it('keeps probabilities at t = 1 and flattens them above 1', () => {
    expect(temperatureScale([0.7, 0.2, 0.1], 1)).toEqual([0.7, 0.2, 0.1]);
    const hot = temperatureScale([0.7, 0.2, 0.1], 2);
    // softmax(log p / 2) = sqrt(p) normalised.
    const roots = [0.7, 0.2, 0.1].map(Math.sqrt);
    const sum = roots.reduce((a, b) => a + b, 0);
    hot.forEach((p, i) => expect(p).toBeCloseTo(roots[i] / sum, 12));
  });

  it('recovers the temperature that made over-confident probabilities from calibrated ones', () => {
    // Labels drawn from calibrated probabilities; the model reports them sharpened by 1/2.5.
    const rng = new Rng(3);
    const probabilities: number[][] = [];
    const labels: number[] = [];
    for (let i = 0; i < 3000; i++) {
      const logits = Array.from({ length: 5 }, () => 1.5 * gaussian(rng));
      const e = logits.map(Math.exp);
      const sum = e.reduce((a, b) => a + b, 0);
      const p = e.map((v) => v / sum);
      let u = rng.next();
      let label = 0;
      while (label < 4 && u > p[label]) u -= p[label++];
      labels.push(label);
      probabilities.push(temperatureScale(p, 1 / 2.5));
    }
    const t = fitTemperature(probabilities, labels);
    expect(t).toBeGreaterThan(2.2);
    expect(t).toBeLessThan(2.8);
    expect(temperatureNll(probabilities, labels, t)).toBeLessThan(temperatureNll(probabilities, labels, 1));
    expect(expectedCalibrationError(probabilities.map((p) => temperatureScale(p, t)), labels)).toBeLessThan(expectedCalibrationError(probabilities, labels));
  });
});

describe('expectedCalibrationError', () => {
  it('weights each confidence bin by its share', () => {
    // Two predictions at confidence 0.9 (one right), two at 0.6 (both right): |0.9 - 0.5| / 2 + |0.6 - 1| / 2.
    const ece = expectedCalibrationError([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.4, 0.6]], [0, 0, 0, 1]);
    expect(ece).toBeCloseTo(0.2 + 0.2, 12);
    expect(expectedCalibrationError([[1, 0]], [0])).toBe(0);
  });
});

describe('auroc', () => {
  it('is the share of positive-negative pairs the score orders right, ties counting half', () => {
    const pos = [0.9, 0.4, 0.7, 0.4];
    const neg = [0.1, 0.4, 0.8];
    let pairs = 0;
    for (const p of pos) for (const n of neg) pairs += p > n ? 1 : p === n ? 0.5 : 0;
    expect(auroc(pos, neg)).toBeCloseTo(pairs / 12, 12);
    expect(auroc([2, 3], [0, 1])).toBe(1);
    expect(auroc([0], [1])).toBe(0);
    expect(auroc([], [1])).toBeNaN();
  });
});

describe('predictionSet', () => {
  it('holds every class with 1 - p <= q, and always the most probable', () => {
    expect(predictionSet([0.5, 0.3, 0.2], 0.75)).toEqual([0, 1]);
    expect(predictionSet([0.5, 0.3, 0.2], 0.8)).toEqual([0, 1, 2]);
    expect(predictionSet([0.5, 0.3, 0.2], 0.1)).toEqual([0]);
  });
});
