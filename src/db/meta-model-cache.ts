/**
 * Hot meta-models: decoded meta-parameters by meta-model id, so an adaptation or a prediction reads
 * only its own row from Postgres. Both roles hold one (the worker's adapt processor, the API's adapt
 * and predict routes), so it lives in db/, below both, beside the loader it caches (loadMetaModel in
 * repositories/meta-models.ts). A meta-model version never changes once stored, so entries are never
 * stale and only leave to keep the cache within its bounds (least recently used first). Concurrent
 * misses on one id share one load, so a burst of adaptations against a cold meta-model decodes it once.
 */
import type { MetaModel } from '../meta/index.js';
import { Lru } from '../util/lru.js';

export interface MetaModelCacheOptions {
  /** Most meta-models held. Default 64. */
  maxEntries?: number;
  /** Most bytes of decoded parameters held. Default 256 MiB. A single larger model is not cached. */
  maxBytes?: number;
}

/** What a load returns: the model and the bytes its parameters take. */
export interface LoadedMetaModel {
  model: MetaModel;
  bytes: number;
}

export class MetaModelCache {
  private readonly entries: Lru<string, LoadedMetaModel>;
  private readonly loading = new Map<string, Promise<MetaModel | null>>();
  /** Loads that went to the store (for tests and metrics). */
  misses = 0;
  hits = 0;

  constructor(options: MetaModelCacheOptions = {}) {
    this.entries = new Lru({ maxEntries: options.maxEntries ?? 64, maxWeight: options.maxBytes ?? 256 * 1024 * 1024, weigh: (e) => e.bytes });
  }

  /**
   * The meta-model `id`, from memory or else from `load` (null: it does not exist, and nothing is
   * remembered). A load that throws is not remembered either: the next call tries again.
   */
  async get(id: string, load: (id: string) => Promise<LoadedMetaModel | null>): Promise<MetaModel | null> {
    const held = this.entries.get(id);
    if (held) {
      this.hits++;
      return held.model;
    }
    const pending = this.loading.get(id);
    if (pending) return pending;
    this.misses++;
    const loaded = load(id)
      .then((entry) => {
        if (entry) this.entries.set(id, entry);
        return entry?.model ?? null;
      })
      .finally(() => this.loading.delete(id));
    this.loading.set(id, loaded);
    return loaded;
  }

  /** Meta-models held now. */
  get size(): number {
    return this.entries.size;
  }

  /** Bytes of parameters held now. */
  get bytes(): number {
    return this.entries.weight;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  clear(): void {
    this.entries.clear();
  }
}
