import { describe, expect, it } from 'vitest';
import { Rng } from '../../../src/meta/rng.js';
import type { Episode, Split, TaskFamily } from '../../../src/meta/types.js';
import {
  createFamily,
  EpisodeShapeError,
  FamilyMixError,
  FamilySpecError,
  gaussianBlobs,
  linear,
  mix,
  packEpisodes,
  polynomial,
  sinusoid,
  type RegressionTask,
} from '../../../src/meta/families/index.js';

const shape = { shots: 10, queryShots: 10 };

function fits(task: RegressionTask, ep: Episode, inputDim = 1): boolean {
  for (const part of [ep.support, ep.query]) {
    for (let i = 0; i < part.n; i++) {
      if (Math.abs(task.value(part.x, i * inputDim) - part.y[i]) > 1e-4) return false;
    }
  }
  return true;
}

describe('regression generators', () => {
  it('sinusoid follows Finn et al.: y = A sin(x - phi), A in [0.1, 5], phi in [0, pi], x in [-5, 5]', () => {
    const family = sinusoid();
    expect([family.kind, family.inputDim, family.ways]).toEqual(['regression', 1, undefined]);
    const rng = new Rng(7);
    for (let i = 0; i < 200; i++) {
      const task = family.sampleTask(rng, 'train');
      const [a, phi] = task.params;
      expect(a).toBeGreaterThanOrEqual(0.1);
      expect(a).toBeLessThan(5);
      expect(phi).toBeGreaterThanOrEqual(0);
      expect(phi).toBeLessThan(Math.PI);
      const ep = family.episodeFor(task, rng, shape);
      expect(fits(task, ep)).toBe(true);
      for (const v of ep.support.x) expect(Math.abs(v)).toBeLessThanOrEqual(5);
      for (const v of ep.support.y) expect(Math.abs(v)).toBeLessThanOrEqual(a + 1e-5);
    }
  });

  it('produces the shapes asked for', () => {
    const ep = linear({}, { inputDim: 3 }).sampleEpisode(new Rng(1), 'train', { shots: 4, queryShots: 6 });
    expect([ep.support.n, ep.support.x.length, ep.support.y.length]).toEqual([4, 12, 4]);
    expect([ep.query.n, ep.query.x.length, ep.query.y.length]).toEqual([6, 18, 6]);
  });

  it('linear and polynomial targets are the drawn functions of the inputs', () => {
    const lin = linear({ slope: [2, 2], intercept: [-1, -1] }, { inputDim: 2 });
    const ep = lin.sampleEpisode(new Rng(3), 'train', shape);
    for (let i = 0; i < ep.support.n; i++) {
      expect(ep.support.y[i]).toBeCloseTo(2 * ep.support.x[2 * i] + 2 * ep.support.x[2 * i + 1] - 1, 4);
    }
    const cubic = polynomial({ degree: 3, coefficient: [1, 1] });
    const pe = cubic.sampleEpisode(new Rng(3), 'train', shape);
    for (let i = 0; i < pe.query.n; i++) {
      const x = pe.query.x[i];
      expect(pe.query.y[i]).toBeCloseTo(1 + x + x * x + x * x * x, 4);
    }
  });

  it('adds noise of the requested size', () => {
    const noisy = sinusoid({ amplitude: [1, 1], phase: [0, 0], noise: 0.5 });
    const ep = noisy.sampleEpisode(new Rng(5), 'train', { shots: 2000, queryShots: 1 });
    const residuals = Array.from(ep.support.y, (y, i) => y - Math.sin(ep.support.x[i]));
    const std = Math.sqrt(residuals.reduce((s, r) => s + r * r, 0) / residuals.length);
    expect(std).toBeGreaterThan(0.45);
    expect(std).toBeLessThan(0.55);
  });

  it('is a pure function of the seed', () => {
    for (const family of [sinusoid(), linear({}, { inputDim: 2 }), polynomial(), gaussianBlobs()] as TaskFamily[]) {
      for (const split of ['train', 'val', 'test'] as Split[]) {
        const a = family.sampleEpisode(new Rng(42), split, { shots: 3, queryShots: 2 });
        const b = family.sampleEpisode(new Rng(42), split, { shots: 3, queryShots: 2 });
        const c = family.sampleEpisode(new Rng(43), split, { shots: 3, queryShots: 2 });
        expect(b).toEqual(a);
        expect(c.support.x).not.toEqual(a.support.x);
      }
    }
  });

  it('held-out splits are fixed pools, disjoint from training tasks and from each other', () => {
    const family = sinusoid({ heldOutTasks: 20 });
    const val = family.heldOutTasks('val');
    const test = family.heldOutTasks('test');
    expect(val).toHaveLength(20);
    const key = (t: RegressionTask) => t.params.join(',');
    expect(new Set([...val.map(key), ...test.map(key)]).size).toBe(40);
    // A pool is the same whichever rng the caller uses: validation curves stay comparable.
    expect(sinusoid({ heldOutTasks: 20 }).heldOutTasks('val').map(key)).toEqual(val.map(key));
    expect(sinusoid({ heldOutTasks: 20, heldOutSeed: 1 }).heldOutTasks('val').map(key)).not.toEqual(val.map(key));

    const rng = new Rng(0); // the same seed as the pools must still give other tasks
    for (let i = 0; i < 100; i++) {
      const valEpisode = family.sampleEpisode(rng, 'val', shape);
      expect(val.some((t) => fits(t, valEpisode))).toBe(true);
      expect(test.some((t) => fits(t, valEpisode))).toBe(false);
      const trainEpisode = family.sampleEpisode(rng, 'train', shape);
      expect([...val, ...test].some((t) => fits(t, trainEpisode))).toBe(false);
    }
  });

  it('rejects bad episode shapes', () => {
    expect(() => sinusoid().sampleEpisode(new Rng(1), 'train', { shots: 0, queryShots: 5 })).toThrow(EpisodeShapeError);
    expect(() => sinusoid().sampleEpisode(new Rng(1), 'train', { shots: 2.5, queryShots: 5 })).toThrow(/shots must be a positive integer/);
  });

  it('validates parameters with the field path', () => {
    expect(() => sinusoid({ amplitude: [5, 1] })).toThrow('params.amplitude: low (5) must not exceed high (1)');
    expect(() => sinusoid({ phase: [0, Number.NaN] } as never)).toThrow('params.phase[1]: must be a finite number');
    expect(() => sinusoid({ frequency: 2 } as never)).toThrow(/params.frequency: unknown parameter/);
    expect(() => polynomial({ degree: 4 })).toThrow('params.degree: must be between 0 and 3');
    expect(() => polynomial({ degree: 1.5 })).toThrow('params.degree: must be an integer');
    expect(() => linear({ noise: -1 })).toThrow('params.noise: must be between 0');
    expect(() => gaussianBlobs({ spread: '1' } as never)).toThrow('params.spread: must be a finite number');
  });
});

