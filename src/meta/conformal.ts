/**
 * Split conformal prediction and calibration measures, as pure functions over plain numbers: the
 * finite-sample quantile of nonconformity scores (MAPIE's `get_quantile`, method "lower"), the
 * scores themselves (absolute residual, residual over a task's scale, 1 - p(true class): LAC),
 * temperature scaling fitted by negative log-likelihood (Guo et al. 2017), expected calibration
 * error, and the AUROC that judges a novelty score. calibration.ts fits them on validation tasks.
 */

/**
 * The conformal quantile of calibration scores at `coverage`: the ceil((n + 1) coverage)-th smallest
 * of the n scores. With exchangeable scores a new score is at most it with probability >= coverage.
 * Too few scores for the level (ceil((n + 1) coverage) > n) give Infinity: an unbounded interval,
 * never a narrow one.
 * @param sorted scores in ascending order.
 * @throws RangeError for a coverage outside (0, 1).
 */
export function conformalQuantile(sorted: readonly number[], coverage: number): number {
  if (!(coverage > 0 && coverage < 1)) throw new RangeError(`coverage must be in (0, 1), got ${coverage}`);
  const n = sorted.length;
  // The small tolerance keeps (n + 1) * 0.9 = 90.00000000000001 from asking for one score more.
  const rank = Math.ceil((n + 1) * coverage - 1e-9);
  return rank > n ? Infinity : sorted[rank - 1];
}

/** Ascending copy of scores, non-finite ones (which no interval could cover) ranked last. */
export function sortScores(scores: Iterable<number>): number[] {
  return Array.from(scores, (s) => (Number.isNaN(s) ? Infinity : s)).sort((a, b) => a - b);
}

/** A task's scale for normalised residuals: the standard deviation of its support targets. */
export function supportScale(y: ArrayLike<number>): number {
  const n = y.length;
  if (n === 0) return 0;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += y[i];
  mean /= n;
  let squares = 0;
  for (let i = 0; i < n; i++) squares += (y[i] - mean) ** 2;
  return Math.sqrt(squares / n);
}

/**
 * Probabilities at temperature `t` from probabilities at temperature 1: softmax(log p / t), which
 * is softmax(logits / t) (a row's constant shift cancels). Zero probabilities stay zero.
 */
export function temperatureScale(probabilities: readonly number[], t: number): number[] {
  if (t === 1) return [...probabilities];
  const logits = probabilities.map((p) => (p > 0 ? Math.log(p) / t : -Infinity));
  const max = Math.max(...logits);
  const e = logits.map((l) => Math.exp(l - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** Mean negative log-likelihood of the true labels at temperature `t` (probabilities clamped at 1e-300). */
export function temperatureNll(probabilities: readonly (readonly number[])[], labels: ArrayLike<number>, t: number): number {
  let total = 0;
  probabilities.forEach((p, i) => {
    const scaled = temperatureScale(p, t);
    total -= Math.log(Math.max(scaled[labels[i]], 1e-300));
  });
  return total / Math.max(1, probabilities.length);
}

/** The range temperatures are searched in: beyond it, probabilities are near one-hot or near uniform. */
export const TEMPERATURE_RANGE: readonly [number, number] = [0.05, 20];

/**
 * The temperature that minimises the NLL of the true labels (golden-section search over log t: the
 * NLL is convex in 1/t, so unimodal in log t). 1 when there is nothing to fit.
 */
export function fitTemperature(probabilities: readonly (readonly number[])[], labels: ArrayLike<number>): number {
  if (probabilities.length === 0) return 1;
  const f = (logT: number) => temperatureNll(probabilities, labels, Math.exp(logT));
  let [a, b] = [Math.log(TEMPERATURE_RANGE[0]), Math.log(TEMPERATURE_RANGE[1])];
  const g = (Math.sqrt(5) - 1) / 2;
  let c = b - g * (b - a);
  let d = a + g * (b - a);
  let [fc, fd] = [f(c), f(d)];
  while (b - a > 1e-4) {
    if (fc < fd) {
      [b, d, fd] = [d, c, fc];
      c = b - g * (b - a);
      fc = f(c);
    } else {
      [a, c, fc] = [c, d, fd];
      d = a + g * (b - a);
      fd = f(d);
    }
  }
  return Math.exp((a + b) / 2);
}

/** Bins of the expected calibration error: equal-width in confidence, as Guo et al. 2017. */
export const ECE_BINS = 15;

/**
 * Expected calibration error: over equal-width bins of the top probability, the gap between mean
 * confidence and accuracy, weighted by the bin's share of the predictions.
 */
export function expectedCalibrationError(probabilities: readonly (readonly number[])[], labels: ArrayLike<number>, bins = ECE_BINS): number {
  const n = probabilities.length;
  if (n === 0) return 0;
  const confidence = new Float64Array(bins);
  const correct = new Float64Array(bins);
  const count = new Float64Array(bins);
  probabilities.forEach((p, i) => {
    let top = 0;
    for (let k = 1; k < p.length; k++) if (p[k] > p[top]) top = k;
    const bin = Math.min(bins - 1, Math.floor(p[top] * bins));
    confidence[bin] += p[top];
    if (top === labels[i]) correct[bin]++;
    count[bin]++;
  });
  let ece = 0;
  for (let b = 0; b < bins; b++) if (count[b] > 0) ece += Math.abs(confidence[b] - correct[b]) / n;
  return ece;
}

/**
 * Area under the ROC curve of a score that should be higher for `positives` than for `negatives`:
 * the probability that a random positive outscores a random negative (ties count half). NaN when
 * either side is empty.
 */
export function auroc(positives: readonly number[], negatives: readonly number[]): number {
  if (positives.length === 0 || negatives.length === 0) return NaN;
  const all = [...positives.map((s) => ({ s, p: true })), ...negatives.map((s) => ({ s, p: false }))].sort((a, b) => a.s - b.s);
  // Mann-Whitney U from the positives' ranks, ties given their mean rank.
  let rankSum = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j].s === all[i].s) j++;
    const meanRank = (i + 1 + j) / 2;
    for (let k = i; k < j; k++) if (all[k].p) rankSum += meanRank;
    i = j;
  }
  const [np, nn] = [positives.length, negatives.length];
  return (rankSum - (np * (np + 1)) / 2) / (np * nn);
}

/**
 * A prediction set from class probabilities: every class whose LAC score 1 - p is at most `q`, and
 * always the most probable class (an empty set answers nothing; including the argmax only adds
 * coverage).
 */
export function predictionSet(probabilities: readonly number[], q: number): number[] {
  let top = 0;
  for (let k = 1; k < probabilities.length; k++) if (probabilities[k] > probabilities[top]) top = k;
  const out: number[] = [];
  probabilities.forEach((p, k) => {
    if (k === top || 1 - p <= q) out.push(k);
  });
  return out;
}
