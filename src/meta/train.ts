/**
 * Meta-training as an interruptible async generator. Each outer-loop iteration draws a meta-batch of
 * training episodes (an algorithm that trains on a task pool: a minibatch of `metaBatchSize` pool
 * tasks), takes one meta-step, and yields progress; every `evalEvery` iterations (and after the
 * last) it measures post-adaptation loss (and accuracy) on held-out 'val' tasks, the same tasks each
 * time, and keeps the best evaluation's meta-parameters (selection.ts), which the result holds with
 * `keepBest`; every `checkpointEvery` iterations it yields a checkpoint (parameters, Adam state, rng
 * state, the best so far) from which a resumed run continues exactly as the uninterrupted one would
 * have. It yields to the event loop after every iteration so a BullMQ worker keeps renewing its lock.
 */

import { getAlgorithm, POOL_PREFIX, type AlgorithmName } from './algorithms/index.js';
import type { AdamState } from './adam.js';
import type { MetaModel } from './adapt.js';
import { mix, packEpisodes, samplePoolBatch, type WeightedFamily } from './families/index.js';
import type { EngineName, EnginePreference } from './engine.js';
import { meanCi } from './evaluation.js';
import { DEFAULT_HYPER, HYPER_FIELDS, HYPER_NAMES, type HyperField, type HyperParams } from './hyper.js';
import { initMetaParams, MetaLearner, NonFiniteError, type Evaluation, type LearnerConfig } from './learner.js';
import { copyArrays, embeddingDim, modelSpec, type ModelConfig, type ParamArrays } from './model.js';
import { Rng } from './rng.js';
import { improves, type MetricsPoint } from './selection.js';
import type { EpisodeBatch, EpisodeShape, Split, TaskFamily, TaskPool, TrainingBatch } from './types.js';

export interface TrainConfig {
  algorithm: AlgorithmName;
  model?: ModelConfig;
  /** Where tasks come from: weighted families (multi-task meta-learning) or one family. */
  families: readonly WeightedFamily[] | TaskFamily;
  hyper?: Partial<HyperParams>;
  /** Which engine runs the meta-steps and evaluations. Default 'auto' (see chooseEngine). */
  engine?: EnginePreference;
}

/** Everything a resumed run needs, as plain data. */
export interface Checkpoint {
  /** Iterations completed. */
  iteration: number;
  /** The meta-parameters, and a pool algorithm's pool parameters (which the meta-model leaves out). */
  params: ParamArrays;
  optimizer: AdamState;
  /** State of the training-task rng after `iteration` meta-batches. */
  rngState: number;
  /** Training loss accumulated since the last evaluation (so metrics match an uninterrupted run). */
  pendingLoss: { sum: number; count: number };
  /** The best validation evaluation so far and its meta-parameters (absent before the first evaluation). */
  best?: BestEvaluation;
}

/** The best validation evaluation of a run so far (selection.ts) and the meta-parameters it measured. */
export interface BestEvaluation {
  point: MetricsPoint;
  /** The meta-parameters alone (what a meta-model holds), as they were at `point.iteration`. */
  params: ParamArrays;
}

export interface TrainOptions {
  /** Continue from a checkpoint of a run with the same configuration. */
  resumeFrom?: Checkpoint;
  /** Aborting stops training with a TrainingAbortedError before the next iteration. */
  signal?: AbortSignal;
  /**
   * Hand over the state after the last iteration with the result (`result.checkpoint`): a study's
   * trial keeps it, so that promoting the trial resumes this run for more iterations.
   */
  checkpointAtEnd?: boolean;
}

export type { MetricsPoint } from './selection.js';

export type TrainEvent =
  | { type: 'progress'; iteration: number; iterations: number }
  /** One evaluation, and the best one so far (this one, or an earlier one). */
  | ({ type: 'metrics'; best: MetricsPoint } & MetricsPoint)
  | { type: 'checkpoint'; checkpoint: Checkpoint }
  | {
      type: 'result';
      /** Iterations run (all of them). */
      iteration: number;
      /** The best evaluation's meta-parameters with keepBest, else the last iteration's. */
      model: MetaModel;
      /** The evaluation of `model`'s parameters: the best one with keepBest, else the last. */
      evaluation: MetricsPoint;
      /** The run's last evaluation (after its last iteration). */
      last: MetricsPoint;
      /** The run's best evaluation, whether or not `model` holds it. */
      best: MetricsPoint;
      /** `model` holds the best evaluation's parameters (keepBest). */
      keptBest: boolean;
      /** The state after the last iteration (only with `checkpointAtEnd`), to resume from with more iterations. */
      checkpoint?: Checkpoint;
      /** The engine the meta-steps and evaluations ran on (chooseEngine). */
      engine: EngineName;
      valLoss: number;
      valAccuracy?: number;
    };