describe('gaussian blobs', () => {
  it('draws N-way episodes whose examples sit around their class means', () => {
    const family = gaussianBlobs({ meanScale: 10, spread: 0.1 }, { inputDim: 3, ways: 4 });
    expect([family.kind, family.inputDim, family.ways]).toEqual(['classification', 3, 4]);
    const ep = family.sampleEpisode(new Rng(9), 'train', { shots: 2, queryShots: 3 });
    expect(ep.support.n).toBe(8);
    expect(ep.query.n).toBe(12);
    expect(Array.from(ep.support.y)).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
    // Nearest support example always has the query's label: classes are separated, spread is small.
    for (let q = 0; q < ep.query.n; q++) {
      let best = -1;
      let bestDist = Infinity;
      for (let s = 0; s < ep.support.n; s++) {
        let dist = 0;
        for (let d = 0; d < 3; d++) dist += (ep.query.x[q * 3 + d] - ep.support.x[s * 3 + d]) ** 2;
        if (dist < bestDist) [best, bestDist] = [s, dist];
      }
      expect(ep.support.y[best]).toBe(ep.query.y[q]);
    }
  });

  it('serves fewer ways from a subset of the classes, never more', () => {
    const family = gaussianBlobs({}, { ways: 5 });
    expect(family.sampleEpisode(new Rng(1), 'val', { shots: 1, queryShots: 1, ways: 3 }).support.n).toBe(3);
    expect(() => family.sampleEpisode(new Rng(1), 'val', { shots: 1, queryShots: 1, ways: 6 })).toThrow(/at most 5 ways/);
  });
});

