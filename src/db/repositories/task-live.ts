/**
 * A task's prequential ("test, then train") record as the API shows it: every appended labelled
 * example is first scored by the head serving at that moment, before it joins the support set, so
 * the running accuracy (classification) or mean squared error (regression) is a held-out measure.
 * The task row keeps the all-time totals and the per-example scores of the last {@link LIVE_RECENT}.
 */
import type { TaskKind } from '../../meta/index.js';

/** How many of the latest scored examples `live.recent` covers. */
export const LIVE_RECENT = 100;

export interface LiveWindow {
  /** Examples scored. */
  scored: number;
  /** Accuracy or MSE over them; null when none was scored. */
  value: number | null;
}

export interface LiveView {
  metric: 'accuracy' | 'mse';
  allTime: LiveWindow;
  /** With each example's score, oldest first (1 or 0, or the squared error): the live curve's points. */
  recent: LiveWindow & { scores: number[] };
}

/** The stored totals: `recent` holds one score per example (1 or 0 right, or the squared error), oldest first. */
export interface LiveTotals {
  scored: number;
  correct: number;
  squaredError: number;
  recent: readonly number[];
}

const mean = (sum: number, n: number) => (n === 0 ? null : sum / n);

export function liveView(kind: TaskKind, totals: LiveTotals): LiveView {
  const recentSum = totals.recent.reduce((a, b) => a + b, 0);
  const allTimeSum = kind === 'classification' ? totals.correct : totals.squaredError;
  return {
    metric: kind === 'classification' ? 'accuracy' : 'mse',
    allTime: { scored: totals.scored, value: mean(allTimeSum, totals.scored) },
    recent: { scored: totals.recent.length, value: mean(recentSum, totals.recent.length), scores: [...totals.recent] },
  };
}
