/**
 * Does meta-learning help on these tasks, and from how many examples? An evaluation adapts a
 * meta-model to held-out tasks for a grid of shots and inner steps and measures the query sets,
 * next to baselines on the same tasks and the same support sets:
 * - `unadapted`: the meta-model as it is (no inner steps; ProtoNets still builds its prototype head);
 * - `scratch`: a freshly initialised model of the same shape trained on the support set alone, by the
 *   same guarded inner loop (plain gradient descent on every layer at the meta-model's inner lr) for
 *   SCRATCH_STEPS steps;
 * - `multitask`: a meta-model of algorithm 'multitask' on the same families, when one is given;
 * - `raw`: no model at all, only the support set's raw inputs (raw-baseline.ts): nearest class mean,
 *   or ridge regression. The floor any learned model must clear.
 * `baselines` picks a subset (default all); the meta-model's own `adapted` rows always come.
 * Every figure is a mean over tasks with its 95% confidence interval (normal approximation).
 */

import { adaptMany, predict, taskParams, type MetaModel, type Prediction } from './adapt.js';
import { getAlgorithm } from './algorithms/index.js';
import { coverageMetrics, noveltyAuroc } from './calibration-eval.js';
import { scoreTasks } from './calibration.js';
import type { EnginePreference } from './engine.js';
import { initModelParams } from './model.js';
import { rawPredict } from './raw-baseline.js';
import { Rng } from './rng.js';
import type { Episode, Examples, TaskFamily } from './types.js';

/** Gradient steps the `scratch` baseline takes on each support set (from a fresh initialisation). */
export const SCRATCH_STEPS = 100;

/** The methods an evaluation compares the adapted meta-model with, in the order of their rows. */
export const EVALUATION_BASELINES = ['unadapted', 'scratch', 'multitask', 'raw'] as const;
export type EvaluationBaseline = (typeof EVALUATION_BASELINES)[number];

/** What an evaluation measures: held-out tasks per grid cell, and the grid. */
export interface EvaluationSettings {
  /** Support examples per task (regression) or per class (classification), one row each. */
  shots: number[];
  /** Inner steps of the meta-model's adaptation, one row each (ignored by algorithms without inner steps). */
  steps: number[];
  /** Held-out tasks drawn for each number of shots (the same tasks for every method and step count). */
  tasks: number;
  /** Query examples per task (or per class). */
  queryShots: number;
  seed: number;
  /** The baselines to run beside the adapted rows. Default (absent, as in evaluations stored before it existed): all. */
  baselines?: EvaluationBaseline[];
}

export type EvaluationMethod = 'adapted' | EvaluationBaseline;

/** The baselines `settings` asks for (all when it names none). */
export function evaluationBaselines(settings: Pick<EvaluationSettings, 'baselines'>): readonly EvaluationBaseline[] {
  return settings.baselines ?? EVALUATION_BASELINES;
}

/** A mean over tasks and the half-width of its 95% confidence interval. */
export interface MeanCi {
  mean: number;
  ci95: number;
}

/** One cell: a method at a number of shots (and, for 'adapted', of steps). */
export interface EvaluationRow {
  method: EvaluationMethod;
  shots: number;
  /** Inner steps run ('unadapted' and 'raw': 0, 'scratch': SCRATCH_STEPS, 'multitask': its own). */
  steps: number;
  /** Post-adaptation query loss (MSE, or cross-entropy). */
  loss: MeanCi;
  /** Query accuracy (classification only). */
  accuracy?: MeanCi;
  /** Tasks whose raw inner loop diverged (the guard kept an earlier step). */
  diverged: number;
  /**
   * 'adapted' rows at the meta-model's own inner steps, for a calibrated meta-model: coverage of its
   * intervals or sets at EVALUATION_COVERAGE, their width or size, ECE before and after the
   * temperature, novelty AUROC (calibration-eval.ts).
   */
  coverage?: number;
  width?: number;
  setSize?: number;
  ece?: { before: number; after: number };
  noveltyAuroc?: number;
}

/** Mean and 95% confidence half-width (1.96 standard errors) of per-task values. */
export function meanCi(values: readonly number[]): MeanCi {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, ci95: 0 };
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1);
  return { mean, ci95: 1.96 * Math.sqrt(variance / n) };
}

/** Query loss (MSE, or cross-entropy) and (classification) accuracy of a prediction of one query set's inputs. */
export function queryScores(prediction: Prediction, query: Examples): { loss: number; accuracy?: number } {
  if (prediction.kind === 'regression') {
    return { loss: prediction.values.reduce((a, p, i) => a + (p - query.y[i]) ** 2, 0) / query.n };
  }
  let loss = 0;
  let correct = 0;
  prediction.probabilities.forEach((p, i) => {
    const label = query.y[i];
    // Clamped like the engine's float32 softmax: a confident mistake costs ~ -log(float32 epsilon), not Infinity.
    loss -= Math.log(Math.max(p[label], 1.2e-7));
    if (prediction.labels[i] === label) correct++;
  });
  return { loss: loss / query.n, accuracy: correct / query.n };
}

