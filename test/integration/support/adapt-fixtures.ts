/**
 * Meta-models for the task, adapt and predict tests, stored straight through Prisma as the worker
 * would after meta-training (how meta-training writes them is tested elsewhere): a briefly
 * meta-trained MAML sinusoid model, or untrained models of any algorithm and shape.
 */
import { randomUUID } from 'node:crypto';
import type { Db, Prisma } from '../../../src/db/client.js';
import { gaussianBlobs, sinusoid } from '../../../src/meta/families/index.js';
import {
  ALGORITHMS,
  encodeParams,
  initMetaParams,
  MetaLearner,
  modelConfigOf,
  modelSpec,
  packEpisodes,
  Rng,
  type Activation,
  type AlgorithmName,
  type LearnerConfig,
  type ParamArrays,
} from '../../../src/meta/index.js';

export interface StoredModelOptions {
  name?: string;
  algorithm?: AlgorithmName;
  kind?: 'regression' | 'classification';
  inputDim?: number;
  nWay?: number;
  hidden?: number[];
  /** A conv body over images of this [height, width, channels] (inputDim must match) instead of the MLP. */
  conv?: { inputShape: number[]; channels: number[] };
  /** Hidden-layer nonlinearity. Default relu. */
  activation?: Activation;
  /** The inner loop it was "meta-trained" with: adaptation's defaults. Default 5 steps of 0.01. */
  inner?: { steps: number; lr: number };
  /** Meta-parameters; default a fresh initialisation. */
  params?: ParamArrays;
}

/** Stores a succeeded job and its meta-model (version 1 of `name`, alias latest); returns the ids. */
export async function storeMetaModel(db: Db, tenantId: string, options: StoredModelOptions = {}) {
  const { algorithm = 'maml', kind = 'regression', inputDim = 1, hidden = [40, 40], activation = 'relu', inner = { steps: 5, lr: 0.01 } } = options;
  const name = options.name ?? `model-${randomUUID().slice(0, 8)}`;
  const nWay = kind === 'classification' ? (options.nWay ?? 3) : undefined;
  const spec = modelSpec(kind, inputDim, options.conv ? { body: 'conv', ...options.conv, activation } : { hidden, activation }, nWay);
  const params = options.params ?? ALGORITHMS[algorithm].initMetaParams(spec, new Rng(1), inner);
  const hyper = { iterations: 1, metaBatchSize: 4, shots: 10, queryShots: 10, innerSteps: inner.steps, innerLr: inner.lr, metaLr: 0.001, evalEvery: 1, checkpointEvery: 1, seed: 1 };
  const model = modelConfigOf(spec) as unknown as Prisma.InputJsonValue;
  const job = await db.prisma.metaTrainJob.create({
    data: { tenantId, name, status: 'succeeded', algorithm, familyIds: [], model, hyper, iteration: 1, iterations: 1, finishedAt: new Date() },
  });
  const row = await db.prisma.metaModel.create({
    data: {
      tenantId, name, version: 1, jobId: job.id, algorithm, kind, inputDim, nWay: nWay ?? null, model, innerSteps: inner.steps, innerLr: inner.lr, metrics: {},
      params: new Uint8Array(encodeParams(params)),
    },
  });
  await db.prisma.metaModelAlias.create({ data: { tenantId, name, alias: 'latest', metaModelId: row.id } });
  return { metaModelId: row.id, name, algorithm, spec, params, inner };
}

/**
 * MAML meta-parameters for sinusoids (1-40-40-1, one inner step of 0.01), meta-trained for
 * `iterations` outer steps: a few hundred are enough for 10-shot adaptation to clearly beat the
 * unadapted model on a new sine.
 */
export function trainSineMaml(iterations = 300): ParamArrays {
  return trainSine('maml', iterations, { metaLr: 0.003, metaBatchSize: 8 });
}

/** Meta-parameters of `algorithm` for sinusoids (1-40-40-1, one inner step of 0.01, seed 1). */
export function trainSine(algorithm: AlgorithmName, iterations: number, outer: { metaLr: number; metaBatchSize: number }): ParamArrays {
  const config: LearnerConfig = { algorithm, spec: modelSpec('regression', 1, { hidden: [40, 40] }), inner: { steps: 1, lr: 0.01 }, metaLr: outer.metaLr };
  const learner = new MetaLearner(config, initMetaParams(config, new Rng(1)));
  const family = sinusoid();
  const rng = new Rng(2);
  try {
    for (let i = 0; i < iterations; i++) {
      learner.metaStep(packEpisodes(Array.from({ length: outer.metaBatchSize }, () => family.sampleEpisode(rng, 'train', { shots: 10, queryShots: 10 }))));
    }
    return learner.exportParams();
  } finally {
    learner.dispose();
  }
}

/**
 * A new sine task y = amplitude * sin(x - phase): `shots` support points drawn in [-5, 5] and a query
 * grid of 50 evenly spaced points with the true curve.
 */
export function sineTask(seed: number, amplitude = 4, phase = 1, shots = 10) {
  const rng = new Rng(seed);
  const curve = (x: number) => amplitude * Math.sin(x - phase);
  const supportX = Array.from({ length: shots }, () => rng.uniform(-5, 5));
  const grid = Array.from({ length: 50 }, (_, i) => -5 + (10 * i) / 49);
  return {
    curve,
    support: { x: supportX.map((x) => [x]), y: supportX.map(curve) },
    query: { x: grid.map((x) => [x]), y: grid.map(curve) },
  };
}

/** A 3-way blobs task in 2-D: support and query sets with labels. */
export function blobsTask(seed: number) {
  const episode = gaussianBlobs({}, { inputDim: 2, ways: 3 }).sampleEpisode(new Rng(seed), 'test', { shots: 5, queryShots: 10, ways: 3 });
  const rows = (x: Float32Array) => Array.from({ length: x.length / 2 }, (_, i) => [x[2 * i], x[2 * i + 1]]);
  return {
    support: { x: rows(episode.support.x), y: Array.from(episode.support.y) },
    query: { x: rows(episode.query.x), y: Array.from(episode.query.y) },
  };
}

/** Mean squared error. */
export function mse(predictions: number[], targets: number[]): number {
  return predictions.reduce((sum, p, i) => sum + (p - targets[i]) ** 2, 0) / targets.length;
}
