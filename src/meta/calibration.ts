/**
 * Knowing when not to answer. A meta-model's validation tasks are a natural calibration set
 * (Fisch et al. 2021, few-shot conformal prediction with auxiliary tasks): adapt the meta-model to
 * each with its own inner loop, score the query sets, and keep
 * - a temperature per number of shots (classification), fitted by NLL on the query predictions;
 * - split conformal quantiles of a nonconformity score per number of shots (Mondrian bins, as crepes
 *   bins them): absolute residual, or the residual over the task's scale (its support targets'
 *   standard deviation) where that gives narrower intervals on the validation tasks; 1 - p(true
 *   class) of the temperature-scaled probabilities (LAC) for classification;
 * - the mean and spread of in-task queries' distance to their support set in the body's embedding,
 *   so a new input's distance is a standardised novelty score, and the threshold above which the
 *   service abstains (the validation in-task queries' 95th percentile).
 * Serving (src/http/predict-uncertainty.ts) and evaluations apply it with the functions below.
 */

import { adaptMany, taskParams, type MetaModel } from './adapt.js';
import { conformalQuantile, fitTemperature, sortScores, supportScale, temperatureScale } from './conformal.js';
import type { EnginePreference } from './engine.js';
import { embedNetwork, prepareNetwork, runNetwork, type PreparedNetwork } from './predict-arrays.js';
import { Rng } from './rng.js';
import type { Examples, TaskFamily, TaskKind } from './types.js';
import { drainYielding } from '../util/yielding.js';

/** The nonconformity scores a calibration may use (see the module comment). */
export type NonconformityScore = 'absolute' | 'normalised' | 'lac';

/** Coverage levels whose quantiles are stored: 0.50, 0.51, ..., 0.99 (a request's coverage is rounded up to one). */
export const COVERAGE_LEVELS: readonly number[] = Array.from({ length: 50 }, (_, i) => Math.round((0.5 + i / 100) * 100) / 100);

/** The share of validation in-task queries that would be told to abstain: the threshold's quantile. */
export const NOVELTY_FALSE_ABSTAIN = 0.05;

/** Calibration of the meta-model's inner loop after `shots` support examples (per class, for classification). */
export interface ShotsCalibration {
  shots: number;
  score: NonconformityScore;
  /** Calibration scores behind the quantiles (validation query points). */
  n: number;
  /** Temperature of this many shots' probabilities (1 for regression). */
  temperature: number;
  /** 'normalised': a task's scale is its support targets' standard deviation plus this floor. */
  scaleFloor?: number;
  /** The conformal quantile at each of Calibration.levels; null where n scores are too few (unbounded). */
  quantiles: (number | null)[];
  /** In-task queries' distance to their nearest support example in the body's embedding: mean and standard deviation. */
  novelty: { mean: number; std: number };
}

/** What a meta-model keeps to answer intervals, sets and novelty (stored as JSON beside its parameters). */
export interface Calibration {
  kind: TaskKind;
  /** The temperature of the shots the meta-model was trained with (what exports bake into their probabilities). */
  temperature: number;
  levels: number[];
  /** Standardised novelty above which a prediction abstains. */
  noveltyThreshold: number;
  /** Validation tasks drawn per number of shots, and their query examples (per class). */
  tasks: number;
  queryShots: number;
  byShots: ShotsCalibration[];
}

export interface CalibrationSettings {
  /** Numbers of shots to calibrate (sorted, distinct, positive). */
  shots: number[];
  /** The shots whose temperature is the calibration's own (default the first). */
  trainedShots?: number;
  /** Validation tasks per number of shots. */
  tasks: number;
  queryShots: number;
  seed: number;
  engine?: EnginePreference;
}

/** Tasks adapted in one batch (bounds the memory a conv body's batched inner loop takes). */
const ADAPT_CHUNK = 50;