/** A configuration field is invalid; `field` is its path (e.g. `hyper.metaBatchSize`). */
export class TrainConfigError extends RangeError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'TrainConfigError';
  }
}

/** Training stopped because its AbortSignal fired. */
export class TrainingAbortedError extends Error {
  /**
   * @param iteration - iterations completed.
   * @param checkpoint - the state after `iteration`, to resume from exactly (absent when no iteration
   *   completed in this run: the state is then the one it started from).
   */
  constructor(
    readonly iteration: number,
    readonly checkpoint?: Checkpoint,
  ) {
    super(`meta-training aborted after ${iteration} iterations`);
    this.name = 'TrainingAbortedError';
  }
}

/**
 * Fills defaults and checks every declared field (HYPER_FIELDS) against its kind and lower bound,
 * and, given the algorithm, the fields that only some algorithms take; upper bounds are service
 * limits, checked by the HTTP schema.
 * @throws TrainConfigError naming the field.
 */
export function resolveHyper(partial: Partial<HyperParams> = {}, algorithm?: AlgorithmName): HyperParams {
  const hyper: HyperParams = { ...DEFAULT_HYPER, ...Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined)) };
  for (const name of HYPER_NAMES) {
    const field: HyperField = HYPER_FIELDS[name];
    const value: unknown = hyper[name];
    if (value === undefined) continue;
    if (field.type === 'boolean') {
      if (typeof value !== 'boolean') throw new TrainConfigError(`hyper.${name}`, `must be true or false, got ${String(value)}`);
    } else if (field.type === 'integer') {
      const min = field.min ?? 1;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < min) throw new TrainConfigError(`hyper.${name}`, `must be an integer >= ${min}, got ${String(value)}`);
    } else if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new TrainConfigError(`hyper.${name}`, `must be a positive number, got ${String(value)}`);
    }
  }
  if (algorithm && hyper.zeroHead && !getAlgorithm(algorithm).metaTrainsHead) {
    throw new TrainConfigError('hyper.zeroHead', `${algorithm} meta-learns no head (each task's is built from its support set): there is no head to start at zero`);
  }
  return hyper;
}

/** The one family a configuration's families make (several mixed by their weights), as meta-training draws from it. */
export function taskSource(families: TrainConfig['families']): TaskFamily {
  if (!Array.isArray(families)) return families as TaskFamily;
  if (families.length === 0) throw new TrainConfigError('families', 'at least one family is required');
  return families.length === 1 ? families[0].family : mix(families);
}

/** A training run fully resolved: what each iteration needs. */
interface Plan {
  family: TaskFamily;
  hyper: HyperParams;
  learner: LearnerConfig;
  shape: EpisodeShape;
}

function plan(config: TrainConfig): Plan {
  const hyper = resolveHyper(config.hyper, config.algorithm);
  const family = taskSource(config.families);
  let ways: number | undefined;
  if (family.kind === 'classification') {
    ways = hyper.ways ?? family.ways;
    if (ways === undefined) throw new TrainConfigError('hyper.ways', 'classification needs a number of ways');
  }
  let spec;
  try {
    spec = modelSpec(family.kind, family.inputDim, config.model, ways);
  } catch (err) {
    throw new TrainConfigError('model', (err as Error).message);
  }
  return {
    family,
    hyper,
    learner: {
      algorithm: config.algorithm,
      spec,
      inner: { steps: hyper.innerSteps, lr: hyper.innerLr },
      metaLr: hyper.metaLr,
      clipNorm: hyper.clipNorm,
      zeroHead: hyper.zeroHead,
      engine: config.engine,
    },
    shape: { shots: hyper.shots, queryShots: hyper.queryShots, ways },
  };
}

