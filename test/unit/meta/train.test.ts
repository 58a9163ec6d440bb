/**
 * The training generator: event sequence, exact resume from a checkpoint, seed determinism, the
 * non-finite guard, abort, configuration errors, and no tensor leaks.
 */

import { beforeAll, describe, expect, it } from 'vitest';
import { ALGORITHM_NAMES, ALGORITHMS, type AlgorithmName } from '../../../src/meta/algorithms/index.js';
import { initBackend, tf } from '../../../src/meta/backend.js';
import { gaussianBlobs, sinusoid } from '../../../src/meta/families/index.js';
import type { EnginePreference } from '../../../src/meta/engine.js';
import { fusedSupports } from '../../../src/meta/fused/index.js';
import { NonFiniteError } from '../../../src/meta/learner.js';
import type { ParamArrays } from '../../../src/meta/model.js';
import { metaTrain, TrainConfigError, TrainingAbortedError, type Checkpoint, type TrainConfig, type TrainEvent } from '../../../src/meta/train.js';
import type { TaskFamily } from '../../../src/meta/types.js';

beforeAll(async () => {
  await initBackend('cpu');
});

/** Sinusoids, or 3-way blobs for an algorithm that meta-learns classification only (ProtoNets). */
function familyFor(algorithm: AlgorithmName): TaskFamily {
  return ALGORITHMS[algorithm].kinds.includes('regression') ? sinusoid() : gaussianBlobs({}, { inputDim: 2, ways: 3 });
}

function config(overrides: Partial<TrainConfig['hyper']> = {}, algorithm: TrainConfig['algorithm'] = 'maml', engine: EnginePreference = 'auto'): TrainConfig {
  return {
    algorithm,
    engine,
    model: { hidden: [16, 16], activation: 'relu' },
    families: [{ family: familyFor(algorithm), weight: 1 }],
    hyper: { iterations: 12, metaBatchSize: 4, shots: 5, queryShots: 5, evalEvery: 4, checkpointEvery: 5, evalTasks: 4, seed: 7, ...overrides },
  };
}

async function collect(run: AsyncGenerator<TrainEvent>): Promise<TrainEvent[]> {
  const events: TrainEvent[] = [];
  for await (const e of run) events.push(e);
  return events;
}

function result(events: TrainEvent[]) {
  const last = events[events.length - 1];
  if (last.type !== 'result') throw new Error('no result event');
  return last;
}

function expectBitwiseEqual(a: ParamArrays, b: ParamArrays): void {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  for (const name of Object.keys(a)) expect(Buffer.from(a[name].data.buffer, a[name].data.byteOffset, a[name].data.byteLength).equals(Buffer.from(b[name].data.buffer, b[name].data.byteOffset, b[name].data.byteLength))).toBe(true);
}

