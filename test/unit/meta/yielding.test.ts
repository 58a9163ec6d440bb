/**
 * A worker's long synchronous work yields to its event loop (src/util/yielding.ts): meta-training's
 * validation and the calibration at its end answer exactly what their synchronous forms answer, and
 * other callbacks run while they do (BullMQ's lock renewal is one; with the synchronous forms it ran
 * only after a conv body's whole evaluation or calibration).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { MetaModel } from '../../../src/meta/adapt.js';
import { initBackend } from '../../../src/meta/backend.js';
import { fitShots, fitShotsYielding } from '../../../src/meta/calibration.js';
import { gaussianBlobs } from '../../../src/meta/families/index.js';
import { initMetaParams, MetaLearner } from '../../../src/meta/learner.js';
import { modelSpec } from '../../../src/meta/model.js';
import { Rng } from '../../../src/meta/rng.js';
import { convClassificationProblem } from './helpers.js';

beforeAll(async () => {
  await initBackend('cpu');
});

/**
 * What `work` resolves to, and how many turns of the event loop other callbacks got before it did
 * (counted by a setImmediate chain started just before it: 0 for work that never yields).
 */
async function turnsDuring<T>(work: () => Promise<T>): Promise<{ result: T; turns: number }> {
  let turns = 0;
  let done = false;
  const tick = () => {
    if (done) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  const result = await work();
  done = true;
  return { result, turns };
}

describe('yielding to the event loop', () => {
  it.each(['tfjs', 'ort'] as const)('a conv meta-learner\'s validation (%s) equals evaluate and lets other callbacks run', async (engine) => {
    const p = convClassificationProblem(41, undefined, 8);
    const inner = { steps: 1, lr: 0.4 };
    const params = initMetaParams({ algorithm: 'protonet', spec: p.spec, inner, metaLr: 0.01 }, new Rng(3));
    const learner = new MetaLearner({ algorithm: 'protonet', spec: p.spec, inner, metaLr: 0.01, engine }, params);
    const expected = learner.evaluate(p.batch);
    const { result, turns } = await turnsDuring(() => learner.evaluateYielding(p.batch));
    learner.dispose();
    expect(result).toEqual(expected);
    expect(turns).toBeGreaterThan(0);
  });

  it('calibration of one number of shots equals fitShots and lets other callbacks run', async () => {
    const blobs = gaussianBlobs({}, { inputDim: 2, ways: 3 });
    const spec = modelSpec('classification', 2, { hidden: [8] }, 3);
    const inner = { steps: 0, lr: 0.01 };
    const model: MetaModel = { algorithm: 'protonet', spec, inner, params: initMetaParams({ algorithm: 'protonet', spec, inner, metaLr: 0.001 }, new Rng(2)) };
    // 120 tasks: more than one chunk of adaptations.
    const settings = { shots: [3], tasks: 120, queryShots: 4, seed: 5 };
    const expected = fitShots(model, blobs, settings, 3);
    const { result, turns } = await turnsDuring(() => fitShotsYielding(model, blobs, settings, 3));
    expect(result).toEqual(expected);
    expect(turns).toBeGreaterThan(0);
  });
});
