/**
 * Which validation evaluation of a meta-training run is the best: the one `hyper.keepBest` stores
 * and a study ranks trials by. The direction is fixed once per task kind: classification selects on
 * mean validation accuracy (what a user of a classifier reads; the loss breaks ties, which are
 * common once accuracy saturates), regression on mean validation loss (MSE). Every evaluation of a
 * run measures the same validation tasks (drawn once per job), so two evaluations differ by the
 * meta-parameters alone, not by which tasks were drawn.
 */

import type { TaskKind } from './types.js';

/** One evaluation of a run: mean training loss since the previous one and post-adaptation validation scores. */
export interface MetricsPoint {
  iteration: number;
  trainLoss: number;
  /** Mean query loss over the validation tasks. */
  valLoss: number;
  /** Half-width of the 95% confidence interval of valLoss over the validation tasks (absent in points recorded before it was). */
  valLossCi95?: number;
  /** Mean query accuracy over the validation tasks (classification only). */
  valAccuracy?: number;
  /** Half-width of the 95% confidence interval of valAccuracy. */
  valAccuracyCi95?: number;
}

/** What a run is selected on. */
export const VALIDATION_METRICS = ['accuracy', 'loss'] as const;
export type ValidationMetric = (typeof VALIDATION_METRICS)[number];

/** A run's standing on validation: the selected metric at one evaluation, with its interval. */
export interface Validation {
  metric: ValidationMetric;
  mean: number;
  ci95: number;
  iteration: number;
}

/** The metric runs of `kind` are selected on. */
export function validationMetric(kind: TaskKind): ValidationMetric {
  return kind === 'classification' ? 'accuracy' : 'loss';
}

/**
 * `point`'s selected metric with its interval (a point with an accuracy is a classification run's:
 * every one of its evaluations has one); null when the point lacks the interval (recorded before intervals were).
 */
export function validationOf(point: MetricsPoint): Validation | null {
  const kind: TaskKind = point.valAccuracy === undefined ? 'regression' : 'classification';
  const [mean, ci95] = kind === 'classification' ? [point.valAccuracy, point.valAccuracyCi95] : [point.valLoss, point.valLossCi95];
  if (mean === undefined || ci95 === undefined) return null;
  return { metric: validationMetric(kind), mean, ci95, iteration: point.iteration };
}

/**
 * Whether `candidate` is a better evaluation than `best` (the best so far; none yet: any finite one
 * is). Strictly better only, so of equal evaluations the earliest stays. A non-finite score is
 * never better: a diverged evaluation cannot become the best.
 */
export function improves(candidate: MetricsPoint, best: MetricsPoint | undefined, kind: TaskKind): boolean {
  const loss = candidate.valLoss;
  if (!Number.isFinite(loss)) return false;
  if (kind === 'classification') {
    const accuracy = candidate.valAccuracy;
    if (accuracy === undefined || !Number.isFinite(accuracy)) return false;
    if (best === undefined) return true;
    const bestAccuracy = best.valAccuracy ?? Number.NEGATIVE_INFINITY;
    return accuracy > bestAccuracy || (accuracy === bestAccuracy && loss < best.valLoss);
  }
  return best === undefined || loss < best.valLoss;
}