function sampleBatch(p: Plan, rng: Rng, split: Split, tasks: number): EpisodeBatch {
  return packEpisodes(Array.from({ length: tasks }, () => p.family.sampleEpisode(rng, split, p.shape)));
}

/**
 * Most values the pool's heads may hold (tasks x embedding x classes): 16M floats, 64 MiB, and
 * Adam keeps three more copies. The default pools hold far less (1000 x 64 x 5 for 5-way blobs).
 */
export const MAX_POOL_HEAD_VALUES = 2 ** 24;

/** A pool algorithm's fixed training tasks: drawn from `rng` for a generator family. */
function trainingPool(p: Plan, rng: Rng): TaskPool {
  if (!p.family.trainingPool) throw new TrainConfigError('families', `family '${p.family.name}' has no pool of training tasks for ${p.learner.algorithm}`);
  const pool = p.family.trainingPool(rng, p.hyper.tasks);
  const values = pool.outputs.length * embeddingDim(p.learner.spec) * Math.max(...pool.outputs);
  if (values > MAX_POOL_HEAD_VALUES) {
    throw new TrainConfigError('hyper.tasks', `the pool's heads would hold ${values} values (tasks x embedding width x classes), more than ${MAX_POOL_HEAD_VALUES}; use fewer tasks or a narrower embedding`);
  }
  return pool;
}

/**
 * One iteration's training batch: a meta-batch of episodes, or a minibatch of `metaBatchSize` pool
 * tasks with as many examples each as an episode holds (support and query: the same data per
 * iteration as the episodic algorithms see).
 */
function trainingBatch(p: Plan, rng: Rng, pool: TaskPool | undefined): TrainingBatch {
  if (!pool) return sampleBatch(p, rng, 'train', p.hyper.metaBatchSize);
  const examples = (p.shape.shots + p.shape.queryShots) * (p.shape.ways ?? 1);
  return samplePoolBatch(pool, rng, p.hyper.metaBatchSize, examples, p.family.inputDim);
}

/**
 * Runs meta-training, yielding progress, metrics, checkpoints and finally the meta-model.
 * @throws TrainConfigError for an invalid configuration (before the first iteration).
 * @throws NonFiniteError when a loss, meta-gradient or optimiser step is not finite (parameters are never updated with it).
 * @throws TrainingAbortedError when `options.signal` aborts, carrying the last completed iteration's checkpoint.
 */
