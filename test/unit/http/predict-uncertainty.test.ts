/**
 * Predict with novelty through a conv body served on ONNX Runtime runs the body once (its plain-JS
 * head reads the same embeddings) and answers what the earlier two-pass path answered (the
 * prediction from ONNX Runtime, the embeddings from tfjs): predictions, intervals or sets, and
 * novelty agree to 1e-5, for a calibration fitted the way meta-training fits it.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { PredictUncertainty } from '../../../src/http/predict-uncertainty.js';
import type { ServedHead } from '../../../src/http/predict-cache.js';
import { initBackend, tf } from '../../../src/meta/backend.js';
import { gaussianBlobs, linear } from '../../../src/meta/families/index.js';
import {
  ALGORITHMS,
  adapt,
  calibrationForShots,
  fitCalibration,
  modelSpec,
  nearestDistances,
  Rng,
  standardNovelty,
  taskParams,
  type AlgorithmName,
  type MetaModel,
  type Prediction,
} from '../../../src/meta/index.js';
import { ortAvailable } from '../../../src/meta/ort/index.js';
import { embedNetwork, prepareNetwork, runNetwork, runNetworkWithEmbedding } from '../../../src/meta/predict-arrays.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const IMAGE = { body: 'conv' as const, inputShape: [6, 6, 1], channels: [4, 4], activation: 'relu' as const };

/** Comparable numbers of a prediction: the values, or every class probability. */
const numbers = (p: Prediction) => (p.kind === 'regression' ? Array.from(p.values) : p.probabilities.flatMap((row) => Array.from(row)));

function expectClose(actual: readonly number[], expected: readonly number[]) {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((v, i) => expect(Math.abs(v - expected[i]), `at ${i}: ${v} vs ${expected[i]}`).toBeLessThan(1e-5));
}

describe('predict with novelty through a conv body on ONNX Runtime', () => {
  it.each([
    { name: 'ProtoNet classification', algorithm: 'protonet' as AlgorithmName, kind: 'classification' as const, family: gaussianBlobs({}, { inputDim: 36, ways: 3 }), nWay: 3 },
    { name: 'ANIL regression', algorithm: 'anil' as AlgorithmName, kind: 'regression' as const, family: linear({}, { inputDim: 36 }), nWay: undefined },
  ])('$name: one body pass, the old answers to 1e-5', async ({ algorithm, kind, family, nWay }) => {
    expect(ortAvailable()).toBe(true);
    const spec = modelSpec(kind, 36, IMAGE, nWay);
    const inner = { steps: algorithm === 'protonet' ? 0 : 3, lr: 0.01 };
    const base: MetaModel = { algorithm, spec, params: ALGORITHMS[algorithm].initMetaParams(spec, new Rng(1), inner), inner };
    const calibration = fitCalibration(base, family, { shots: [1, 5], tasks: 12, queryShots: 5, seed: 2 });
    const model: MetaModel = { ...base, calibration };
    const episode = family.sampleEpisode(new Rng(9), 'test', { shots: 5, queryShots: 8, ...(nWay ? { ways: nWay } : {}) });
    const network = prepareNetwork(spec, taskParams(model, adapt(model, episode.support).params));
    // Served on ONNX Runtime with a plain-JS head (what convServing picks wherever it loads).
    if (network.body !== 'engine' || !network.onnx) throw new Error(`expected a conv body on ONNX Runtime, got ${network.body}`);

    // No tfjs kernel at all: the body ran on ONNX Runtime only (once), the head in plain JS.
    const profile = await tf.profile(() => {
      runNetworkWithEmbedding(network, episode.query.x);
    });
    expect(profile.kernels).toEqual([]);

    const head: ServedHead = { tenantId: 't', taskId: 'task', metaModelId: 'm', headVersion: 1, network };
    const uncertainty = new PredictUncertainty({ metaModel: async () => model, headSupport: async () => episode.support });
    const x = Float64Array.from(episode.query.x);
    const answer = await uncertainty.predict(head, x, { coverage: 0.9, novelty: true });

    // The earlier path: the prediction from runNetwork, the embeddings from the engine's tfjs embed.
    const tfjsEmbedded = { ...network, head: undefined };
    const prediction = runNetwork(network, x);
    const support = embedNetwork(tfjsEmbedded, episode.support.x);
    const query = embedNetwork(tfjsEmbedded, x);
    const ways = kind === 'classification' ? nWay! : 1;
    const shots = calibrationForShots(calibration, Math.max(1, Math.floor(episode.support.n / ways)));
    const novelty = nearestDistances(query.values, support.values, support.dim).map((d) => standardNovelty(d, shots));

    expectClose(numbers(answer.prediction), numbers(prediction));
    expectClose(answer.fields.novelty!, novelty);
    expect(answer.fields.abstain).toEqual(novelty.map((s) => s > calibration.noveltyThreshold));
    if (kind === 'classification') expect(answer.fields.sets).toBeDefined();
    else expect(answer.fields.intervals).toHaveLength(episode.query.n);
  });
});
