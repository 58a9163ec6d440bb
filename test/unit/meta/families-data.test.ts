import { describe, expect, it } from 'vitest';
import { Rng } from '../../../src/meta/rng.js';
import type { Split } from '../../../src/meta/types.js';
import { dataset, digitClassIds, digits, DIGIT_SPLITS, EpisodeShapeError, FamilySpecError } from '../../../src/meta/families/index.js';
import { DIGIT_PIXELS, DIGIT_SIZE, downsample, loadDigits, ROTATIONS, writeDigit } from '../../../src/meta/families/digits-data.js';

/** Task t: y = 100 t + i on inputs [t, i]; the task and example of any row can be read back. */
function regressionTasks(count: number, size: number) {
  return Array.from({ length: count }, (_, t) => ({
    x: Array.from({ length: size }, (_, i) => [t, i]),
    y: Array.from({ length: size }, (_, i) => 100 * t + i),
  }));
}

describe('dataset family', () => {
  it('splits every 5th task into the held-out split', () => {
    const family = dataset(regressionTasks(10, 6), { kind: 'regression', inputDim: 2 });
    expect([family.taskCount('train'), family.taskCount('val'), family.taskCount('test')]).toEqual([8, 2, 2]);
    const seen: Record<string, Set<number>> = { train: new Set(), val: new Set() };
    const rng = new Rng(1);
    for (let i = 0; i < 300; i++) {
      for (const split of ['train', 'val'] as Split[]) {
        const ep = family.sampleEpisode(rng, split, { shots: 2, queryShots: 3 });
        seen[split].add(ep.support.x[0]);
      }
    }
    expect([...seen.val].sort()).toEqual([4, 9]);
    expect([...seen.train].sort()).toEqual([0, 1, 2, 3, 5, 6, 7, 8]);
  });

  it('keeps every task in every split when there are fewer than 5', () => {
    const family = dataset(regressionTasks(3, 4), { kind: 'regression', inputDim: 2 });
    expect([family.taskCount('train'), family.taskCount('val')]).toEqual([3, 3]);
  });

  it('samples support and query without replacement from one task', () => {
    const family = dataset(regressionTasks(5, 8), { kind: 'regression', inputDim: 2 });
    const rng = new Rng(2);
    for (let i = 0; i < 50; i++) {
      const ep = family.sampleEpisode(rng, 'train', { shots: 3, queryShots: 5 });
      const rows = [ep.support, ep.query].flatMap((part) => Array.from({ length: part.n }, (_, r) => [part.x[2 * r], part.x[2 * r + 1], part.y[r]]));
      expect(new Set(rows.map((r) => r[0])).size).toBe(1); // one task
      expect(new Set(rows.map((r) => r[1])).size).toBe(8); // no example twice
      for (const [t, idx, y] of rows) expect(y).toBe(100 * t + idx); // pairs stay together
    }
    expect(() => family.sampleEpisode(rng, 'train', { shots: 5, queryShots: 5 })).toThrow(EpisodeShapeError);
    expect(family.sampleEpisode(new Rng(9), 'val', { shots: 3, queryShots: 5 })).toEqual(family.sampleEpisode(new Rng(9), 'val', { shots: 3, queryShots: 5 }));
  });

  it('relabels classification episodes 0..N-1 from classes present in the task', () => {
    // Inputs encode the original label; task 0 has labels 3, 7, 9; task 1 has labels 1, 2 only.
    const task = (labels: number[], per: number) => ({
      x: labels.flatMap((l) => Array.from({ length: per }, (_, j) => [l, j])),
      y: labels.flatMap((l) => Array.from({ length: per }, () => l)),
    });
    const family = dataset([task([3, 7, 9], 4), task([1, 2], 4)], { kind: 'classification', inputDim: 2, ways: 2 });
    const rng = new Rng(3);
    const mappings = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const ep = family.sampleEpisode(rng, 'train', { shots: 1, queryShots: 2, ways: 3 });
      expect(Array.from(ep.support.y)).toEqual([0, 1, 2]);
      const original = [0, 1, 2].map((r) => ep.support.x[2 * r]);
      expect([...original].sort()).toEqual([3, 7, 9]); // only task 0 has 3 classes
      for (let q = 0; q < ep.query.n; q++) expect(ep.query.x[2 * q]).toBe(original[ep.query.y[q]]);
      mappings.add(original.join());
    }
    expect(mappings.size).toBe(6); // every labelling of the 3 classes occurs
    expect(() => family.sampleEpisode(rng, 'train', { shots: 1, queryShots: 1, ways: 4 })).toThrow(/at most 3 ways/);
    expect(() => family.sampleEpisode(rng, 'train', { shots: 3, queryShots: 2, ways: 2 })).toThrow(/no train task with 2 classes with 5 examples/);
  });

  it('rejects bad tasks with the field path', () => {
    const cases: [unknown, string, string][] = [
      [[], 'tasks', 'regression'],
      [[{ x: [[1]], y: [1] }], 'tasks[0].x', 'regression'],
      [[{ x: [[1], [2]], y: [1, Infinity] }], 'tasks[0].y[1]', 'regression'],
      [[{ x: [[1], [Number.NaN]], y: [1, 2] }], 'tasks[0].x[1][0]', 'regression'],
      [[{ x: [[1], [2]], y: [0, 1.5] }], 'tasks[0].y[1]', 'classification'],
      [[{ x: [[1], [2]], y: [0, -1] }], 'tasks[0].y[1]', 'classification'],
      [[{ x: [[1], [2]], y: [0, 1] }], 'tasks', 'classification'], // no class with 2 examples
      [['task'], 'tasks[0]', 'regression'],
    ];
    for (const [tasks, path, kind] of cases) {
      let caught: unknown;
      try {
        dataset(tasks, { kind: kind as 'regression', inputDim: 1, ways: kind === 'classification' ? 2 : undefined });
      } catch (e) {
        caught = e;
      }
      expect(caught, JSON.stringify(tasks)).toBeInstanceOf(FamilySpecError);
      expect((caught as FamilySpecError).path).toBe(path);
    }
  });
});

