/**
 * Adapted heads ready to serve, by task id, in this API process: a prediction on a cached task
 * touches neither Postgres nor Redis. The cache is told when a task gets a new head version (the
 * `<prefix>:adapted` message every API process receives, see plugins/adapted.ts) and drops the older
 * one; the next request loads the new version.
 *
 * Messages can be lost while the subscriber's connection is down, so entries also expire after
 * `maxAgeMs`, and the whole cache is cleared when the subscription is re-established.
 */
import type { PreparedNetwork } from '../meta/predict-arrays.js';
import { Lru } from '../util/lru.js';

/** A task's latest head with its body, prepared for serving (plain JS, or the engine for a conv body: prepareNetwork). */
export interface ServedHead {
  tenantId: string;
  taskId: string;
  /** The meta-model it was adapted from (its calibration answers coverage and novelty). */
  metaModelId: string;
  headVersion: number;
  network: PreparedNetwork;
  /** The task's class names in index order (empty: none), so predictions answer names. */
  labels?: readonly string[];
}

/** What serving a task finds: no such task (for this tenant), a task never adapted, or its head. */
export type HeadLookup = { status: 'missing' } | { status: 'not-adapted' } | { status: 'no-version' } | { status: 'ready'; head: ServedHead };

export interface PredictCacheOptions {
  /** Reads a task's latest head from the store, scoped to the tenant. */
  load(tenantId: string, taskId: string): Promise<HeadLookup>;
  /** Most tasks held; the least recently used leaves first. Default 10000. */
  maxEntries?: number;
  /** An entry older than this is reloaded (a backstop for a lost invalidation). Default 60000 ms. */
  maxAgeMs?: number;
  /** Clock, for tests. Default Date.now. */
  now?: () => number;
  /** Told of every lookup, whether memory answered it (metrics). Default: nobody. */
  onLookup?: (hit: boolean) => void;
}

interface Entry {
  head: ServedHead;
  loadedAt: number;
  /** The answer for the head's own tenant, made once: a hit allocates nothing. */
  ready: HeadLookup;
}

const MISSING: HeadLookup = Object.freeze({ status: 'missing' });

interface PendingLoad {
  taskId: string;
  promise: Promise<HeadLookup>;
  /** stale: a newer version landed while this load ran, so its answer may be old and is not cached. */
  state: { stale: boolean };
}

export class PredictCache {
  /** Heads by task id; a hit marks its task most recently used, and a hit on the newest allocates nothing. */
  private readonly entries: Lru<string, Entry>;
  /** In-flight loads by tenant and task, so a burst of misses on one task reads it once. */
  private readonly loading = new Map<string, PendingLoad>();
  private readonly load: PredictCacheOptions['load'];
  private readonly maxAgeMs: number;
  private readonly now: () => number;
  private readonly onLookup: (hit: boolean) => void;
  /** Lookups answered from memory / from the store (for tests and metrics). */
  hits = 0;
  misses = 0;

  constructor(options: PredictCacheOptions) {
    this.load = options.load;
    this.entries = new Lru({ maxEntries: options.maxEntries ?? 10_000 });
    this.maxAgeMs = options.maxAgeMs ?? 60_000;
    this.now = options.now ?? Date.now;
    this.onLookup = options.onLookup ?? (() => {});
  }

  /**
   * The task's latest head for this tenant. Another tenant's task answers 'missing', exactly like a
   * task that does not exist. Never-adapted tasks are not remembered (their first head arrives by a
   * message anyway).
   */
  get(tenantId: string, taskId: string): Promise<HeadLookup> | HeadLookup {
    const entry = this.entries.get(taskId);
    if (entry && this.now() - entry.loadedAt <= this.maxAgeMs) {
      this.hits++;
      this.onLookup(true);
      return entry.head.tenantId === tenantId ? entry.ready : MISSING;
    }
    if (entry) this.entries.delete(taskId);
    const key = `${tenantId}/${taskId}`;
    const pending = this.loading.get(key);
    if (pending) return pending.promise;
    this.misses++;
    this.onLookup(false);
    const started = this.now();
    const state = { stale: false };
    const promise = this.load(tenantId, taskId)
      .then((found) => {
        if (found.status === 'ready' && !state.stale) this.remember(found.head, started);
        return found;
      })
      .finally(() => {
        if (this.loading.get(key)?.promise === promise) this.loading.delete(key);
      });
    this.loading.set(key, { taskId, promise, state });
    return promise;
  }

  /**
   * Version `headVersion` of the task was stored: forget any older one, and keep loads that started
   * before now from caching what they read.
   */
  invalidate(taskId: string, headVersion: number): void {
    const entry = this.entries.peek(taskId);
    if (entry && entry.head.headVersion < headVersion) this.entries.delete(taskId);
    this.staleLoads(taskId);
  }

  /**
   * The task's served head changed other than by a newer version (a pin, a rollback) or the task is
   * gone: forget it whatever version is held, and keep loads under way from caching what they read.
   */
  forget(taskId: string): void {
    this.entries.delete(taskId);
    this.staleLoads(taskId);
  }

  private staleLoads(taskId: string): void {
    for (const [key, load] of this.loading) {
      if (load.taskId !== taskId) continue;
      load.state.stale = true;
      this.loading.delete(key);
    }
  }

  /** Forgets everything (e.g. after the invalidation feed was interrupted). */
  clear(): void {
    this.entries.clear();
    for (const load of this.loading.values()) load.state.stale = true;
    this.loading.clear();
  }

  /** Tasks held now. */
  get size(): number {
    return this.entries.size;
  }

  /** The version held for a task, if any (for tests). */
  heldVersion(taskId: string): number | undefined {
    return this.entries.peek(taskId)?.head.headVersion;
  }

  private remember(head: ServedHead, loadedAt: number): void {
    const held = this.entries.peek(head.taskId);
    // A slower load must not replace a newer version another load already cached.
    if (held && held.head.headVersion > head.headVersion) return;
    this.entries.set(head.taskId, { head, loadedAt, ready: Object.freeze({ status: 'ready', head }) });
  }
}