export async function* metaTrain(config: TrainConfig, options: TrainOptions = {}): AsyncGenerator<TrainEvent, void, void> {
  const p = plan(config);
  const { hyper } = p;
  const seedRng = new Rng(hyper.seed);
  // Independent streams: initialisation, training tasks, evaluation episodes.
  const initRng = seedRng.fork();
  let rng = seedRng.fork();
  const valBatch = sampleBatch(p, seedRng.fork(), 'val', hyper.evalTasks);
  // A pool algorithm's tasks and the initial values of their heads come from a stream of their own.
  const algorithm = getAlgorithm(p.learner.algorithm);
  let pool: TaskPool | undefined;
  let initAll = (rng: Rng) => initMetaParams(p.learner, rng);
  if (algorithm.trainsOn === 'pool') {
    const taskPool = trainingPool(p, seedRng.fork());
    pool = taskPool;
    initAll = (rng) => ({ ...initMetaParams(p.learner, rng), ...algorithm.initPoolParams(p.learner.spec, taskPool.outputs, rng) });
  }
  const resume = options.resumeFrom;
  let start = 0;
  let pending = { sum: 0, count: 0 };
  let best: BestEvaluation | undefined;
  let learner: MetaLearner;
  if (resume) {
    // A checkpoint comes before the last iteration (after it, the result follows instead).
    if (!Number.isInteger(resume.iteration) || resume.iteration < 0 || resume.iteration >= hyper.iterations) {
      throw new TrainConfigError('resumeFrom.iteration', `must be an integer in [0, ${hyper.iterations - 1}], got ${resume.iteration}`);
    }
    const expected = initAll(new Rng(0));
    for (const [name, { data }] of Object.entries(expected)) {
      if (resume.params[name]?.data.length !== data.length) throw new TrainConfigError('resumeFrom.params', `parameter '${name}' is missing or has the wrong size for this configuration`);
    }
    if (resume.best) {
      const bestParams = resume.best.params;
      const metaNames = Object.keys(expected).filter((name) => !name.startsWith(POOL_PREFIX));
      if (Object.keys(bestParams).length !== metaNames.length || metaNames.some((name) => bestParams[name]?.data.length !== expected[name].data.length)) {
        throw new TrainConfigError('resumeFrom.best.params', "the best evaluation's meta-parameters do not fit this configuration");
      }
      best = { point: { ...resume.best.point }, params: copyArrays(bestParams) };
    }
    learner = new MetaLearner(p.learner, resume.params, resume.optimizer);
    rng = Rng.fromState(resume.rngState);
    start = resume.iteration;
    pending = { ...resume.pendingLoss };
  } else {
    learner = new MetaLearner(p.learner, initAll(initRng));
  }
  // The state between iterations: what a checkpoint event, or an abort, hands over.
  const checkpointAt = (iteration: number): Checkpoint => ({
    iteration,
    params: learner.exportParams(),
    optimizer: learner.exportOptimizer(),
    rngState: rng.getState(),
    pendingLoss: { ...pending },
    ...(best ? { best: { point: { ...best.point }, params: copyArrays(best.params) } } : {}),
  });
  try {
    let last: MetricsPoint | undefined;
    for (let iteration = start + 1; iteration <= hyper.iterations; iteration++) {
      if (options.signal?.aborted) {
        const completed = iteration - 1;
        throw new TrainingAbortedError(completed, completed > start ? checkpointAt(completed) : undefined);
      }
      const batch = trainingBatch(p, rng, pool);
      let loss: number;
      try {
        loss = learner.metaStep(batch);
      } catch (err) {
        if (err instanceof NonFiniteError) throw new NonFiniteError(`iteration ${iteration}: ${err.message}`);
        throw err;
      }
      pending.sum += loss;
      pending.count += 1;
      yield { type: 'progress', iteration, iterations: hyper.iterations };
      if (iteration % hyper.evalEvery === 0 || iteration === hyper.iterations) {
        last = metricsPoint(iteration, pending.sum / pending.count, await learner.evaluateYielding(valBatch));
        // The first evaluation always improves on none (evaluate refuses non-finite scores), so `best` is set from here on.
        if (!best || improves(last, best.point, p.family.kind)) best = { point: last, params: learner.exportMetaParams() };
        yield { type: 'metrics', ...last, best: best.point };
        pending = { sum: 0, count: 0 };
      }
      if (iteration % hyper.checkpointEvery === 0 && iteration < hyper.iterations) yield { type: 'checkpoint', checkpoint: checkpointAt(iteration) };
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    // The last iteration always evaluates (and a resumed run runs at least it), so `last` and `best` are set.
    if (!last || !best) throw new Error('meta-training ended without an evaluation at its last iteration');
    const kept = hyper.keepBest ? best : { point: last, params: learner.exportMetaParams() };
    const model: MetaModel = { algorithm: p.learner.algorithm, spec: p.learner.spec, params: kept.params, inner: { ...p.learner.inner } };
    const { valLoss, valAccuracy } = kept.point;
    yield {
      type: 'result',
      iteration: hyper.iterations,
      model,
      evaluation: kept.point,
      last,
      best: best.point,
      keptBest: hyper.keepBest,
      engine: learner.engine,
      ...(options.checkpointAtEnd ? { checkpoint: checkpointAt(hyper.iterations) } : {}),
      valLoss,
      ...(valAccuracy === undefined ? {} : { valAccuracy }),
    };
  } finally {
    learner.dispose();
  }
}

/** An evaluation as a metrics point: the means over the validation tasks with their 95% intervals. */
function metricsPoint(iteration: number, trainLoss: number, evaluation: Evaluation): MetricsPoint {
  const loss = meanCi(evaluation.taskLosses);
  const point: MetricsPoint = { iteration, trainLoss, valLoss: loss.mean, valLossCi95: loss.ci95 };
  if (evaluation.taskAccuracies) {
    const accuracy = meanCi(evaluation.taskAccuracies);
    point.valAccuracy = accuracy.mean;
    point.valAccuracyCi95 = accuracy.ci95;
  }
  return point;
}
