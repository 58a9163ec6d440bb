/**
 * How well a meta-model's calibration (calibration.ts) holds on held-out tasks: the empirical
 * coverage of its intervals or sets at a nominal level and their mean width or size, the expected
 * calibration error of its probabilities before and after the temperature, and the AUROC of its
 * novelty score at telling inputs from outside the task (classes the task does not have; for
 * regression, inputs beyond the range the family draws) from the task's own query inputs.
 */

import type { MetaModel } from './adapt.js';
import { calibrationForShots, halfWidth, nearestDistances, quantileFor, scoreTasks, standardNovelty, type Calibration, type ScoredTask } from './calibration.js';
import { auroc, expectedCalibrationError, predictionSet, temperatureScale } from './conformal.js';
import type { EnginePreference } from './engine.js';
import { embedNetwork } from './predict-arrays.js';
import type { Rng } from './rng.js';
import type { Episode, Examples, TaskFamily } from './types.js';

/** The nominal coverage evaluations measure. */
export const EVALUATION_COVERAGE = 0.9;

export interface CalibrationMetrics {
  /** Share of query examples inside their interval or set at EVALUATION_COVERAGE. */
  coverage: number;
  /** Regression: mean interval width. */
  width?: number;
  /** Classification: mean set size. */
  setSize?: number;
  /** Classification: expected calibration error of the probabilities as served and after the temperature. */
  ece?: { before: number; after: number };
  /** Novelty's AUROC, outside inputs against the task's own; absent where the family cannot draw outside inputs. */
  noveltyAuroc?: number;
}

/** Coverage, width or set size and ECE of scored tasks under `calibration`. */
export function coverageMetrics(calibration: Calibration, shots: number, tasks: readonly ScoredTask[], coverage = EVALUATION_COVERAGE): CalibrationMetrics {
  const c = calibrationForShots(calibration, shots);
  const q = quantileFor(calibration, c, coverage);
  let covered = 0;
  let total = 0;
  let size = 0;
  if (calibration.kind === 'regression') {
    for (const t of tasks) {
      const h = halfWidth(c, q, t.support.y);
      t.values.forEach((v, i) => {
        if (Math.abs(t.query.y[i] - v) <= h) covered++;
        size += 2 * h;
        total++;
      });
    }
    return { coverage: covered / total, width: size / total };
  }
  const before: number[][] = [];
  const after: number[][] = [];
  const labels: number[] = [];
  for (const t of tasks) {
    t.probabilities.forEach((p, i) => {
      const scaled = temperatureScale(p, c.temperature);
      const set = predictionSet(scaled, q);
      if (set.includes(t.query.y[i])) covered++;
      size += set.length;
      total++;
      before.push(p);
      after.push(scaled);
      labels.push(t.query.y[i]);
    });
  }
  return { coverage: covered / total, setSize: size / total, ece: { before: expectedCalibrationError(before, labels), after: expectedCalibrationError(after, labels) } };
}

/** The rows of `examples` whose label passes `keep`. */
function rowsWhere(examples: Examples, inputDim: number, keep: (label: number) => boolean): Examples {
  const rows = Array.from({ length: examples.n }, (_, i) => i).filter((i) => keep(examples.y[i]));
  const x = new Float32Array(rows.length * inputDim);
  rows.forEach((r, j) => x.set(examples.x.subarray(r * inputDim, (r + 1) * inputDim), j * inputDim));
  return { x, y: Float32Array.from(rows, (r) => examples.y[r]), n: rows.length };
}

/**
 * Classification episodes of `ways` classes plus outside ones: drawn with more ways (up to twice
 * as many, as many as the family has), the first `ways` classes are the task, the others' queries
 * the outside inputs. Null when the family cannot draw a single extra class.
 */
function episodesWithOutside(family: TaskFamily, rng: Rng, count: number, shots: number, queryShots: number, ways: number): { episode: Episode; outside: Examples }[] | null {
  for (let total = 2 * ways; total > ways; total--) {
    let first: Episode;
    try {
      first = family.sampleEpisode(rng, 'test', { shots, queryShots, ways: total });
    } catch {
      continue;
    }
    const draw = (e: Episode) => ({
      episode: { support: rowsWhere(e.support, family.inputDim, (y) => y < ways), query: rowsWhere(e.query, family.inputDim, (y) => y < ways) },
      outside: rowsWhere(e.query, family.inputDim, (y) => y >= ways),
    });
    return [draw(first), ...Array.from({ length: count - 1 }, () => draw(family.sampleEpisode(rng, 'test', { shots, queryShots, ways: total })))];
  }
  return null;
}

/**
 * Regression inputs outside the range the tasks' queries span: each query input moved by the span's
 * width away from its centre, per dimension, so it lies at least half a width beyond the range.
 */
function outsideInputs(tasks: readonly ScoredTask[], inputDim: number): Float32Array[] {
  const lo = new Array<number>(inputDim).fill(Infinity);
  const hi = new Array<number>(inputDim).fill(-Infinity);
  for (const t of tasks) {
    t.query.x.forEach((v, i) => {
      lo[i % inputDim] = Math.min(lo[i % inputDim], v);
      hi[i % inputDim] = Math.max(hi[i % inputDim], v);
    });
  }
  return tasks.map((t) => t.query.x.map((v, i) => {
    const d = i % inputDim;
    const centre = (lo[d] + hi[d]) / 2;
    return v + (v >= centre ? 1 : -1) * (hi[d] - lo[d]);
  }));
}

function standardDistances(calibration: Calibration, shots: number, task: ScoredTask, x: Float32Array): number[] {
  const c = calibrationForShots(calibration, shots);
  const embedded = embedNetwork(task.network, x);
  return nearestDistances(embedded.values, task.supportEmbedding.values, task.supportEmbedding.dim).map((d) => standardNovelty(d, c));
}

/**
 * Novelty AUROC on `count` held-out tasks of `shots`: outside inputs (positives) against the tasks'
 * own queries (negatives), pooled over tasks (the scores are standardised, so they compare across
 * tasks). Regression reuses `scored` tasks; classification draws its own (with outside classes).
 */
export function noveltyAuroc(model: MetaModel, family: TaskFamily, calibration: Calibration, shots: number, options: { scored: readonly ScoredTask[]; rng: Rng; queryShots: number; engine?: EnginePreference }): number | undefined {
  const c = calibrationForShots(calibration, shots);
  const inside: number[] = [];
  const outside: number[] = [];
  if (model.spec.kind === 'regression') {
    const xs = outsideInputs(options.scored, family.inputDim);
    options.scored.forEach((t, i) => {
      inside.push(...t.distances.map((d) => standardNovelty(d, c)));
      outside.push(...standardDistances(calibration, shots, t, xs[i]));
    });
    return auroc(outside, inside);
  }
  const drawn = episodesWithOutside(family, options.rng, options.scored.length, shots, options.queryShots, model.spec.outputDim);
  if (!drawn) return undefined;
  const scored = scoreTasks(model, drawn.map((d) => d.episode), options.engine);
  scored.forEach((t, i) => {
    inside.push(...t.distances.map((d) => standardNovelty(d, c)));
    outside.push(...standardDistances(calibration, shots, t, drawn[i].outside.x));
  });
  return auroc(outside, inside);
}
