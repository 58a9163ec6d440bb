/**
 * Studies, the pure part: which learners a study tries by default (search space), how many
 * iterations each rung of successive halving runs and what it costs (schedule), which trials a rung
 * promotes (promotion rule), and whether the winner beats every baseline (decision rule). No I/O:
 * the scheduler (src/jobs/study-scheduler.ts) stores what these decide.
 *
 * Successive halving (Jamieson & Talwalkar, 2016): every candidate trains a few iterations, the best
 * 1/eta by validation go on, and so on until one is left. A promoted trial resumes from its
 * checkpoint, so a rung costs only its increment: sum over rungs of trials x (iterations - the
 * previous rung's iterations). The schedule's milestones are fixed up front (as Ray's ASHA does).
 */
import { ALGORITHM_NAMES, getAlgorithm, type AlgorithmName } from './algorithms/index.js';
import type { EvaluationRow } from './evaluation.js';
import { DEFAULT_HYPER, type HyperParams } from './hyper.js';
import type { ValidationMetric } from './selection.js';
import type { TaskKind } from './types.js';

/** One learner a study tries: an algorithm and the hyper-parameters it sets (the rest are the study's). */
export interface StudyCandidate {
  algorithm: AlgorithmName;
  hyper: Partial<HyperParams>;
}

/** Reduction factor: each rung keeps the best third (Optuna's and Ray's default). */
export const STUDY_ETA = 3;

/** A default study spends at most this many times the meta-iterations of one default training run. */
export const DEFAULT_STUDY_COST_FACTOR = 4;

/** The default budget: meta-iterations over all trials and rungs together. */
export const DEFAULT_STUDY_ITERATIONS = DEFAULT_STUDY_COST_FACTOR * DEFAULT_HYPER.iterations;

/**
 * The inner loops a default study tries for algorithms that run one: the step sizes that worked in
 * this project's probes differed by algorithm and body (0.01 on sinusoids, 0.1 and 0.4 on digits),
 * and more steps help some bodies. 0.4 for classification only: a squared error's gradient grows
 * with the targets, and in regression studies the 0.4 trials diverged or led early and ended behind
 * (bench/results/studies-first-spread.json, 14 candidates: on sinusoids four of the five 0.4 x 5
 * zero-head trials diverged in the first rung; on the uploaded CSV they were three of the second
 * rung's four, and the best of them ended at a validation MSE of 1.65, where the 61-candidate
 * study's Meta-SGD 0.1 x 5 had reached 1.18). No 0.4 trial reached the top rung of a 61-candidate
 * regression study.
 */
export const STUDY_INNER_LRS: Readonly<Record<TaskKind, readonly number[]>> = { classification: [0.01, 0.1, 0.4], regression: [0.01, 0.1] };
export const STUDY_INNER_STEPS = [1, 5] as const;

/** One inner-loop setting of the default grid, scaled to [0, 1] per factor (log step size, log steps). */
interface GridPoint {
  hyper: Pick<HyperParams, 'innerLr' | 'innerSteps'>;
  at: number[];
}

/** Where `value` lies between the least and the largest of `values`, on a log scale (0 when they are one value). */
const logPosition = (value: number, values: readonly number[]) => {
  const [low, high] = [Math.min(...values), Math.max(...values)];
  return high === low ? 0 : Math.log(value / low) / Math.log(high / low);
};

/**
 * The inner-loop grid (`lrs` x step counts) in an order whose every prefix spreads over it: the
 * plainest setting first (the smallest step size, one step: the defaults), then each time the
 * setting farthest from those already taken (maximin distance, ties in grid order); then, where
 * `zeroHeads`, the same settings again with a zero head. A default study takes only the first few
 * settings of each algorithm ({@link defaultTrials}); in grid order those would all be one-step
 * variants, where this order's first two are 0.01 x 1 and 0.4 x 5 (regression: 0.1 x 5). The zero
 * head comes after: it is the remedy for one failure (a learned head that MAML on a conv body
 * adapts badly from), and on MLP bodies it ranked below the same setting without it in 23 of the 31
 * pairs that met at a rung after the first (bench:studies' 61-candidate run of 2026-12-07).
 */