/** One adapted task's query predictions and embeddings: what calibration and evaluation both score. */
export interface ScoredTask {
  support: Examples;
  query: Examples;
  /** Regression values, or class probabilities at temperature 1, per query example. */
  values: number[];
  probabilities: number[][];
  /** Distance of each query example to its nearest support example in the body's embedding. */
  distances: number[];
  /** The prepared task network (for more inputs, e.g. novelty's outside ones). */
  network: PreparedNetwork;
  supportEmbedding: { dim: number; values: Float64Array };
}

/** Euclidean distance of each row of `points` to its nearest row of `support` (both [n, dim]). */
export function nearestDistances(points: Float64Array, support: Float64Array, dim: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < points.length; i += dim) {
    let best = Infinity;
    for (let s = 0; s < support.length; s += dim) {
      let d = 0;
      for (let k = 0; k < dim; k++) d += (points[i + k] - support[s + k]) ** 2;
      if (d < best) best = d;
    }
    out.push(Math.sqrt(best));
  }
  return out;
}

/**
 * Adapts `model` to each episode with its own inner loop (default steps) and scores the query sets.
 * @throws NonFiniteError when a task's adaptation is not finite.
 */
export function scoreTasks(model: MetaModel, episodes: readonly { support: Examples; query: Examples }[], engine: EnginePreference = 'auto', steps?: number): ScoredTask[] {
  return [...scoreTaskChunks(model, episodes, engine, steps)].flat();
}

/** {@link scoreTasks}, ADAPT_CHUNK episodes at a time (a worker yields to its event loop between them). */
function* scoreTaskChunks(model: MetaModel, episodes: readonly { support: Examples; query: Examples }[], engine: EnginePreference = 'auto', steps?: number): Generator<ScoredTask[]> {
  for (let start = 0; start < episodes.length; start += ADAPT_CHUNK) {
    const out: ScoredTask[] = [];
    const chunk = episodes.slice(start, start + ADAPT_CHUNK);
    const results = adaptMany(model, chunk.map((e) => e.support), steps === undefined ? {} : { steps }, engine);
    results.forEach((result, t) => {
      if (result instanceof Error) throw result;
      const { support, query } = chunk[t];
      const network = prepareNetwork(model.spec, taskParams(model, result.params));
      const prediction = runNetwork(network, query.x);
      const supportEmbedding = embedNetwork(network, support.x);
      const queryEmbedding = embedNetwork(network, query.x);
      out.push({
        support,
        query,
        values: prediction.kind === 'regression' ? prediction.values : [],
        probabilities: prediction.kind === 'classification' ? prediction.probabilities : [],
        distances: nearestDistances(queryEmbedding.values, supportEmbedding.values, supportEmbedding.dim),
        network,
        supportEmbedding,
      });
    });
    yield out;
  }
}

const mean = (v: readonly number[]) => v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);
const median = (v: readonly number[]) => (v.length === 0 ? 0 : sortScores(v)[Math.floor((v.length - 1) / 2)]);

/** Regression nonconformity scores of scored tasks: absolute residuals, or residuals over each task's scale. */
export function regressionScores(tasks: readonly ScoredTask[], score: 'absolute' | 'normalised', scaleFloor = 0): number[] {
  return tasks.flatMap((t) => {
    const scale = score === 'normalised' ? supportScale(t.support.y) + scaleFloor : 1;
    return t.values.map((v, i) => Math.abs(t.query.y[i] - v) / scale);
  });
}

/** LAC scores (1 - p(true class)) of scored tasks at temperature `t`. */
export function classificationScores(tasks: readonly ScoredTask[], t: number): number[] {
  return tasks.flatMap((task) => task.probabilities.map((p, i) => 1 - temperatureScale(p, t)[task.query.y[i]]));
}