/** One row from the per-task scores of a method. */
function rowOf(method: EvaluationMethod, shots: number, steps: number, scores: { loss: number; accuracy?: number }[], diverged: number): EvaluationRow {
  const row: EvaluationRow = { method, shots, steps, loss: meanCi(scores.map((s) => s.loss)), diverged };
  const accuracies = scores.flatMap((s) => (s.accuracy === undefined ? [] : [s.accuracy]));
  if (accuracies.length > 0) row.accuracy = meanCi(accuracies);
  return row;
}

/** Adapts `model` to every task and scores its query set; one row. */
function scoreMethod(method: EvaluationMethod, model: MetaModel, shots: number, steps: number, supports: Examples[], queries: Examples[], engine: EnginePreference): EvaluationRow {
  const results = adaptMany(model, supports, { steps }, engine);
  let diverged = 0;
  const scores = results.map((result, t) => {
    if (result instanceof Error) throw result;
    if (result.supportLoss.diverged) diverged++;
    return queryScores(predict(model.spec, taskParams(model, result.params), queries[t].x, engine), queries[t]);
  });
  return rowOf(method, shots, results[0] instanceof Error ? steps : results[0].steps, scores, diverged);
}

/** Calibration measures of `model` on the episodes of one number of shots (its own inner steps). */
function calibrationOf(model: MetaModel, family: TaskFamily, shots: number, episodes: Episode[], settings: EvaluationSettings, engine: EnginePreference): Partial<EvaluationRow> {
  const calibration = model.calibration!;
  const scored = scoreTasks(model, episodes, engine);
  const auroc = noveltyAuroc(model, family, calibration, shots, { scored, rng: new Rng(settings.seed + 31 * shots + 1), queryShots: settings.queryShots, engine });
  return { ...coverageMetrics(calibration, shots, scored), ...(auroc === undefined || Number.isNaN(auroc) ? {} : { noveltyAuroc: auroc }) };
}

/** The `raw` baseline (no model, no steps) fitted to every support set and scored on its query set; one row. */
function scoreRaw(family: TaskFamily, ways: number | undefined, shots: number, supports: Examples[], queries: Examples[]): EvaluationRow {
  const scores = supports.map((support, t) => queryScores(rawPredict(family.kind, support, queries[t].x, family.inputDim, ways), queries[t]));
  return rowOf('raw', shots, 0, scores, 0);
}

/**
 * Evaluates `model` on `family`'s held-out tasks (its 'test' split) over the grid, with the
 * baselines settings.baselines names; `multitask` adds that model's rows (when that baseline is
 * asked for). Rows come shots by shots: adapted (one per step count), then unadapted, scratch,
 * multitask, raw, each when asked for.
 * @throws RangeError for a grid or a family that does not fit the model.
 * @throws NonFiniteError when a meta-model is not finite on a support set.
 */
export function evaluateMetaModel(model: MetaModel, family: TaskFamily, settings: EvaluationSettings, options: { multitask?: MetaModel; engine?: EnginePreference } = {}): EvaluationRow[] {
  const engine = options.engine ?? 'auto';
  if (family.inputDim !== model.spec.inputDim) throw new RangeError(`the family's inputDim ${family.inputDim} does not fit the model's ${model.spec.inputDim}`);
  if (family.kind !== model.spec.kind) throw new RangeError(`the family's tasks are ${family.kind}, the model's ${model.spec.kind}`);
  const ways = model.spec.kind === 'classification' ? model.spec.outputDim : undefined;
  const baselines = new Set(evaluationBaselines(settings));
  const rows: EvaluationRow[] = [];
  for (const shots of settings.shots) {
    // One draw of tasks per number of shots, shared by every method and step count.
    const rng = new Rng(settings.seed + shots);
    const episodes = Array.from({ length: settings.tasks }, () => family.sampleEpisode(rng, 'test', { shots, queryShots: settings.queryShots, ways }));
    const supports = episodes.map((e) => e.support);
    const queries = episodes.map((e) => e.query);
    // Calibration holds for the meta-model's own inner loop: its steps (any, when it runs none).
    const ownSteps = getAlgorithm(model.algorithm).runsInnerSteps ? model.inner.steps : settings.steps[0];
    for (const steps of settings.steps) {
      const row = scoreMethod('adapted', model, shots, steps, supports, queries, engine);
      if (model.calibration && steps === ownSteps) Object.assign(row, calibrationOf(model, family, shots, episodes, settings, engine));
      rows.push(row);
    }
    if (baselines.has('unadapted')) rows.push(scoreMethod('unadapted', model, shots, 0, supports, queries, engine));
    if (baselines.has('scratch')) {
      // Plain gradient descent on every layer: MAML's inner loop from a fresh initialisation.
      const scratch: MetaModel = { algorithm: 'maml', spec: model.spec, inner: model.inner, params: initModelParams(model.spec, new Rng(settings.seed + 7919 * shots)) };
      rows.push(scoreMethod('scratch', scratch, shots, SCRATCH_STEPS, supports, queries, engine));
    }
    if (options.multitask && baselines.has('multitask')) rows.push(scoreMethod('multitask', options.multitask, shots, options.multitask.inner.steps, supports, queries, engine));
    if (baselines.has('raw')) rows.push(scoreRaw(family, ways, shots, supports, queries));
  }
  return rows;
}
