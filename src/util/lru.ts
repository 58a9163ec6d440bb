/**
 * A bounded map that forgets the least recently used entry first: the one LRU behind every
 * in-process cache (API keys, rate-limit leases and refusals, adapt targets, served heads).
 *
 * A Map iterates in insertion order, so re-inserting a key on use keeps the least recently used
 * first in line to leave. The most recently used key is remembered, so a run of hits on one key (the
 * common case on a hot path) costs one lookup and allocates nothing. Freshness (TTL, versions) is
 * the caller's: it reads with `get` and deletes what it finds too old.
 */
export interface LruOptions<V> {
  /** Most entries held; beyond it the least recently used leave. 0 holds nothing. */
  maxEntries: number;
  /**
   * Entries that are no use any more (e.g. past their window). Only asked when the map is full, and
   * then every stale entry leaves before any live one is evicted. Default: none is stale.
   */
  isStale?: (value: V) => boolean;
}

/** Keys are never undefined (`newest` uses undefined for "unknown"); values are not either (`get`'s "absent"). */
export class Lru<K extends NonNullable<unknown>, V extends NonNullable<unknown>> {
  private readonly map = new Map<K, V>();
  /**
   * The key `map` holds last (most recently used): a hit on it needs no reordering. Every insert
   * sets it, so once deleted it names no entry and a `get` of it finds nothing.
   */
  private newest: K | undefined;
  private readonly maxEntries: number;
  private readonly isStale: ((value: V) => boolean) | undefined;

  constructor(options: LruOptions<V>) {
    if (!(options.maxEntries >= 0)) throw new RangeError(`maxEntries must be 0 or more, got ${options.maxEntries}`);
    this.maxEntries = options.maxEntries;
    this.isStale = options.isStale;
  }

  /** The value under `key`, marked most recently used; undefined when absent. */
  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value === undefined || this.newest === key) return value;
    this.map.delete(key);
    this.map.set(key, value);
    this.newest = key;
    return value;
  }

  /** The value under `key` without marking it used. */
  peek(key: K): V | undefined {
    return this.map.get(key);
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  /** Stores `value` as the most recently used, first making room: stale entries (when full), then the least recently used. */
  set(key: K, value: V): void {
    if (this.maxEntries === 0) return;
    this.map.delete(key);
    if (this.map.size >= this.maxEntries && this.isStale) this.deleteWhere(this.isStale);
    for (const oldest of this.map.keys()) {
      if (this.map.size < this.maxEntries) break;
      this.map.delete(oldest);
    }
    this.map.set(key, value);
    this.newest = key;
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  /** Deletes every entry `drop` picks (a revoked key's entries, expired ones). */
  deleteWhere(drop: (value: V, key: K) => boolean): void {
    for (const [key, value] of this.map) if (drop(value, key)) this.delete(key);
  }

  clear(): void {
    this.map.clear();
    this.newest = undefined;
  }

  /** Entries held now. */
  get size(): number {
    return this.map.size;
  }

  /** Entries, least recently used first. */
  entries(): IterableIterator<[K, V]> {
    return this.map.entries();
  }
}
