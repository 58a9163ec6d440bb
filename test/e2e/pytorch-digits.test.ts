/**
 * The PyTorch ProtoNets baseline on `digits` (bench/pytorch/digits.ts, digits_protonet.py): the data
 * files hold exactly the engine's training classes and test episodes, and the script trains both
 * bodies on them and reports a well-formed result. The script part runs where /usr/bin/python3 (or
 * python3) has torch; it is skipped, saying why, elsewhere, and fails under CI=true
 * (test/support/requirements.ts).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPytorch } from '../../bench/pytorch/baseline.js';
import { pytorchDigitsProtonet, writeDigitsData, type DigitsDataHeader } from '../../bench/pytorch/digits.js';
import { DIGIT_PIXELS, loadDigits, writeDigit } from '../../src/meta/families/digits-data.js';
import { digits, DIGIT_SPLITS, packEpisodes } from '../../src/meta/families/index.js';
import { Rng } from '../../src/meta/rng.js';
import type { EpisodeBatch } from '../../src/meta/types.js';
import { describeNeeding, requirement } from '../support/requirements.js';

const pytorch = await findPytorch('auto');

const WAYS = 5;
const TEST_EPISODES = 40;
const TEST_QUERY_SHOTS = 15;

let dir: string;
let header: DigitsDataHeader;
const test: Record<number, EpisodeBatch> = {};

beforeAll(() => {
  const family = digits({}, { ways: WAYS });
  for (const shots of [1, 5]) {
    const rng = new Rng(777 + shots);
    test[shots] = packEpisodes(Array.from({ length: TEST_EPISODES }, () => family.sampleEpisode(rng, 'test', { shots, queryShots: TEST_QUERY_SHOTS, ways: WAYS })));
  }
  dir = mkdtempSync(join(tmpdir(), 'fastadapt-digits-'));
  header = writeDigitsData(dir, test);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function floats(name: string): Float32Array {
  const bytes = readFileSync(join(dir, name));
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

describe('writeDigitsData', () => {
  it('writes the training split, grouped as the engine groups it, with the engine\'s rotated images', () => {
    expect(header.train.groups.map((g) => g.map((c) => c.id))).toEqual(DIGIT_SPLITS.train.map((g) => g.map((c) => c.id)));
    expect(header.train.groups.flat()).toHaveLength(24);
    const train = floats(header.train.file);
    expect(train.length).toBe(header.train.images * DIGIT_PIXELS);
    const data = loadDigits();
    const expected = new Float32Array(DIGIT_PIXELS);
    // A rotated class of each group, first and last image: the rows writeDigit gives.
    for (const group of header.train.groups) {
      const c = group[group.length - 1];
      expect(c.count).toBe(data.counts[c.digit]);
      for (const i of [0, c.count - 1]) {
        writeDigit(data, c.digit, c.turns, i, expected, 0);
        expect(train.subarray((c.offset + i) * DIGIT_PIXELS, (c.offset + i + 1) * DIGIT_PIXELS)).toEqual(expected);
      }
    }
  });

  it('writes the test episodes as they are, with their shape', () => {
    for (const shots of [1, 5]) {
      const episodes = header.test[String(shots)];
      expect(episodes).toMatchObject({ tasks: TEST_EPISODES, ways: WAYS, shots, queryShots: TEST_QUERY_SHOTS, supportSize: WAYS * shots, querySize: WAYS * TEST_QUERY_SHOTS });
      const { support, query } = test[shots];
      const pairs = [[episodes.files.supportX, support.x], [episodes.files.supportY, support.y], [episodes.files.queryX, query.x], [episodes.files.queryY, query.y]] as const;
      // Byte for byte (toEqual on ~10^6 floats takes seconds).
      for (const [file, values] of pairs) expect(readFileSync(join(dir, file)).equals(new Uint8Array(values.buffer, values.byteOffset, values.byteLength)), file).toBe(true);
    }
  });

  it('refuses a batch whose support set is not ways x shots', () => {
    expect(() => writeDigitsData(join(dir, 'bad'), { 2: test[5] })).toThrow(/not ways x 2 shots/);
    expect(existsSync(join(dir, 'bad'))).toBe(false);
  });
});

describeNeeding(requirement('torch', pytorch.python ? undefined : pytorch.reason), 'digits_protonet.py', () => {
  for (const body of ['conv', 'mlp'] as const) {
    it(`meta-trains the ${body} body a few iterations and scores the exported test episodes`, async () => {
      const shots = body === 'conv' ? 1 : 5;
      const run = await pytorchDigitsProtonet(pytorch.python!, dir, { body, shots, iterations: 8, seed: 1, ways: WAYS, queryShots: 5, metaBatchSize: 2, metaLr: 0.001 });
      expect(run).toMatchObject({ algorithm: 'protonet', zeroHead: false, body, shots, ways: WAYS, queryShots: 5, iterations: 8, metaBatch: 2, testEpisodes: TEST_EPISODES, testQueryShots: TEST_QUERY_SHOTS, threads: 1 });
      // Conv-4: four 3x3 convolutions with biases and four norms (a weight and a bias per channel).
      expect(run.parameters).toBe(body === 'conv' ? 9 * 64 + 64 + 3 * (9 * 64 * 64 + 64) + 4 * 2 * 64 : 196 * 128 + 128 + 128 * 64 + 64);
      // Well above chance (1 in 5) after 8 iterations: 0.585-0.620 (conv, 1 shot) and 0.607-0.667
      // (MLP, 5 shots) over seeds 1-6, so a margin of 0.2 leaves room for other torch builds.
      expect(run.accuracy).toBeGreaterThan(1 / WAYS + 0.2);
      expect(run.accuracy).toBeLessThanOrEqual(1);
      expect(run.ci95).toBeGreaterThan(0);
      expect(run.ci95).toBeLessThan(0.5);
      expect(run.finalTrainLoss).toBeGreaterThan(0);
      expect(run.msPerIteration).toBeGreaterThan(0);
      expect(run.stepMsPerIteration).toBeGreaterThan(0);
      expect(run.stepMsPerIteration).toBeLessThanOrEqual(run.msPerIteration);
      expect(run.trainSeconds).toBeCloseTo((run.msPerIteration * run.iterations) / 1000, 6);
      expect(run.torch).toMatch(/^\d+\.\d+/);
      // Nearest class mean on raw pixels needs no training and clearly beats chance (1 in 5).
      for (const accuracy of Object.values(run.rawPixel)) {
        expect(accuracy).toBeGreaterThan(0.4);
        expect(accuracy).toBeLessThanOrEqual(1);
      }
    }, 20_000);
  }

  // Conv-4's parameters (four 3x3 convolutions with biases, four norms) and the head's.
  const CONV_PARAMETERS = 9 * 64 + 64 + 3 * (9 * 64 * 64 + 64) + 4 * 2 * 64;
  const HEAD_PARAMETERS = 64 * WAYS + WAYS;

  for (const zeroHead of [false, true]) {
    it(`meta-trains ANIL${zeroHead ? ' with a zero head' : ''} on the conv body and scores the exported test episodes after its test steps`, async () => {
      const run = await pytorchDigitsProtonet(pytorch.python!, dir, {
        body: 'conv', shots: 1, iterations: 6, seed: 1, ways: WAYS, queryShots: 5, metaBatchSize: 2, metaLr: 0.001,
        algorithm: 'anil', zeroHead, innerLr: 0.4, innerSteps: 1, testSteps: 3,
      });
      expect(run).toMatchObject({ algorithm: 'anil', zeroHead, innerLr: 0.4, innerSteps: 1, testSteps: 3, iterations: 6, metaBatch: 2, testEpisodes: TEST_EPISODES, threads: 1 });
      // A zero head is not a parameter: nothing meta-learns it.
      expect(run.parameters).toBe(CONV_PARAMETERS + (zeroHead ? 0 : HEAD_PARAMETERS));
      expect(run.firstTrainLosses).toHaveLength(6);
      if (zeroHead) {
        // From a zero head every task's logits start equal (support loss ln 5) and one inner step
        // lowers the query loss a little: the first meta-loss sits just under ln 5.
        expect(run.firstTrainLosses[0]).toBeLessThan(Math.log(WAYS));
        expect(run.firstTrainLosses[0]).toBeGreaterThan(Math.log(WAYS) - 0.3);
      }
      for (const loss of run.firstTrainLosses) expect(Number.isFinite(loss) && loss > 0).toBe(true);
      expect(run.accuracy).toBeGreaterThanOrEqual(0);
      expect(run.accuracy).toBeLessThanOrEqual(1);
      expect(run.msPerIteration).toBeGreaterThan(0);
      expect(run.cpuMsPerIteration).toBeGreaterThan(0);
    }, 20_000);
  }

  it('refuses --zero-head without ANIL, naming the option', async () => {
    await expect(pytorchDigitsProtonet(pytorch.python!, dir, { body: 'conv', shots: 1, iterations: 1, seed: 0, ways: WAYS, queryShots: 5, metaBatchSize: 1, metaLr: 0.001, zeroHead: true })).rejects.toThrow(/--zero-head needs --algorithm anil/);
  });

  it('fails, saying why, on a shot count the data do not hold', async () => {
    await expect(pytorchDigitsProtonet(pytorch.python!, dir, { body: 'mlp', shots: 3, iterations: 1, seed: 0, ways: WAYS, queryShots: 5, metaBatchSize: 1, metaLr: 0.001 })).rejects.toThrow(/no 3-shot test episodes/);
  });
});