function spreadGrid(lrs: readonly number[], zeroHeads: boolean): Pick<HyperParams, 'innerLr' | 'innerSteps' | 'zeroHead'>[] {
  const grid: GridPoint[] = STUDY_INNER_STEPS.flatMap((innerSteps) =>
    lrs.map((innerLr) => ({ hyper: { innerLr, innerSteps }, at: [logPosition(innerLr, lrs), logPosition(innerSteps, STUDY_INNER_STEPS)] })),
  );
  const distance = (a: GridPoint, b: GridPoint) => Math.hypot(...a.at.map((x, i) => x - b.at[i]));
  const taken = [grid.shift()!];
  while (grid.length > 0) {
    const nearest = grid.map((point) => Math.min(...taken.map((t) => distance(point, t))));
    const farthest = nearest.indexOf(Math.max(...nearest));
    taken.push(...grid.splice(farthest, 1));
  }
  return (zeroHeads ? [false, true] : [false]).flatMap((zeroHead) => taken.map((point) => ({ ...point.hyper, zeroHead })));
}

/**
 * The default search space for families of `kind`: every algorithm that suits the kind (ProtoNets:
 * classification only; multitask always); for algorithms with an inner loop, each inner step size
 * of the kind and step count, with and without a zero head where the algorithm meta-learns one, in
 * the order of {@link spreadGrid}. Ordered round robin over the algorithms, so a study of fewer
 * trials still tries every algorithm before a second setting of any.
 */
export function defaultSearchSpace(kind: TaskKind): StudyCandidate[] {
  const perAlgorithm = ALGORITHM_NAMES.map(getAlgorithm)
    .filter((algorithm) => algorithm.kinds.includes(kind))
    .map((algorithm): StudyCandidate[] => {
      if (!algorithm.runsInnerSteps) return [{ algorithm: algorithm.name, hyper: {} }];
      return spreadGrid(STUDY_INNER_LRS[kind], algorithm.metaTrainsHead).map((hyper) => ({ algorithm: algorithm.name, hyper }));
    });
  const longest = Math.max(...perAlgorithm.map((list) => list.length));
  return Array.from({ length: longest }, (_, i) => perAlgorithm.flatMap((list) => (i < list.length ? [list[i]] : []))).flat();
}

/** One rung: how many trials train in it, and up to which iteration. */
export interface Rung {
  trials: number;
  iterations: number;
}

export interface StudySchedule {
  rungs: Rung[];
  /** Meta-iterations the whole study runs (each promoted trial resumes, so only increments count). */
  cost: number;
}

/** The budget cannot give every rung at least one more iteration than the one before. */
export class StudyBudgetError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'StudyBudgetError';
  }
}

/**
 * The top rung trains this many finalists to the end and the winner is the best of them by validation
 * there. Classical successive halving picks one of the last two at a third of the top iterations: a
 * learner that starts slower and ends higher (multitask against ProtoNets on digits) loses there, and
 * the top rung, a third of a study's iterations, runs one trial on one worker while the others idle.
 */
export const STUDY_FINALISTS = 2;

/** One rung of the plan: its trials, and its milestone as top / eta^depth iterations. */
interface PlannedRung {
  trials: number;
  depth: number;
}

/**
 * Successive halving's rungs for `candidates` trials: all of them, then the best 1/eta of the
 * previous rung (at least one) until one is left, at milestones growing eta-fold up to the top; then
 * the rungs of {@link STUDY_FINALISTS} trials or fewer give way to one top rung of the finalists (a
 * rung that would promote every one of its trials would only be a pause).
 */
function planRungs(candidates: number, eta: number): PlannedRung[] {
  const trials = [candidates];
  while (trials[trials.length - 1] > 1) trials.push(Math.max(1, Math.floor(trials[trials.length - 1] / eta)));
  const finalists = Math.min(candidates, STUDY_FINALISTS);
  const halving = trials.map((n, k) => ({ trials: n, depth: trials.length - 1 - k })).filter((rung) => rung.trials > finalists);
  return [...halving, { trials: finalists, depth: 0 }];
}

/** Trials per rung: all candidates, the best 1/eta of the previous rung, ..., and the finalists at the top. */
export function rungTrials(candidates: number, eta = STUDY_ETA): number[] {
  return planRungs(candidates, eta).map((rung) => rung.trials);
}

/** Meta-iterations `rungs` cost: each rung's trials run from the previous rung's milestone to its own. */
export function scheduleCost(rungs: readonly Rung[]): number {
  return rungs.reduce((sum, rung, k) => sum + rung.trials * (rung.iterations - (k === 0 ? 0 : rungs[k - 1].iterations)), 0);
}

/**
 * The successive-halving schedule of `candidates` trials within `budget` meta-iterations: rung k
 * runs to top / eta^depth iterations ({@link planRungs}), with the top rung (the winner's total) as
 * long as the budget allows, and at most `maxIterations`.
 * @throws StudyBudgetError when the budget is too small for even one iteration more per rung.
 */
