/**
 * A monitored inner loop (evaluation, adaptation) frees each step's intermediates as it goes: what
 * outlives the loop inside the caller's tf.tidy is the result, the best iterate and the trace, not
 * every step's activations and gradients. Without it, the `scratch` baseline's 100 steps over an
 * evaluation's 100 tasks of a conv body exhausted tfjs-wasm's memory (XNNPACK out of memory, then
 * an aborted runtime that failed the worker's later jobs).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { getAlgorithm, type AlgorithmName } from '../../../src/meta/algorithms/index.js';
import { initBackend, tf } from '../../../src/meta/backend.js';
import { gaussianBlobs } from '../../../src/meta/families/index.js';
import type { GuardPolicy } from '../../../src/meta/guard.js';
import { initModelParams, modelSpec, toTensors, type ModelSpec } from '../../../src/meta/model.js';
import { Rng } from '../../../src/meta/rng.js';
import { examplesToTensors } from '../../../src/meta/tensors.js';

beforeAll(async () => {
  await initBackend('cpu');
});

const family = gaussianBlobs({ meanScale: 1.5 }, { inputDim: 25, ways: 3 });
const supports = [1, 2, 3, 4].map((seed) => family.sampleEpisode(new Rng(seed), 'test', { shots: 3, queryShots: 1, ways: 3 }).support);
const bodies: Record<string, ModelSpec> = {
  mlp: modelSpec('classification', 25, { hidden: [16, 16] }, 3),
  conv: modelSpec('classification', 25, { body: 'conv', inputShape: [5, 5, 1], channels: [3, 4], activation: 'softplus' }, 3),
};

/** Tensors alive inside the caller's tidy right after `steps` monitored inner steps. */
function aliveAfter(algorithm: AlgorithmName, spec: ModelSpec, steps: number, guard: GuardPolicy): number {
  let alive = 0;
  tf.tidy(() => {
    const before = tf.memory().numTensors;
    const theta = toTensors(initModelParams(spec, new Rng(7)));
    const examples = examplesToTensors(spec, supports, 'support');
    getAlgorithm(algorithm).adapt(spec, theta, examples, { steps, lr: 0.05, monitor: { guard } });
    alive = tf.memory().numTensors - before;
  });
  return alive;
}

describe('a monitored inner loop', () => {
  const cases = [
    { body: 'mlp', algorithm: 'maml', guard: 'best' },
    { body: 'mlp', algorithm: 'anil', guard: 'best' },
    { body: 'conv', algorithm: 'maml', guard: 'best' },
    { body: 'conv', algorithm: 'maml', guard: 'none' },
  ] as const;

  it.each(cases)('$body $algorithm, guard $guard: 40 more steps leave at most the 40 trace entries more alive', ({ body, algorithm, guard }) => {
    const few = aliveAfter(algorithm, bodies[body], 5, guard);
    const many = aliveAfter(algorithm, bodies[body], 45, guard);
    // One trace entry per step is kept (the trace is stacked at the end); a step's own tensors are
    // dozens (forward, backward, update), so keeping them would add thousands here.
    expect(many - few).toBeLessThanOrEqual(40);
    expect(few).toBeGreaterThan(0);
  });

  it('leaves nothing behind after the caller\'s tidy', () => {
    const before = tf.memory().numTensors;
    aliveAfter('maml', bodies.conv, 10, 'best');
    expect(tf.memory().numTensors).toBe(before);
  });
});
