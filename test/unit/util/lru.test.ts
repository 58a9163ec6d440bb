import { describe, expect, it } from 'vitest';
import { Lru } from '../../../src/util/lru.js';

const keys = (lru: Lru<string, number>) => [...lru.entries()].map(([k]) => k);

describe('Lru', () => {
  it('evicts the least recently used beyond maxEntries; get marks an entry used, peek does not', () => {
    const lru = new Lru<string, number>({ maxEntries: 3 });
    lru.set('a', 1);
    lru.set('b', 2);
    lru.set('c', 3);
    expect(lru.get('a')).toBe(1);
    expect(lru.peek('b')).toBe(2);
    lru.set('d', 4);
    expect(keys(lru)).toEqual(['c', 'a', 'd']);
    expect(lru.get('b')).toBeUndefined();
    expect(lru.size).toBe(3);
  });

  it('re-setting a key moves it to most recently used without growing', () => {
    const lru = new Lru<string, number>({ maxEntries: 2 });
    lru.set('a', 1);
    lru.set('b', 2);
    lru.set('a', 10);
    lru.set('c', 3);
    expect(keys(lru)).toEqual(['a', 'c']);
    expect(lru.get('a')).toBe(10);
  });

  it('keeps the order right through hits on the newest key and deletes', () => {
    const lru = new Lru<string, number>({ maxEntries: 2 });
    lru.set('a', 1);
    lru.set('b', 2);
    expect(lru.get('b')).toBe(2);
    expect(lru.get('a')).toBe(1);
    lru.set('c', 3);
    expect(keys(lru)).toEqual(['a', 'c']);
    lru.delete('c');
    expect(lru.get('c')).toBeUndefined();
    lru.set('d', 4);
    lru.set('c', 3);
    expect(keys(lru)).toEqual(['d', 'c']);
  });

  it('drops stale entries before live ones when full', () => {
    const expired = new Set(['b']);
    const lru = new Lru<string, number>({ maxEntries: 3, isStale: (v) => expired.has(String.fromCharCode(96 + v)) });
    lru.set('a', 1);
    lru.set('b', 2);
    lru.set('c', 3);
    lru.set('d', 4);
    expect(keys(lru)).toEqual(['a', 'c', 'd']);
  });

  it('deleteWhere removes the picked entries; maxEntries 0 holds nothing', () => {
    const lru = new Lru<string, number>({ maxEntries: 5 });
    for (const [i, k] of ['a', 'b', 'c', 'd'].entries()) lru.set(k, i);
    lru.deleteWhere((v) => v % 2 === 0);
    expect(keys(lru)).toEqual(['b', 'd']);
    const none = new Lru<string, number>({ maxEntries: 0 });
    none.set('a', 1);
    expect(none.size).toBe(0);
    expect(() => new Lru({ maxEntries: -1 })).toThrow(RangeError);
  });

  it('keeps the total weight within maxWeight, least recently used leaving first, and refuses a value heavier than it', () => {
    const lru = new Lru<string, { bytes: number }>({ maxEntries: 10, maxWeight: 100, weigh: (v) => v.bytes });
    lru.set('a', { bytes: 40 });
    lru.set('b', { bytes: 40 });
    lru.get('a');
    lru.set('c', { bytes: 30 });
    expect([...lru.entries()].map(([k]) => k)).toEqual(['a', 'c']);
    expect(lru.weight).toBe(70);
    lru.set('a', { bytes: 10 });
    expect(lru.weight).toBe(40);
    lru.set('huge', { bytes: 101 });
    expect(lru.has('huge')).toBe(false);
    lru.set('c', { bytes: 101 });
    expect([...lru.entries()].map(([k]) => k)).toEqual(['a']);
    expect(lru.weight).toBe(10);
    lru.deleteWhere(() => true);
    expect(lru.weight).toBe(0);
  });
});
