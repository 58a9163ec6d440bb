/**
 * Knowing when not to answer, at serving time: a predict request with `coverage` adds conformal
 * intervals (regression) or prediction sets (classification), and with `novelty` a standardised
 * distance of each input to the head's support set in the body's embedding and `abstain` where it
 * passes the meta-model's threshold (src/meta/calibration.ts). Without either field the answer is
 * untouched, and nothing here runs.
 *
 * What a head needs beyond its network (its meta-model's calibration, the support set it was
 * adapted on, that set's embedding) is computed once per served head and kept beside it in a
 * WeakMap: it leaves memory with the head when the predict cache drops it (a new version, eviction),
 * so it needs no invalidation of its own.
 */
import { calibrationForShots, halfWidth, nearestDistances, predictionSet, quantileFor, standardNovelty, temperatureScale, type Calibration, type MetaModel, type Prediction } from '../meta/index.js';
import type { Examples } from '../meta/index.js';
import { embedNetwork, runNetwork, runNetworkWithEmbedding } from '../meta/predict-arrays.js';
import type { ServedHead } from './predict-cache.js';
import { HttpProblem } from './problem.js';

/** The request's fields (both optional). */
export interface UncertaintyOptions {
  coverage?: number;
  novelty?: boolean;
}

/** What a served head adds to answer coverage and novelty. */
interface HeadContext {
  calibration: Calibration;
  /** Support examples per class (classification) or in all (regression). */
  shots: number;
  supportY: Float32Array;
  supportEmbedding: { dim: number; values: Float64Array };
}

export interface UncertaintySources {
  /** The meta-model (decoded, cached) a head was adapted from. */
  metaModel(id: string): Promise<MetaModel | null>;
  /** The support set of a head version, or null when none is stored. */
  headSupport(tenantId: string, taskId: string, version: number): Promise<Examples | null>;
}

/** The fields an answer gains. */
export interface UncertaintyAnswer {
  intervals?: [number, number][];
  sets?: (number | string)[][];
  novelty?: number[];
  abstain?: boolean[];
}

function notCalibrated(metaModelId: string): HttpProblem {
  return new HttpProblem(409, `meta-model ${metaModelId} has no calibration (it was stored before calibration existed, or it could not be fitted): meta-train it again for coverage and novelty`, {
    title: 'Meta-model not calibrated',
    extensions: { metaModelId },
  });
}

export class PredictUncertainty {
  private readonly contexts = new WeakMap<ServedHead, Promise<HeadContext>>();

  constructor(private readonly sources: UncertaintySources) {}

  /** Whether the request asks for anything (otherwise the route answers exactly as without this module). */
  static wanted(options: UncertaintyOptions): boolean {
    return options.coverage !== undefined || options.novelty === true;
  }

  private context(head: ServedHead): Promise<HeadContext> {
    let found = this.contexts.get(head);
    if (!found) {
      found = this.load(head);
      // A failed load (no calibration, Postgres away) is not remembered: the next request tries again.
      found.catch(() => this.contexts.delete(head));
      this.contexts.set(head, found);
    }
    return found;
  }

  private async load(head: ServedHead): Promise<HeadContext> {
    const model = await this.sources.metaModel(head.metaModelId);
    if (!model?.calibration) throw notCalibrated(head.metaModelId);
    const support = await this.sources.headSupport(head.tenantId, head.taskId, head.headVersion);
    if (!support) {
      throw new HttpProblem(409, `head version ${head.headVersion} of task ${head.taskId} has no stored support set to measure coverage or novelty against; adapt the task again`, {
        title: 'Head without support set',
        extensions: { taskId: head.taskId, headVersion: head.headVersion },
      });
    }
    const ways = model.spec.kind === 'classification' ? model.spec.outputDim : 1;
    return { calibration: model.calibration, shots: Math.max(1, Math.floor(support.n / ways)), supportY: support.y, supportEmbedding: embedNetwork(head.network, support.x) };
  }

  /**
   * `head`'s prediction of inputs `x` (row-major) and the fields `options` asks for. With novelty the
   * body runs once for both (runNetworkWithEmbedding).
   * @throws HttpProblem 409 when the meta-model has no calibration, the head no stored support set,
   *   or the calibration too few scores for the coverage asked.
   */
  async predict(head: ServedHead, x: Float64Array, options: UncertaintyOptions): Promise<{ prediction: Prediction; fields: UncertaintyAnswer }> {
    const context = await this.context(head);
    if (!options.novelty) {
      const prediction = runNetwork(head.network, x);
      return { prediction, fields: this.fields(head, context, prediction, undefined, options) };
    }
    const { prediction, embedding } = runNetworkWithEmbedding(head.network, x);
    return { prediction, fields: this.fields(head, context, prediction, embedding, options) };
  }

  private fields(head: ServedHead, context: HeadContext, prediction: Prediction, embedded: { dim: number; values: Float64Array } | undefined, options: UncertaintyOptions): UncertaintyAnswer {
    const shots = calibrationForShots(context.calibration, context.shots);
    const out: UncertaintyAnswer = {};
    if (options.coverage !== undefined) {
      const q = quantileFor(context.calibration, shots, options.coverage);
      if (prediction.kind === 'classification') {
        // An infinite quantile (too few scores) is the honest answer: every class.
        const sets = prediction.probabilities.map((p) => predictionSet(temperatureScale(p, shots.temperature), q));
        // A task with class names answers them, as its predictions' `label` does.
        const { labels } = head;
        out.sets = labels ? sets.map((set) => set.map((index) => labels[index] ?? index)) : sets;
      } else {
        if (!Number.isFinite(q)) throw new HttpProblem(409, `the calibration holds too few scores for coverage ${options.coverage} at ${shots.shots} shots`, { title: 'Coverage not calibrated' });
        const h = halfWidth(shots, q, context.supportY);
        out.intervals = prediction.values.map((v) => [v - h, v + h]);
      }
    }
    if (embedded) {
      const scores = nearestDistances(embedded.values, context.supportEmbedding.values, context.supportEmbedding.dim).map((d) => standardNovelty(d, shots));
      out.novelty = scores;
      out.abstain = scores.map((s) => s > context.calibration.noveltyThreshold);
    }
    return out;
  }
}