export function studySchedule(candidates: number, budget: number, options: { eta?: number; maxIterations?: number } = {}): StudySchedule {
  const { eta = STUDY_ETA, maxIterations = Number.MAX_SAFE_INTEGER } = options;
  if (!Number.isInteger(candidates) || candidates < 1) throw new RangeError(`a study needs at least one candidate, got ${candidates}`);
  const plan = planRungs(candidates, eta);
  const rungsAt = (top: number): Rung[] => {
    const rungs: Rung[] = [];
    plan.forEach(({ trials, depth }, k) => {
      const previous = k === 0 ? 0 : rungs[k - 1].iterations;
      rungs.push({ trials, iterations: Math.max(previous + 1, Math.round(top / eta ** depth)) });
    });
    return rungs;
  };
  // The cost grows with the top rung's iterations: start from the continuous solution and step down.
  const perTop = plan.reduce((sum, { trials, depth }, k) => sum + trials * (eta ** -depth - (k === 0 ? 0 : eta ** -plan[k - 1].depth)), 0);
  for (let top = Math.min(maxIterations, Math.floor(budget / perTop) + 1); top >= plan.length; top--) {
    const rungs = rungsAt(top);
    const cost = scheduleCost(rungs);
    if (cost <= budget && rungs[rungs.length - 1].iterations <= maxIterations) return { rungs, cost };
  }
  const least = scheduleCost(rungsAt(plan.length));
  throw new StudyBudgetError(`${budget} meta-iterations cannot train ${candidates} candidates over ${plan.length} rungs (at least ${least} needed)`);
}

/**
 * Halving rungs a default study runs below its finalists, at most, so that its first rung trains at
 * least top / eta^2 iterations. Rankings taken earlier do not predict the end
 * (bench/results/studies-curves.json: a few candidates each trained alone to 1,152 iterations,
 * validated every 48): on digits (MLP) multitask ranks fourth of six at 48 iterations and first
 * from 144 on; on sinusoids Meta-SGD 0.01 x 1 ranks fourth of seven at 48 and first from 192 on.
 * The whole default space (61 candidates) within four runs' budget had rungs of 14, 43 and 128
 * iterations before the top, and studies dropped both before they rose (bench:studies).
 */
export const STUDY_MAX_HALVINGS = 2;

/**
 * How many candidates of the default `space` a study tries when the user does not say: the most
 * whose schedule within `budget` has at most {@link STUDY_MAX_HALVINGS} halving rungs and trains its
 * finalists at least `oneRun` iterations (a default training run's, or `maxIterations` if lower), but
 * never fewer than one per algorithm (the round robin's first round): a small budget shortens the
 * rungs rather than leave an algorithm out.
 */
export function defaultTrials(space: readonly StudyCandidate[], budget: number, options: { eta?: number; maxIterations?: number; oneRun?: number } = {}): number {
  const { eta = STUDY_ETA, maxIterations = Number.MAX_SAFE_INTEGER, oneRun = DEFAULT_HYPER.iterations } = options;
  const oneEach = Math.min(space.length, new Set(space.map((c) => c.algorithm)).size);
  for (let n = space.length; n > oneEach; n--) {
    if (planRungs(n, eta)[0].depth > STUDY_MAX_HALVINGS) continue;
    try {
      const { rungs } = studySchedule(n, budget, { eta, maxIterations });
      if (rungs[rungs.length - 1].iterations >= Math.min(oneRun, maxIterations)) return n;
    } catch (error) {
      if (!(error instanceof StudyBudgetError)) throw error;
    }
  }
  return oneEach;
}

/** A trial's standing at the end of its rung (null: it failed or diverged, and is pruned). */
export interface TrialScore {
  candidate: number;
  mean: number | null;
}

/** `a` is better than `b` on `metric` (accuracy: higher; loss: lower). */
const better = (metric: ValidationMetric, a: number, b: number) => (metric === 'accuracy' ? a > b : a < b);

/**
 * The candidates a rung promotes, best first: the `count` best scored ones by validation mean (ties:
 * the lower candidate index, so two schedulers agree), never a pruned one. Optuna's rule,
 * `_is_trial_promotable_to_next_rung`, as a pure ranking.
 */
export function promoted(scores: readonly TrialScore[], metric: ValidationMetric, count: number): number[] {
  return scores
    .filter((s): s is { candidate: number; mean: number } => s.mean !== null && Number.isFinite(s.mean))
    .sort((a, b) => (better(metric, a.mean, b.mean) ? -1 : better(metric, b.mean, a.mean) ? 1 : a.candidate - b.candidate))
    .slice(0, Math.max(0, count))
    .map((s) => s.candidate);
}

/** A mean over test tasks with its 95% interval half-width. */
export interface Interval {
  mean: number;
  ci95: number;
}

