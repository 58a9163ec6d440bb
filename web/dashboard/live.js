// A task's live (prequential) curve: its last scored examples, each scored by the head serving when
// it arrived, as the running accuracy (or MSE) over them. Pure, so a unit test checks the numbers.

/**
 * Points [[i, running mean of scores[0..i]]] for i = 1..n: accuracy when the scores are 1/0 (right or
 * wrong), MSE when they are squared errors.
 */
export function liveCurve(scores) {
  let sum = 0;
  return scores.map((score, i) => {
    sum += score;
    return [i + 1, sum / (i + 1)];
  });
}

/** `accuracy 87.0% (of 100)` or `MSE 0.0312 (of 40)`; '' before anything was scored. */
export function formatLive({ metric, value, scored }) {
  if (value === null || scored === 0) return '';
  return metric === 'accuracy' ? `accuracy ${(100 * value).toFixed(1)}% (of ${scored})` : `MSE ${value.toPrecision(3)} (of ${scored})`;
}