describe('mix', () => {
  it('draws each family in proportion to its weight', () => {
    const a = sinusoid({ amplitude: [1, 1], phase: [0, 0] }, { name: 'a' });
    const b = linear({ slope: [0, 0], intercept: [100, 100] }, { name: 'b' });
    const mixed = mix([
      { family: a, weight: 3 },
      { family: b, weight: 1 },
    ]);
    expect(mixed.name).toBe('mix(a, b)');
    const rng = new Rng(11);
    let fromB = 0;
    for (let i = 0; i < 2000; i++) if (mixed.sampleEpisode(rng, 'train', { shots: 1, queryShots: 1 }).query.y[0] === 100) fromB++;
    expect(fromB / 2000).toBeGreaterThan(0.22);
    expect(fromB / 2000).toBeLessThan(0.28);
  });

  it('keeps the classification ways of its members', () => {
    const mixed = mix([{ family: gaussianBlobs({}, { ways: 3 }), weight: 1 }, { family: gaussianBlobs({ spread: 2 }, { ways: 3 }), weight: 1 }]);
    expect([mixed.kind, mixed.ways]).toEqual(['classification', 3]);
  });

  it('rejects members that disagree, naming the entry', () => {
    const reg = sinusoid();
    const cases: [() => TaskFamily, RegExp, number][] = [
      [() => mix([]), /at least one family/, 0],
      [() => mix([{ family: reg, weight: 1 }, { family: linear({}, { inputDim: 2 }), weight: 1 }]), /inputDim 2 .* must share inputDim/, 1],
      [() => mix([{ family: reg, weight: 1 }, { family: gaussianBlobs({}, { inputDim: 1 }), weight: 1 }]), /must share a kind/, 1],
      [() => mix([{ family: gaussianBlobs({}, { ways: 5 }), weight: 1 }, { family: gaussianBlobs({}, { ways: 3 }), weight: 1 }]), /must share ways/, 1],
      [() => mix([{ family: reg, weight: 0 }]), /weights must be finite and > 0/, 0],
      [() => mix([{ family: reg, weight: 1 }, { family: reg, weight: Number.NaN }]), /weights must be finite/, 1],
    ];
    for (const [make, message, index] of cases) {
      const err = (() => {
        try {
          make();
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(FamilyMixError);
      expect((err as FamilyMixError).message).toMatch(message);
      expect((err as FamilyMixError).index).toBe(index);
    }
  });
});

describe('packEpisodes', () => {
  it('packs task-major', () => {
    const family = linear({}, { inputDim: 2 });
    const rng = new Rng(4);
    const eps = [0, 1, 2].map(() => family.sampleEpisode(rng, 'train', { shots: 3, queryShots: 4 }));
    const batch = packEpisodes(eps);
    expect([batch.tasks, batch.inputDim, batch.supportSize, batch.querySize]).toEqual([3, 2, 3, 4]);
    expect(batch.support.x.length).toBe(18);
    expect(Array.from(batch.support.x.subarray(6, 12))).toEqual(Array.from(eps[1].support.x));
    expect(Array.from(batch.query.y.subarray(8, 12))).toEqual(Array.from(eps[2].query.y));
  });

  it('throws when sizes differ', () => {
    const family = sinusoid();
    const rng = new Rng(4);
    const a = family.sampleEpisode(rng, 'train', { shots: 3, queryShots: 4 });
    const b = family.sampleEpisode(rng, 'train', { shots: 3, queryShots: 5 });
    expect(() => packEpisodes([a, b])).toThrow(/episode 1 has query n=5/);
    expect(() => packEpisodes([])).toThrow(/at least one episode/);
    const wide = linear({}, { inputDim: 2 }).sampleEpisode(rng, 'train', { shots: 3, queryShots: 4 });
    expect(() => packEpisodes([a, wide])).toThrow(/episode 1 has support/);
  });
});

describe('createFamily', () => {
  const base = { name: 'sine', kind: 'regression', inputDim: 1 };

  it('builds generator and dataset families from API specs', () => {
    const sine = createFamily({ ...base, generator: { type: 'sinusoid', params: { amplitude: [1, 2] } } });
    expect([sine.name, sine.kind, sine.inputDim]).toEqual(['sine', 'regression', 1]);
    const blobs = createFamily({ name: 'b', kind: 'classification', inputDim: 4, nWay: 3, generator: { type: 'gaussian-blobs' } });
    expect(blobs.sampleEpisode(new Rng(1), 'train', { shots: 2, queryShots: 1 }).support.x.length).toBe(3 * 2 * 4);
    const data = createFamily({ ...base, tasks: [{ x: [[0], [1], [2]], y: [0, 1, 2] }] });
    expect(data.sampleEpisode(new Rng(1), 'train', { shots: 2, queryShots: 1 }).support.n).toBe(2);
  });

  it('knows which families hold images: digits its own shape, stored tasks the one declared', () => {
    const d = createFamily({ name: 'd', kind: 'classification', inputDim: 196, nWay: 5, generator: { type: 'digits' } });
    expect(d.inputShape).toEqual([14, 14, 1]);
    // Restating a generator's own shape is harmless.
    expect(createFamily({ name: 'd', kind: 'classification', inputDim: 196, nWay: 5, inputShape: [14, 14, 1], generator: { type: 'digits' } }).inputShape).toEqual([14, 14, 1]);
    expect(createFamily({ ...base, generator: { type: 'sinusoid' } }).inputShape).toBeUndefined();
    const tasks = [{ x: [[0, 0, 0, 0], [1, 1, 1, 1]], y: [0, 1] }];
    expect(createFamily({ ...base, inputDim: 4, inputShape: [1, 2, 2], tasks }).inputShape).toEqual([1, 2, 2]);
    expect(createFamily({ ...base, inputDim: 4, tasks }).inputShape).toBeUndefined();
    // A mix holds images only when every member has the same shape.
    expect(mix([{ family: d, weight: 1 }, { family: d, weight: 2 }]).inputShape).toEqual([14, 14, 1]);
    const blobs = createFamily({ name: 'b', kind: 'classification', inputDim: 196, nWay: 5, generator: { type: 'gaussian-blobs' } });
    expect(mix([{ family: d, weight: 1 }, { family: blobs, weight: 1 }]).inputShape).toBeUndefined();
  });

  it('rejects bad specs with the field path', () => {
    const cases: [unknown, string][] = [
      [null, ''],
      [{ ...base, name: '' }, 'name'],
      [{ ...base, kind: 'ranking', generator: { type: 'sinusoid' } }, 'kind'],
      [{ ...base, inputDim: 0, generator: { type: 'sinusoid' } }, 'inputDim'],
      [{ ...base, inputDim: 2, generator: { type: 'sinusoid' } }, 'inputDim'],
      [{ ...base, nWay: 5, generator: { type: 'sinusoid' } }, 'nWay'],
      [{ ...base, kind: 'classification', generator: { type: 'gaussian-blobs' } }, 'nWay'],
      [{ ...base, kind: 'classification', nWay: 5, generator: { type: 'sinusoid' } }, 'kind'],
      [{ ...base }, 'generator'],
      [{ ...base, generator: { type: 'sinusoid' }, tasks: [] }, 'tasks'],
      [{ ...base, generator: { type: 'fourier' } }, 'generator.type'],
      [{ ...base, generator: { type: 'sinusoid', seed: 1 } }, 'generator.seed'],
      [{ ...base, generator: { type: 'sinusoid', params: [] } }, 'generator.params'],
      [{ ...base, generator: { type: 'sinusoid', params: { amplitude: [1] } } }, 'generator.params.amplitude'],
      [{ ...base, generator: { type: 'sinusoid', params: { x: [0, 'a'] } } }, 'generator.params.x[1]'],
      [{ name: 'd', kind: 'classification', inputDim: 196, nWay: 9, generator: { type: 'digits' } }, 'nWay'],
      [{ name: 'd', kind: 'classification', inputDim: 10, nWay: 5, generator: { type: 'digits' } }, 'inputDim'],
      [{ ...base, tasks: [{ x: [[0], [1]], y: [0] }] }, 'tasks[0].y'],
      [{ ...base, tasks: [{ x: [[0], [1, 2]], y: [0, 1] }] }, 'tasks[0].x[1]'],
      [{ ...base, inputDim: 4, inputShape: [2, 2], tasks: [{ x: [[0, 0, 0, 0], [1, 1, 1, 1]], y: [0, 1] }] }, 'inputShape'],
      [{ ...base, inputDim: 4, inputShape: [2, 2, 0], tasks: [{ x: [[0, 0, 0, 0], [1, 1, 1, 1]], y: [0, 1] }] }, 'inputShape'],
      [{ ...base, inputDim: 4, inputShape: [2, 1.5, 1], tasks: [{ x: [[0, 0, 0, 0], [1, 1, 1, 1]], y: [0, 1] }] }, 'inputShape'],
      [{ ...base, inputDim: 4, inputShape: [2, 2, 2], tasks: [{ x: [[0, 0, 0, 0], [1, 1, 1, 1]], y: [0, 1] }] }, 'inputShape'],
      [{ ...base, inputShape: [1, 1, 1], generator: { type: 'sinusoid' } }, 'inputShape'],
      [{ name: 'd', kind: 'classification', inputDim: 196, nWay: 5, inputShape: [196, 1, 1], generator: { type: 'digits' } }, 'inputShape'],
    ];
    for (const [spec, path] of cases) {
      let caught: unknown;
      try {
        createFamily(spec);
      } catch (e) {
        caught = e;
      }
      expect(caught, JSON.stringify(spec)).toBeInstanceOf(FamilySpecError);
      expect((caught as FamilySpecError).path, JSON.stringify(spec)).toBe(path);
    }
  });
});