/** Calibrates one number of shots from its scored validation tasks. */
export function calibrateShots(kind: TaskKind, shots: number, tasks: readonly ScoredTask[], levels: readonly number[] = COVERAGE_LEVELS): ShotsCalibration {
  const distances = tasks.flatMap((t) => t.distances);
  const m = mean(distances);
  const novelty = { mean: m, std: Math.sqrt(mean(distances.map((d) => (d - m) ** 2))) || 1 };
  const quantilesOf = (sorted: number[]) => levels.map((level) => {
    const q = conformalQuantile(sorted, level);
    return Number.isFinite(q) ? q : null;
  });
  if (kind === 'classification') {
    const probabilities = tasks.flatMap((t) => t.probabilities);
    const labels = tasks.flatMap((t) => Array.from(t.query.y));
    const temperature = fitTemperature(probabilities, labels);
    const sorted = sortScores(classificationScores(tasks, temperature));
    return { shots, score: 'lac', n: sorted.length, temperature, quantiles: quantilesOf(sorted), novelty };
  }
  // Normalising helps when tasks differ in scale (a sinusoid's amplitude); the floor keeps a task
  // whose few support targets happen to agree from getting a zero-width interval.
  const scaleFloor = Math.max(0.1 * median(tasks.map((t) => supportScale(t.support.y))), 1e-6);
  const absolute = sortScores(regressionScores(tasks, 'absolute'));
  const normalised = sortScores(regressionScores(tasks, 'normalised', scaleFloor));
  const widthAbsolute = conformalQuantile(absolute, 0.9);
  const widthNormalised = conformalQuantile(normalised, 0.9) * mean(tasks.map((t) => supportScale(t.support.y) + scaleFloor));
  if (widthNormalised < widthAbsolute) {
    return { shots, score: 'normalised', n: normalised.length, temperature: 1, scaleFloor, quantiles: quantilesOf(normalised), novelty };
  }
  return { shots, score: 'absolute', n: absolute.length, temperature: 1, quantiles: quantilesOf(absolute), novelty };
}

/** Validation tasks a meta-model is calibrated on per number of shots, at the end of meta-training. */
export const CALIBRATION_TASKS = 300;
/** Shots every meta-model is calibrated for, besides the shots it was trained with. */
export const CALIBRATION_SHOTS: readonly number[] = [1, 5, 10];

/** What meta-training's end calibrates: CALIBRATION_SHOTS and the trained shots, on CALIBRATION_TASKS tasks. */
export function calibrationSettingsFor(hyper: { shots: number; queryShots: number; seed: number }): CalibrationSettings {
  return { shots: [...new Set([...CALIBRATION_SHOTS, hyper.shots])].sort((a, b) => a - b), trainedShots: hyper.shots, tasks: CALIBRATION_TASKS, queryShots: hyper.queryShots, seed: hyper.seed };
}

/**
 * Calibrates one number of shots on `family`'s validation tasks (one step of fitCalibration, so a
 * caller can yield between them). Each number of shots draws its own tasks from the seed.
 * @throws RangeError for settings that do not fit; NonFiniteError when adaptation is not finite.
 */
export function fitShots(model: MetaModel, family: TaskFamily, settings: CalibrationSettings, shots: number): FittedShots {
  const episodes = calibrationEpisodes(model, family, settings, shots);
  return fittedShots(model.spec.kind, shots, scoreTasks(model, episodes, settings.engine));
}

/** {@link fitShots}, yielding to the event loop between chunks of tasks (for a worker: src/util/yielding.ts). */
export async function fitShotsYielding(model: MetaModel, family: TaskFamily, settings: CalibrationSettings, shots: number): Promise<FittedShots> {
  const episodes = calibrationEpisodes(model, family, settings, shots);
  return fittedShots(model.spec.kind, shots, (await drainYielding(scoreTaskChunks(model, episodes, settings.engine))).flat());
}

/** One number of shots' calibration, with its validation queries' standardised novelty. */
export interface FittedShots {
  calibration: ShotsCalibration;
  inTask: number[];
}

