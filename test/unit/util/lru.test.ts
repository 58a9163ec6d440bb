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
});