/** The class id of an image, found by exhaustive match against the images of `candidates`. */
function classOfImage(x: Float32Array, offset: number, candidates: number[]): number | null {
  const data = loadDigits();
  const probe = new Float32Array(DIGIT_PIXELS);
  for (const id of candidates) {
    for (let i = 0; i < data.counts[id % 10]; i++) {
      writeDigit(data, id % 10, Math.floor(id / 10), i, probe, 0);
      if (probe.every((v, p) => v === x[offset + p])) return id;
    }
  }
  return null;
}

describe('digits family', () => {
  it('loads the mnist package digits, downsampled to sane 14x14 images', () => {
    const data = loadDigits();
    expect(data.counts).toHaveLength(10);
    for (let d = 0; d < 10; d++) {
      expect(data.counts[d]).toBeGreaterThan(800);
      const img = data.images[d];
      expect(img.length).toBe(data.counts[d] * DIGIT_PIXELS);
      let min = Infinity;
      let max = -Infinity;
      let sum = 0;
      for (const v of img) {
        min = Math.min(min, v);
        max = Math.max(max, v);
        sum += v;
      }
      expect(min).toBe(0);
      expect(max).toBeLessThanOrEqual(1);
      expect(max).toBeGreaterThan(0.9);
      // Ink covers roughly 10-25% of an MNIST digit; the border rows are blank.
      const mean = sum / img.length;
      expect(mean).toBeGreaterThan(0.05);
      expect(mean).toBeLessThan(0.3);
    }
    expect(loadDigits()).toBe(data); // cached
  });

  it('downsamples by 2x2 averages and rotates by quarter turns', () => {
    const raw = Array.from({ length: 28 * 28 }, (_, i) => i);
    const out = new Float32Array(DIGIT_PIXELS);
    downsample(raw, 0, out, 0);
    expect(out[0]).toBe((0 + 1 + 28 + 29) / 4);
    expect(out[DIGIT_SIZE + 1]).toBe((58 + 59 + 86 + 87) / 4);
    // One quarter turn clockwise takes the top-left pixel to the top-right corner.
    const img = new Float32Array(DIGIT_PIXELS);
    img[0] = 1;
    const turned = Float32Array.from(ROTATIONS[1], (src) => img[src]);
    expect(turned[DIGIT_SIZE - 1]).toBe(1);
    expect(turned.reduce((a, b) => a + b, 0)).toBe(1);
    // Four quarter turns are the identity, two are a half turn.
    const data = loadDigits();
    const once = new Float32Array(DIGIT_PIXELS);
    writeDigit(data, 3, 0, 5, once, 0);
    let current = once;
    for (let k = 0; k < 4; k++) current = Float32Array.from(ROTATIONS[1], (src) => current[src]);
    expect(current).toEqual(once);
    const half = new Float32Array(DIGIT_PIXELS);
    writeDigit(data, 3, 2, 5, half, 0);
    expect(half).toEqual(once.slice().reverse());
  });

  it('splits 40 classes 24/8/8 with disjoint classes', () => {
    const [train, val, test] = (['train', 'val', 'test'] as Split[]).map(digitClassIds);
    expect([train.length, val.length, test.length]).toEqual([24, 8, 8]);
    expect(new Set([...train, ...val, ...test]).size).toBe(40);
    // Near-duplicates (0/1/8 turned 180 degrees, 6 vs 9) are only ever trained on.
    const digitOf = (id: number) => id % 10;
    for (const id of [...val, ...test]) expect([2, 3, 4, 5, 7]).toContain(digitOf(id));
    expect(DIGIT_SPLITS.val.every((g) => g.length === 1)).toBe(true);
  });

  it('draws N-way K-shot episodes from the split classes only, reproducibly', () => {
    const family = digits();
    expect([family.kind, family.inputDim, family.ways]).toEqual(['classification', 196, 5]);
    for (const split of ['train', 'test'] as Split[]) {
      const ids = digitClassIds(split);
      const ep = family.sampleEpisode(new Rng(5), split, { shots: 1, queryShots: 1 });
      expect(ep.support.n).toBe(5);
      const classes = [0, 1, 2, 3, 4].map((r) => classOfImage(ep.support.x, r * DIGIT_PIXELS, ids));
      expect(classes.every((c) => c !== null)).toBe(true);
      expect(new Set(classes).size).toBe(5);
      for (let q = 0; q < ep.query.n; q++) {
        expect(classOfImage(ep.query.x, q * DIGIT_PIXELS, [classes[ep.query.y[q]]!])).toBe(classes[ep.query.y[q]]);
      }
    }
    const a = family.sampleEpisode(new Rng(8), 'val', { shots: 5, queryShots: 3 });
    expect(family.sampleEpisode(new Rng(8), 'val', { shots: 5, queryShots: 3 })).toEqual(a);
    expect(a.support.n).toBe(25);
  });

  it('never puts two near-duplicate classes in one episode, and caps ways per split', () => {
    const family = digits({}, { ways: 8 });
    const rng = new Rng(6);
    const groupOf = new Map(DIGIT_SPLITS.train.flatMap((group, g) => group.map((c) => [c.id, g] as const)));
    for (let i = 0; i < 3; i++) {
      // 14 groups in train (10 confusable pairs + 4 single classes): one class from each.
      const ep = family.sampleEpisode(rng, 'train', { shots: 1, queryShots: 1, ways: 14 });
      const classes = Array.from({ length: 14 }, (_, r) => classOfImage(ep.support.x, r * DIGIT_PIXELS, digitClassIds('train')));
      expect(new Set(classes.map((c) => groupOf.get(c!))).size).toBe(14);
    }
    expect(() => family.sampleEpisode(rng, 'train', { shots: 1, queryShots: 1, ways: 15 })).toThrow(/at most 14 ways/);
    expect(() => family.sampleEpisode(rng, 'test', { shots: 1, queryShots: 1, ways: 9 })).toThrow(/at most 8 ways/);
    expect(() => digits({}, { ways: 9 })).toThrow(FamilySpecError);
    expect(() => digits({ size: 28 } as never)).toThrow(/params.size: unknown parameter/);
  });
});
