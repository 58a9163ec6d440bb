/**
 * Does meta-learning learn? On sinusoid regression, MAML must beat the transfer-learning baseline
 * ("pretrain one network on all training tasks jointly, then fine-tune on the new task with the same
 * steps") after adaptation on held-out tasks; on 5-way 1-shot Gaussian blobs, post-adaptation
 * accuracy on held-out tasks must be far above chance (20%). Runs on wasm (the fast backend here).
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { Adam } from '../../../src/meta/adam.js';
import { adapt, predict, taskParams, type MetaModel } from '../../../src/meta/adapt.js';
import { initBackend, tf } from '../../../src/meta/backend.js';
import { gaussianBlobs, packEpisodes, sinusoid } from '../../../src/meta/families/index.js';
import { lossOn } from '../../../src/meta/inner-loop.js';
import { initModelParams, toTensors } from '../../../src/meta/model.js';
import { Rng } from '../../../src/meta/rng.js';
import { batchToTensors } from '../../../src/meta/tensors.js';
import { metaTrain, type TrainConfig } from '../../../src/meta/train.js';
import type { Episode, TaskFamily } from '../../../src/meta/types.js';

beforeAll(async () => {
  await initBackend('wasm');
});

async function train(config: TrainConfig): Promise<MetaModel> {
  for await (const e of metaTrain(config)) if (e.type === 'result') return e.model;
  throw new Error('no result');
}

/** Joint regression on all training tasks' examples with the same optimiser and budget. */
function pretrain(reference: MetaModel, family: TaskFamily, iterations: number, metaBatchSize: number, seed: number): MetaModel {
  const rng = new Rng(seed);
  const params = initModelParams(reference.spec, rng.fork());
  const names = Object.keys(params);
  const adam = new Adam({ lr: 0.001 }, params);
  for (let it = 0; it < iterations; it++) {
    const batch = packEpisodes(Array.from({ length: metaBatchSize }, () => family.sampleEpisode(rng, 'train', { shots: 10, queryShots: 10 })));
    const grads = tf.tidy(() => {
      const tensors = batchToTensors(reference.spec, batch);
      const theta = toTensors(params);
      const objective = (...p: tf.Tensor[]) => tf.mean(tf.add(lossOn(reference.spec, Object.fromEntries(names.map((n, i) => [n, p[i]])), tensors.support), lossOn(reference.spec, Object.fromEntries(names.map((n, i) => [n, p[i]])), tensors.query))) as tf.Scalar;
      return tf.grads(objective)(names.map((n) => theta[n])).map((g) => g.dataSync() as Float32Array);
    });
    adam.step(params, Object.fromEntries(names.map((n, i) => [n, grads[i]])));
  }
  return { ...reference, params };
}

function queryMse(model: MetaModel, episode: Episode, steps: number): number {
  const out = predict(model.spec, taskParams(model, adapt(model, episode.support, { steps }).params), episode.query.x);
  if (out.kind !== 'regression') throw new Error('expected regression');
  return out.values.reduce((s, v, i) => s + (v - episode.query.y[i]) ** 2, 0) / episode.query.n;
}

describe('meta-learning learns', () => {
  it('sinusoid: MAML beats pretrain-then-fine-tune on held-out tasks after 1 and 10 steps', async () => {
    const family = sinusoid();
    const iterations = 1200;
    const maml = await train({
      algorithm: 'maml',
      model: { hidden: [40, 40], activation: 'relu' },
      families: family,
      hyper: { iterations, metaBatchSize: 25, shots: 10, queryShots: 10, innerSteps: 1, innerLr: 0.01, metaLr: 0.001, evalEvery: iterations, evalTasks: 10, seed: 1 },
    });
    const baseline = pretrain(maml, family, iterations, 25, 2);
    const rng = new Rng(3);
    const tasks = Array.from({ length: 60 }, () => family.sampleEpisode(rng, 'test', { shots: 10, queryShots: 50 }));
    for (const steps of [1, 10]) {
      const mean = (m: MetaModel) => tasks.reduce((s, t) => s + queryMse(m, t, steps), 0) / tasks.length;
      const [ours, theirs] = [mean(maml), mean(baseline)];
      expect(ours, `after ${steps} step(s): maml ${ours.toFixed(3)} vs baseline ${theirs.toFixed(3)}`).toBeLessThan(0.75 * theirs);
    }
  });

  it.each(['maml', 'protonet'] as const)('gaussian blobs 5-way 1-shot: %s is far above chance on held-out tasks', async (algorithm) => {
    const family = gaussianBlobs({}, { inputDim: 2, ways: 5 });
    const model = await train({
      algorithm,
      model: { hidden: [32, 32] },
      families: family,
      hyper: { iterations: 300, metaBatchSize: 10, shots: 1, queryShots: 5, innerSteps: 1, innerLr: 0.5, metaLr: 0.003, evalEvery: 300, evalTasks: 10, seed: 2 },
    });
    const rng = new Rng(4);
    let hits = 0;
    let total = 0;
    for (let t = 0; t < 100; t++) {
      const episode = family.sampleEpisode(rng, 'test', { shots: 1, queryShots: 10, ways: 5 });
      const out = predict(model.spec, taskParams(model, adapt(model, episode.support).params), episode.query.x);
      if (out.kind !== 'classification') throw new Error('expected classification');
      out.labels.forEach((label, i) => {
        hits += label === episode.query.y[i] ? 1 : 0;
        total += 1;
      });
    }
    expect(hits / total).toBeGreaterThan(0.5);
  });
});
