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
   * Most total weight held (see `weigh`, e.g. bytes); beyond it the least recently used leave, and a
   * single value heavier than this is not stored at all. Default: no limit.
   */
  maxWeight?: number;
  /** A value's weight, counted against `maxWeight`; the same for a value every time. Default: weights are not counted. */
  weigh?: (value: V) => number;
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
  private readonly maxWeight: number;
  private readonly weigh: ((value: V) => number) | undefined;
  private readonly isStale: ((value: V) => boolean) | undefined;
  private heldWeight = 0;

  constructor(options: LruOptions<V>) {
    const { maxEntries, maxWeight = Infinity } = options;
    if (!(maxEntries >= 0)) throw new RangeError(`maxEntries must be 0 or more, got ${maxEntries}`);
    if (!(maxWeight >= 0)) throw new RangeError(`maxWeight must be 0 or more, got ${maxWeight}`);
    this.maxEntries = maxEntries;
    this.maxWeight = maxWeight;
    this.weigh = options.weigh;
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

  /**
   * Stores `value` as the most recently used, first making room: stale entries (when full), then
   * the least recently used. A value heavier than `maxWeight` is not stored (an older value under
   * `key` leaves all the same).
   */
  set(key: K, value: V): void {
    const weight = this.weigh ? this.weigh(value) : 0;
    this.delete(key);
    if (this.maxEntries === 0 || weight > this.maxWeight) return;
    if (this.isStale && !this.hasRoom(weight)) this.deleteWhere(this.isStale);
    for (const oldest of this.map.keys()) {
      if (this.hasRoom(weight)) break;
      this.delete(oldest);
    }
    this.map.set(key, value);
    this.heldWeight += weight;
    this.newest = key;
  }

  delete(key: K): boolean {
    if (!this.weigh) return this.map.delete(key);
    const value = this.map.get(key);
    if (value === undefined) return false;
    this.heldWeight -= this.weigh(value);
    return this.map.delete(key);
  }

  /** Deletes every entry `drop` picks (a revoked key's entries, expired ones). */
  deleteWhere(drop: (value: V, key: K) => boolean): void {
    for (const [key, value] of this.map) if (drop(value, key)) this.delete(key);
  }

  clear(): void {
    this.map.clear();
    this.heldWeight = 0;
    this.newest = undefined;
  }

  /** Entries held now. */
  get size(): number {
    return this.map.size;
  }

  /** Total weight held now (0 without `weigh`). */
  get weight(): number {
    return this.heldWeight;
  }

  /** Entries, least recently used first. */
  entries(): IterableIterator<[K, V]> {
    return this.map.entries();
  }

  /** Whether one more entry of `weight` fits. */
  private hasRoom(weight: number): boolean {
    return this.map.size < this.maxEntries && this.heldWeight + weight <= this.maxWeight;
  }
}
