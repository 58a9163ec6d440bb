/**
 * `checkpointAtEnd` (a study's trials, issue 23 item 3): the result of a run of N iterations carries
 * the state after iteration N, and a run of M > N iterations resumed from it ends byte for byte
 * where an uninterrupted run of M iterations ends (meta-parameters, evaluations after N, the kept
 * best), for an episodic and a pool algorithm. Without the option the result carries none.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../../src/meta/backend.js';
import { gaussianBlobs, sinusoid } from '../../../src/meta/families/index.js';
import { metaTrain, type TrainConfig, type TrainEvent } from '../../../src/meta/train.js';

beforeAll(async () => {
  await initBackend('cpu');
});

function config(algorithm: TrainConfig['algorithm'], iterations: number): TrainConfig {
  return {
    algorithm,
    model: { hidden: [16, 16], activation: 'relu' },
    families: [{ family: algorithm === 'protonet' ? gaussianBlobs({}, { inputDim: 2, ways: 3 }) : sinusoid(), weight: 1 }],
    hyper: { iterations, metaBatchSize: 4, shots: 5, queryShots: 5, evalEvery: 4, checkpointEvery: 100, evalTasks: 4, seed: 11, tasks: 20 },
  };
}

async function collect(run: AsyncGenerator<TrainEvent>): Promise<TrainEvent[]> {
  const events: TrainEvent[] = [];
  for await (const e of run) events.push(e);
  return events;
}

const resultOf = (events: TrainEvent[]) => {
  const last = events[events.length - 1];
  if (last.type !== 'result') throw new Error('no result event');
  return last;
};

const bytes = (params: Record<string, { data: Float32Array }>) => Object.fromEntries(Object.entries(params).map(([name, p]) => [name, Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength).toString('hex')]));

describe('checkpointAtEnd', () => {
  it.each(['maml', 'protonet', 'multitask'] as const)('%s: 8 iterations, then resumed to 16, equals 16 uninterrupted', async (algorithm) => {
    const short = resultOf(await collect(metaTrain(config(algorithm, 8), { checkpointAtEnd: true })));
    expect(short.checkpoint?.iteration).toBe(8);
    const resumed = await collect(metaTrain(config(algorithm, 16), { resumeFrom: structuredClone(short.checkpoint!) }));
    const straight = await collect(metaTrain(config(algorithm, 16)));
    expect(resumed.find((e) => e.type === 'progress')).toMatchObject({ iteration: 9 });
    expect(bytes(resultOf(resumed).model.params)).toEqual(bytes(resultOf(straight).model.params));
    const after8 = (events: TrainEvent[]) => events.filter((e) => e.type === 'metrics' && e.iteration > 8);
    expect(after8(resumed)).toEqual(after8(straight));
    expect(resultOf(resumed).best).toEqual(resultOf(straight).best);
  });

  it('is absent by default', async () => {
    expect(resultOf(await collect(metaTrain(config('maml', 4)))).checkpoint).toBeUndefined();
  });
});