function calibrationEpisodes(model: MetaModel, family: TaskFamily, settings: CalibrationSettings, shots: number): { support: Examples; query: Examples }[] {
  if (!Number.isInteger(shots) || shots < 1) throw new RangeError(`calibration shots must be positive integers, got ${shots}`);
  const ways = model.spec.kind === 'classification' ? model.spec.outputDim : undefined;
  const rng = new Rng(settings.seed + 104_729 * shots);
  return Array.from({ length: settings.tasks }, () => family.sampleEpisode(rng, 'val', { shots, queryShots: settings.queryShots, ways }));
}

function fittedShots(kind: TaskKind, shots: number, scored: ScoredTask[]): FittedShots {
  const calibration = calibrateShots(kind, shots, scored);
  return { calibration, inTask: scored.flatMap((t) => t.distances.map((d) => standardNovelty(d, calibration))) };
}

/** The calibration of several numbers of shots (fitShots' results, in ascending shots). */
export function assembleCalibration(kind: TaskKind, settings: CalibrationSettings, fitted: readonly FittedShots[]): Calibration {
  const byShots = fitted.map((f) => f.calibration).sort((a, b) => a.shots - b.shots);
  const inTask = fitted.flatMap((f) => f.inTask);
  const trained = byShots.find((c) => c.shots === settings.trainedShots) ?? byShots[0];
  const threshold = conformalQuantile(sortScores(inTask), 1 - NOVELTY_FALSE_ABSTAIN);
  return {
    kind,
    temperature: trained.temperature,
    levels: [...COVERAGE_LEVELS],
    noveltyThreshold: Number.isFinite(threshold) ? threshold : Math.max(...inTask),
    tasks: settings.tasks,
    queryShots: settings.queryShots,
    byShots,
  };
}

/**
 * Fits a calibration on `family`'s validation tasks (see the module comment).
 * @throws RangeError for settings that do not fit; NonFiniteError when adaptation is not finite.
 */
export function fitCalibration(model: MetaModel, family: TaskFamily, settings: CalibrationSettings): Calibration {
  const shotsList = [...new Set(settings.shots)].sort((a, b) => a - b);
  if (shotsList.length === 0) throw new RangeError('calibration needs at least one number of shots');
  return assembleCalibration(model.spec.kind, settings, shotsList.map((shots) => fitShots(model, family, settings, shots)));
}

/** A distance to the support set standardised by the validation tasks of that many shots. */
export function standardNovelty(distance: number, calibration: Pick<ShotsCalibration, 'novelty'>): number {
  return (distance - calibration.novelty.mean) / calibration.novelty.std;
}

/**
 * The calibration for a head adapted from `shots` examples (per class): the most shots calibrated
 * that do not exceed it (fewer shots give wider intervals, so never narrower than earned), else the
 * fewest calibrated.
 */
export function calibrationForShots(calibration: Calibration, shots: number): ShotsCalibration {
  const below = calibration.byShots.filter((c) => c.shots <= shots);
  return below.length > 0 ? below[below.length - 1] : calibration.byShots[0];
}

/**
 * The stored quantile for `coverage`: the smallest stored level at least as high (conservative).
 * Infinity where the calibration had too few scores for it.
 * @throws RangeError for a coverage above every stored level.
 */
export function quantileFor(calibration: Pick<Calibration, 'levels'>, shots: Pick<ShotsCalibration, 'quantiles'>, coverage: number): number {
  const i = calibration.levels.findIndex((level) => level >= coverage - 1e-9);
  if (i < 0) throw new RangeError(`coverage ${coverage} is above the highest calibrated level ${calibration.levels[calibration.levels.length - 1]}`);
  return shots.quantiles[i] ?? Infinity;
}

/** A regression interval's half-width for a task: the quantile, times the task's scale for a normalised score. */
export function halfWidth(shots: ShotsCalibration, q: number, supportY: ArrayLike<number>): number {
  return shots.score === 'normalised' ? q * (supportScale(supportY) + (shots.scaleFloor ?? 0)) : q;
}