describe('metaTrain', () => {
  it('yields progress every iteration, metrics every evalEvery, checkpoints every checkpointEvery, then the result', async () => {
    const events = await collect(metaTrain(config()));
    expect(events.filter((e) => e.type === 'progress').map((e) => (e.type === 'progress' ? e.iteration : 0))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const metrics = events.filter((e) => e.type === 'metrics');
    expect(metrics.map((e) => e.iteration)).toEqual([4, 8, 12]);
    for (const m of metrics) {
      if (m.type !== 'metrics') continue;
      expect(Number.isFinite(m.trainLoss) && Number.isFinite(m.valLoss)).toBe(true);
      expect(m.valAccuracy).toBeUndefined();
    }
    expect(events.filter((e) => e.type === 'checkpoint').map((e) => (e.type === 'checkpoint' ? e.checkpoint.iteration : 0))).toEqual([5, 10]);
    const { model } = result(events);
    expect(model.algorithm).toBe('maml');
    expect(model.spec).toMatchObject({ kind: 'regression', inputDim: 1, outputDim: 1, hidden: [16, 16] });
    expect(Object.keys(model.params)).toEqual(['body.0.weight', 'body.0.bias', 'body.1.weight', 'body.1.bias', 'head.weight', 'head.bias']);
    expect(model.params['body.0.weight'].shape).toEqual([1, 16]);
  });

  // Both engines: the fused wasm kernels and tfjs, each reproducible on its own.
  const engines = ['fused', 'tfjs'] as const;

  it.each(engines)('%s: same seed gives bitwise-equal meta-parameters; another seed does not', async (engine) => {
    const a = result(await collect(metaTrain(config({}, 'maml', engine))));
    const b = result(await collect(metaTrain(config({}, 'maml', engine))));
    expectBitwiseEqual(a.model.params, b.model.params);
    const c = result(await collect(metaTrain(config({ seed: 8 }, 'maml', engine))));
    expect(Array.from(c.model.params['head.bias'].data)).not.toEqual(Array.from(a.model.params['head.bias'].data));
  });

  // Every algorithm on tfjs, and on the fused kernels where they implement it (multitask runs on tfjs only).
  const algorithmEngines = ALGORITHM_NAMES.flatMap((algorithm) => engines.filter((engine) => engine !== 'fused' || fusedSupports(algorithm)).map((engine) => [algorithm, engine] as const));
  it.each(algorithmEngines)('%s on %s: resuming from a mid-run checkpoint equals the uninterrupted run', async (algorithm, engine) => {
    const full = await collect(metaTrain(config({}, algorithm, engine)));
    let checkpoint: Checkpoint | undefined;
    for await (const e of metaTrain(config({}, algorithm, engine))) {
      if (e.type === 'checkpoint') {
        checkpoint = e.checkpoint;
        break; // the interrupted run ends here (its generator is closed)
      }
    }
    expect(checkpoint?.iteration).toBe(5);
    // Round-trip through plain copies, as a database would store it.
    const stored: Checkpoint = structuredClone(checkpoint!);
    const resumed = await collect(metaTrain(config({}, algorithm, engine), { resumeFrom: stored }));
    expect(resumed.find((e) => e.type === 'progress')).toMatchObject({ iteration: 6 });
    expectBitwiseEqual(result(resumed).model.params, result(full).model.params);
    const metricsAfter = (events: TrainEvent[]) => events.filter((e) => e.type === 'metrics' && e.iteration > 5);
    expect(metricsAfter(resumed)).toEqual(metricsAfter(full));
  });

  it('classification runs report validation accuracy', async () => {
    const events = await collect(
      metaTrain({
        algorithm: 'protonet',
        model: { hidden: [16, 8] },
        families: gaussianBlobs({}, { inputDim: 2, ways: 3 }),
        hyper: { iterations: 4, metaBatchSize: 3, shots: 2, queryShots: 2, evalEvery: 2, evalTasks: 4 },
      }),
    );
    const metrics = events.find((e) => e.type === 'metrics');
    expect(metrics?.type === 'metrics' && metrics.valAccuracy).toBeGreaterThanOrEqual(0);
    expect(result(events).model.spec.outputDim).toBe(3);
    expect(Object.keys(result(events).model.params)).not.toContain('head.weight');
  });

  it('stops with NonFiniteError on a non-finite loss and never yields non-finite parameters', async () => {
    const clean = sinusoid();
    const poisoned: TaskFamily = {
      ...clean,
      name: 'poisoned',
      kind: clean.kind,
      inputDim: clean.inputDim,
      sampleEpisode(rng, split, shape) {
        const episode = clean.sampleEpisode(rng, split, shape);
        if (split === 'train' && rng.next() < 0.3) episode.query.y[0] = NaN;
        return episode;
      },
    };
    const memory = tf.memory().numTensors;
    const seen: TrainEvent[] = [];
    const run = async () => {
      for await (const e of metaTrain({ ...config({ checkpointEvery: 1 }), families: poisoned })) seen.push(e);
    };
    await expect(run()).rejects.toThrow(NonFiniteError);
    await expect(run()).rejects.toThrow(/iteration \d+: meta-loss is not finite/);
    for (const e of seen) {
      if (e.type === 'checkpoint') for (const p of Object.values(e.checkpoint.params)) expect(p.data.every(Number.isFinite)).toBe(true);
    }
    expect(tf.memory().numTensors).toBe(memory);
  });

  it("an outer step size far too large is caught in the iteration Adam's state overflows, not when the loss does", async () => {
    // The setting found by the diverging-job test: metaLr 10 on sinusoids. The loss and gradient stay
    // finite for ~28 iterations while the second moment is already infinite (and the parameters frozen).
    const seen: Checkpoint[] = [];
    const run = async () => {
      for await (const e of metaTrain(config({ metaLr: 10, seed: 0, iterations: 100, evalEvery: 5, checkpointEvery: 1 }))) if (e.type === 'checkpoint') seen.push(e.checkpoint);
    };
    const err = await run().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteError);
    expect((err as Error).message).toMatch(/^iteration \d+: optimiser state is not finite after the step .*lower innerLr or metaLr, or set clipNorm$/);
    const iteration = Number(/^iteration (\d+)/.exec((err as Error).message)![1]);
    expect(iteration).toBeLessThanOrEqual(10);
    // Every state handed out before it is finite, and the last is the iteration just before.
    expect(seen.at(-1)?.iteration).toBe(iteration - 1);
    for (const c of seen) {
      for (const group of [c.params, c.optimizer.m, c.optimizer.v]) for (const p of Object.values(group)) expect(p.data.every(Number.isFinite)).toBe(true);
    }
  });

  it.each(engines)('%s: a diverging inner loop is caught as a non-finite loss or gradient', async (engine) => {
    await expect(collect(metaTrain(config({ innerLr: 1e30 }, 'maml', engine)))).rejects.toThrow(NonFiniteError);
  });

  it('aborts via the signal before the next iteration', async () => {
    const controller = new AbortController();
    const seen: number[] = [];
    const run = async () => {
      for await (const e of metaTrain(config(), { signal: controller.signal })) {
        if (e.type === 'progress') {
          seen.push(e.iteration);
          if (e.iteration === 3) controller.abort();
        }
      }
    };
    await expect(run()).rejects.toThrow(TrainingAbortedError);
    expect(seen).toEqual([1, 2, 3]);
  });

  it.each(ALGORITHM_NAMES)('%s: an abort hands over the last completed iteration, and resuming from it equals the uninterrupted run', async (algorithm) => {
    const full = await collect(metaTrain(config({}, algorithm)));
    const controller = new AbortController();
    let aborted: unknown;
    try {
      for await (const e of metaTrain(config({}, algorithm), { signal: controller.signal })) {
        // Iteration 7 is no multiple of checkpointEvery (5): the abort's own state, not a copy of an event's.
        if (e.type === 'progress' && e.iteration === 7) controller.abort();
      }
    } catch (err) {
      aborted = err;
    }
    expect(aborted).toBeInstanceOf(TrainingAbortedError);
    const { iteration, checkpoint } = aborted as TrainingAbortedError;
    expect(iteration).toBe(7);
    expect(checkpoint?.iteration).toBe(7);
    // Iterations 5-7 ran since the metrics at 4: their loss travels with the checkpoint.
    expect(checkpoint?.pendingLoss.count).toBe(3);
    const resumed = await collect(metaTrain(config({}, algorithm), { resumeFrom: structuredClone(checkpoint!) }));
    expect(resumed.find((e) => e.type === 'progress')).toMatchObject({ iteration: 8 });
    expectBitwiseEqual(result(resumed).model.params, result(full).model.params);
    const after = (events: TrainEvent[]) => events.filter((e) => (e.type === 'metrics' || e.type === 'checkpoint') && (e.type === 'metrics' ? e.iteration : e.checkpoint.iteration) > 7);
    expect(after(resumed)).toEqual(after(full));
  });

  it('an abort before any iteration of the run carries no checkpoint (the state is the one it started from)', async () => {
    const controller = new AbortController();
    controller.abort();
    const err = await collect(metaTrain(config(), { signal: controller.signal })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrainingAbortedError);
    expect((err as TrainingAbortedError).iteration).toBe(0);
    expect((err as TrainingAbortedError).checkpoint).toBeUndefined();
  });

  it('rejects bad configurations naming the field', async () => {
    await expect(collect(metaTrain(config({ metaBatchSize: 0 })))).rejects.toThrow(/hyper\.metaBatchSize/);
    await expect(collect(metaTrain(config({ innerLr: -1 })))).rejects.toThrow(TrainConfigError);
    await expect(collect(metaTrain({ ...config(), algorithm: 'protonet' }))).rejects.toThrow(/does not support regression/);
    await expect(collect(metaTrain({ ...config(), model: { hidden: [0] } }))).rejects.toThrow(/model/);
    await expect(collect(metaTrain({ ...config(), families: [] }))).rejects.toThrow(/families/);
  });

  it('keeps the tensor count flat across iterations and frees everything at the end', async () => {
    const before = tf.memory().numTensors;
    const during: number[] = [];
    for await (const e of metaTrain(config({ iterations: 10 }, 'anil'))) {
      if (e.type === 'progress' && e.iteration > 1) during.push(tf.memory().numTensors);
    }
    expect(new Set(during).size).toBe(1);
    expect(tf.memory().numTensors).toBe(before);
  });
});
