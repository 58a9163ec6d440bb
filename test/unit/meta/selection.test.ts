/**
 * The selection rule keepBest stores and studies rank by: a running best under `improves` is the
 * top of a plain sort of the same evaluations (accuracy descending then loss ascending for
 * classification, loss ascending for regression; the earliest of equals), and a non-finite
 * evaluation never becomes the best.
 */

import { describe, expect, it } from 'vitest';
import { Rng } from '../../../src/meta/rng.js';
import { improves, validationMetric, validationOf, type MetricsPoint } from '../../../src/meta/selection.js';
import type { TaskKind } from '../../../src/meta/types.js';

/** The best of `points` by folding `improves` over them in order, as metaTrain does. */
function runningBest(points: MetricsPoint[], kind: TaskKind): MetricsPoint | undefined {
  let best: MetricsPoint | undefined;
  for (const point of points) if (improves(point, best, kind)) best = point;
  return best;
}

/** The best by a stable sort of the finite points: what the rule says, written the plain way. */
function sortedBest(points: MetricsPoint[], kind: TaskKind): MetricsPoint | undefined {
  const finite = points.filter((p) => Number.isFinite(p.valLoss) && (kind === 'regression' || Number.isFinite(p.valAccuracy)));
  const key = (p: MetricsPoint) => (kind === 'classification' ? [-p.valAccuracy!, p.valLoss] : [p.valLoss]);
  return [...finite].sort((a, b) => {
    const [ka, kb] = [key(a), key(b)];
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i] - kb[i];
    return a.iteration - b.iteration;
  })[0];
}

/** Evaluations with coarse values (so ties happen), some of them NaN or infinite. */
function randomPoints(rng: Rng, n: number): MetricsPoint[] {
  return Array.from({ length: n }, (_, i) => {
    const u = rng.uniform(0, 1);
    const valLoss = u < 0.08 ? Number.NaN : u < 0.12 ? Number.POSITIVE_INFINITY : Math.round(rng.uniform(0, 8)) / 4;
    const v = rng.uniform(0, 1);
    const valAccuracy = v < 0.06 ? Number.NaN : Math.round(rng.uniform(0, 5)) / 5;
    return { iteration: (i + 1) * 10, trainLoss: 1, valLoss, valLossCi95: 0.1, valAccuracy, valAccuracyCi95: 0.05 };
  });
}

describe('improves', () => {
  it.each(['regression', 'classification'] as const)('%s: the running best over 200 random runs is the top of a plain sort', (kind) => {
    const rng = new Rng(23);
    for (let run = 0; run < 200; run++) {
      const points = randomPoints(rng, 1 + Math.floor(rng.uniform(0, 30)));
      expect(runningBest(points, kind)).toBe(sortedBest(points, kind));
    }
  });

  it('never takes a non-finite evaluation, even as the first', () => {
    const nan = { iteration: 1, trainLoss: 1, valLoss: Number.NaN };
    expect(improves(nan, undefined, 'regression')).toBe(false);
    expect(improves({ ...nan, valLoss: Number.POSITIVE_INFINITY }, undefined, 'regression')).toBe(false);
    expect(improves({ ...nan, valLoss: 1, valAccuracy: Number.NaN }, undefined, 'classification')).toBe(false);
    expect(improves({ ...nan, valLoss: Number.NaN, valAccuracy: 1 }, { iteration: 0, trainLoss: 1, valLoss: 2, valAccuracy: 0.2 }, 'classification')).toBe(false);
  });

  it('classification selects on accuracy even when the loss is worse; the loss breaks ties', () => {
    const best = { iteration: 10, trainLoss: 1, valLoss: 0.5, valAccuracy: 0.8 };
    expect(improves({ ...best, iteration: 20, valLoss: 0.9, valAccuracy: 0.82 }, best, 'classification')).toBe(true);
    expect(improves({ ...best, iteration: 20, valLoss: 0.4, valAccuracy: 0.8 }, best, 'classification')).toBe(true);
    expect(improves({ ...best, iteration: 20 }, best, 'classification')).toBe(false);
    expect(improves({ ...best, iteration: 20, valLoss: 0.1, valAccuracy: 0.78 }, best, 'classification')).toBe(false);
  });
});

describe('validationOf', () => {
  it('names the metric by kind, with the interval of that metric; null for a point recorded without intervals', () => {
    expect(validationMetric('classification')).toBe('accuracy');
    expect(validationMetric('regression')).toBe('loss');
    expect(validationOf({ iteration: 30, trainLoss: 1, valLoss: 0.5, valLossCi95: 0.1, valAccuracy: 0.8, valAccuracyCi95: 0.04 })).toEqual({ metric: 'accuracy', mean: 0.8, ci95: 0.04, iteration: 30 });
    expect(validationOf({ iteration: 30, trainLoss: 1, valLoss: 0.5, valLossCi95: 0.1 })).toEqual({ metric: 'loss', mean: 0.5, ci95: 0.1, iteration: 30 });
    expect(validationOf({ iteration: 30, trainLoss: 1, valLoss: 0.5 })).toBeNull();
  });
});
