/**
 * The hot meta-model cache on its own (no services needed): least recently used entries leave first
 * when the count or byte bound is exceeded, concurrent misses share one load, and neither a missing
 * meta-model nor a failed load is remembered.
 */
import { describe, expect, it } from 'vitest';
import { MetaModelCache, type LoadedMetaModel } from '../../src/db/meta-model-cache.js';
import { modelSpec, type MetaModel } from '../../src/meta/index.js';

function entry(bytes: number): LoadedMetaModel {
  const model: MetaModel = { algorithm: 'maml', spec: modelSpec('regression', 1, { hidden: [4] }), params: {}, inner: { steps: 1, lr: 0.01 } };
  return { model, bytes };
}

/** A loader that counts its calls and answers after a tick. */
function loader(sizes: Record<string, number>) {
  const calls: string[] = [];
  const load = async (id: string) => {
    calls.push(id);
    await new Promise((r) => setTimeout(r, 1));
    return id in sizes ? entry(sizes[id]) : null;
  };
  return { calls, load };
}

describe('MetaModelCache', () => {
  it('keeps at most maxEntries, evicting the least recently used', async () => {
    const cache = new MetaModelCache({ maxEntries: 2 });
    const { calls, load } = loader({ a: 10, b: 10, c: 10 });
    await cache.get('a', load);
    await cache.get('b', load);
    await cache.get('a', load); // a is now the most recently used
    await cache.get('c', load); // evicts b
    expect([cache.has('a'), cache.has('b'), cache.has('c')]).toEqual([true, false, true]);
    expect(cache.size).toBe(2);
    await cache.get('b', load);
    expect(calls).toEqual(['a', 'b', 'c', 'b']);
    expect({ hits: cache.hits, misses: cache.misses }).toEqual({ hits: 1, misses: 4 });
  });

  it('keeps at most maxBytes and never holds a model larger than the bound', async () => {
    const cache = new MetaModelCache({ maxBytes: 100 });
    const { load } = loader({ a: 60, b: 30, c: 50, huge: 101 });
    await cache.get('a', load);
    await cache.get('b', load);
    expect(cache.bytes).toBe(90);
    await cache.get('c', load); // 140 > 100: a (oldest) leaves
    expect([cache.has('a'), cache.has('b'), cache.has('c')]).toEqual([false, true, true]);
    expect(cache.bytes).toBe(80);
    expect(await cache.get('huge', load)).not.toBeNull();
    expect(cache.has('huge')).toBe(false);
    expect(cache.bytes).toBe(80);
  });

  it('shares one load between concurrent misses of one id', async () => {
    const cache = new MetaModelCache();
    const { calls, load } = loader({ a: 10 });
    const models = await Promise.all(Array.from({ length: 5 }, () => cache.get('a', load)));
    expect(calls).toEqual(['a']);
    expect(new Set(models).size).toBe(1);
  });

  it('remembers neither a missing meta-model nor a failed load', async () => {
    const cache = new MetaModelCache();
    const { calls, load } = loader({});
    expect(await cache.get('gone', load)).toBeNull();
    expect(await cache.get('gone', load)).toBeNull();
    expect(calls).toEqual(['gone', 'gone']);
    let attempts = 0;
    const flaky = async () => {
      attempts++;
      if (attempts === 1) throw new Error('connection reset');
      return entry(10);
    };
    await expect(cache.get('x', flaky)).rejects.toThrow('connection reset');
    expect(await cache.get('x', flaky)).not.toBeNull();
    expect(attempts).toBe(2);
  });
});