/** How the winner fared against one baseline. */
export interface BaselineVerdict extends Interval {
  method: string;
  /** `beaten`: the intervals are apart in the winner's favour; `won`: apart in the baseline's; `tied`: they overlap. */
  outcome: 'beaten' | 'tied' | 'won';
}

export interface PromotionDecision {
  /** The winner beat every baseline beyond the intervals. */
  beatsAll: boolean;
  baselines: BaselineVerdict[];
  reason: string;
}

const format = (x: Interval) => `${x.mean.toPrecision(3)} ± ${x.ci95.toPrecision(2)}`;

/**
 * Whether the winner beats every baseline beyond the 95% intervals: for accuracy, the winner's
 * mean minus its ci95 above the baseline's mean plus its ci95; for a loss, the winner's mean plus
 * its ci95 below the baseline's mean minus its ci95. Anything else is a tie or a loss, and refuses
 * promotion; the reason names each baseline that tied or won.
 */
export function decidePromotion(metric: ValidationMetric, winner: Interval, baselines: readonly (Interval & { method: string })[]): PromotionDecision {
  const verdicts = baselines.map((b): BaselineVerdict => {
    const [wLow, wHigh, bLow, bHigh] = [winner.mean - winner.ci95, winner.mean + winner.ci95, b.mean - b.ci95, b.mean + b.ci95];
    const beaten = metric === 'accuracy' ? wLow > bHigh : wHigh < bLow;
    const won = metric === 'accuracy' ? bLow > wHigh : bHigh < wLow;
    return { method: b.method, mean: b.mean, ci95: b.ci95, outcome: beaten ? 'beaten' : won ? 'won' : 'tied' };
  });
  const notBeaten = verdicts.filter((v) => v.outcome !== 'beaten');
  const winnerText = `the winner's test ${metric} ${format(winner)}`;
  if (baselines.length === 0) return { beatsAll: false, baselines: verdicts, reason: `no baseline was measured, so ${winnerText} is not shown to beat anything` };
  if (notBeaten.length === 0) return { beatsAll: true, baselines: verdicts, reason: `${winnerText} beats every baseline beyond the 95% intervals (${verdicts.map((v) => `${v.method} ${format(v)}`).join(', ')})` };
  return {
    beatsAll: false,
    baselines: verdicts,
    reason: `${winnerText} does not beat every baseline beyond the 95% intervals: ${notBeaten.map((v) => `${v.method} ${v.outcome === 'won' ? 'wins' : 'ties'} (${format(v)})`).join(', ')}`,
  };
}

/** The inner steps a candidate's evaluation runs: its own, or 0 (honestly labelled) for an algorithm without an inner loop. */
export function evaluationSteps(candidate: { algorithm: AlgorithmName; hyper: Pick<HyperParams, 'innerSteps'> }): number {
  return getAlgorithm(candidate.algorithm).runsInnerSteps ? candidate.hyper.innerSteps : 0;
}

/**
 * Judges the winner's evaluation at `shots`: its adapted row against every baseline row, on
 * `metric` (accuracy for classification, the loss for regression). A baseline that is the winner
 * itself is left out: `unadapted` for an algorithm without an inner loop (adapting it runs no step,
 * so the two rows are one computation) and `multitask` when the newest multitask meta-model the
 * evaluation found is the winner.
 * @throws RangeError when the rows hold no adapted row at `shots`.
 */
export function judgeEvaluation(
  rows: readonly EvaluationRow[],
  options: { metric: ValidationMetric; shots: number; algorithm: AlgorithmName; multitaskIsWinner: boolean },
): PromotionDecision & { winner: Interval } {
  const { metric, shots, algorithm, multitaskIsWinner } = options;
  const score = (row: EvaluationRow) => (metric === 'accuracy' ? row.accuracy : row.loss);
  const atShots = rows.filter((row) => row.shots === shots);
  const adapted = atShots.find((row) => row.method === 'adapted');
  const winner = adapted && score(adapted);
  if (!winner) throw new RangeError(`the evaluation has no adapted ${metric} row at ${shots} shots`);
  const isWinner = (method: string) => (method === 'unadapted' && !getAlgorithm(algorithm).runsInnerSteps) || (method === 'multitask' && multitaskIsWinner);
  const baselines = atShots.flatMap((row) => {
    const interval = score(row);
    return row.method === 'adapted' || isWinner(row.method) || !interval ? [] : [{ method: row.method, mean: interval.mean, ci95: interval.ci95 }];
  });
  return { winner: { mean: winner.mean, ci95: winner.ci95 }, ...decidePromotion(metric, winner, baselines) };
}
