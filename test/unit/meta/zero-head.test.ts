/**
 * hyper.zeroHead (the zeroing trick): the learner holds the head at zero and meta-trains the body
 * exactly as it would from a zero head, on both engines and on the conv body; algorithms without a
 * meta-learned head refuse it.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { ALGORITHM_NAMES, ALGORITHMS, type AlgorithmName } from '../../../src/meta/algorithms/index.js';
import { initBackend } from '../../../src/meta/backend.js';
import type { EnginePreference } from '../../../src/meta/engine.js';
import { MetaLearner, type LearnerConfig } from '../../../src/meta/learner.js';
import { HEAD_NAMES, type ParamArrays } from '../../../src/meta/model.js';
import { Rng } from '../../../src/meta/rng.js';
import { resolveHyper, TrainConfigError } from '../../../src/meta/train.js';
import { classificationProblem, convClassificationProblem, mapArrays, maxAbs, maxAbsDiff, sample } from './helpers.js';
import { gaussianBlobs } from '../../../src/meta/families/index.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const WITH_HEAD = ALGORITHM_NAMES.filter((name) => ALGORITHMS[name].metaTrainsHead);
const bodyOf = (params: ParamArrays) => Object.fromEntries(Object.entries(params).filter(([name]) => !HEAD_NAMES.includes(name)));
const headOf = (params: ParamArrays) => Object.fromEntries(HEAD_NAMES.map((name) => [name, params[name]]));

function learners(algorithm: AlgorithmName, engine: EnginePreference, problem = classificationProblem(1)) {
  const config: LearnerConfig = { algorithm, spec: problem.spec, inner: { steps: 2, lr: 0.3 }, metaLr: 0.01, engine };
  const params = ALGORITHMS[algorithm].initMetaParams(problem.spec, new Rng(4), config.inner);
  // The reference: a plain learner whose head happens to start at zero.
  const zeroed = mapArrays(params, (name, data) => (HEAD_NAMES.includes(name) ? new Float32Array(data.length) : data));
  return { problem, zeroHead: new MetaLearner({ ...config, zeroHead: true }, params), plain: new MetaLearner(config, zeroed) };
}

describe('zeroHead', () => {
  it.each(WITH_HEAD.flatMap((a) => (['auto', 'tfjs'] as const).map((e) => [a, e] as const)))(
    '%s on %s: the head stays zero; the body moves as from a zero head',
    (algorithm, engine) => {
      const { problem, zeroHead, plain } = learners(algorithm, engine);
      const blobs = gaussianBlobs({ meanScale: 1.5 }, { inputDim: 2, ways: 3 });
      const rng = new Rng(8);
      const start = bodyOf(zeroHead.exportParams());
      // One step from the same start with the same batch: the same loss and the same body.
      expect(zeroHead.metaStep(problem.batch)).toBeCloseTo(plain.metaStep(problem.batch), 5);
      const [a, b] = [zeroHead.exportParams(), plain.exportParams()];
      expect(maxAbsDiff(bodyOf(a), bodyOf(b))).toBeLessThan(1e-6);
      expect(maxAbsDiff(bodyOf(a), start)).toBeGreaterThan(1e-4);
      expect(maxAbs(headOf(b))).toBeGreaterThan(1e-4); // the plain learner meta-trains its head
      for (let i = 0; i < 3; i++) zeroHead.metaStep(sample(blobs, rng, 3, 2, 3, 3));
      expect(maxAbs(headOf(zeroHead.exportParams()))).toBe(0);
      expect(maxAbs(headOf(zeroHead.exportMetaParams()))).toBe(0);
      zeroHead.dispose();
      plain.dispose();
    },
  );

  it.each(['maml', 'anil'] as const)('%s on a conv body: the head stays zero and the body learns', (algorithm) => {
    const { zeroHead, plain, problem } = learners(algorithm, 'tfjs', convClassificationProblem(2));
    const start = zeroHead.exportParams();
    zeroHead.metaStep(problem.batch);
    plain.metaStep(problem.batch);
    const [a, b] = [zeroHead.exportParams(), plain.exportParams()];
    expect(maxAbs(headOf(a))).toBe(0);
    expect(maxAbsDiff(bodyOf(a), bodyOf(start))).toBeGreaterThan(1e-4);
    expect(maxAbsDiff(bodyOf(a), bodyOf(b))).toBeLessThan(1e-6);
    zeroHead.dispose();
    plain.dispose();
  });

  it('is refused where no head is meta-learned, and must be a boolean', () => {
    for (const name of ALGORITHM_NAMES.filter((a) => !ALGORITHMS[a].metaTrainsHead)) {
      expect(() => resolveHyper({ zeroHead: true }, name)).toThrow(/hyper\.zeroHead.*meta-learns no head/);
      expect(resolveHyper({ zeroHead: false }, name).zeroHead).toBe(false);
      const { spec } = classificationProblem(1);
      expect(() => new MetaLearner({ algorithm: name, spec, inner: { steps: 1, lr: 0.1 }, metaLr: 0.01, zeroHead: true }, ALGORITHMS[name].initMetaParams(spec, new Rng(1), { steps: 1, lr: 0.1 }))).toThrow(RangeError);
    }
    for (const name of WITH_HEAD) expect(resolveHyper({ zeroHead: true }, name).zeroHead).toBe(true);
    expect(resolveHyper().zeroHead).toBe(false);
    expect(() => resolveHyper({ zeroHead: 1 as unknown as boolean })).toThrow(TrainConfigError);
  });
});
