/**
 * The predict cache and the adapt waiters on their own (no services): one load per burst of misses,
 * a load overtaken by a newer version is answered but not kept, tenants never see each other's tasks,
 * entries expire and are evicted least recently used first; waiters settle by message or time out.
 */
import { describe, expect, it } from 'vitest';
import { AdaptWaiters } from '../../src/http/adapt-waiters.js';
import { PredictCache, type HeadLookup } from '../../src/http/predict-cache.js';
import type { AdaptedMessage } from '../../src/jobs/adapted.js';
import { modelSpec, Rng } from '../../src/meta/index.js';
import { initModelParams } from '../../src/meta/model.js';
import { prepareNetwork } from '../../src/meta/predict-arrays.js';

const spec = modelSpec('regression', 1, { hidden: [2] });
const network = prepareNetwork(spec, initModelParams(spec, new Rng(1)));

/** A store whose loads the test releases one by one, counting them. */
function store(versions: Map<string, number>) {
  const calls: Array<{ taskId: string; release: () => void }> = [];
  const load = (tenantId: string, taskId: string) =>
    new Promise<HeadLookup>((resolve) => {
      // The version is read when the load starts, as a database read would be.
      const version = versions.get(taskId);
      calls.push({
        taskId,
        release: () => resolve(version === undefined ? { status: 'missing' } : version === 0 ? { status: 'not-adapted' } : { status: 'ready', head: { tenantId, taskId, metaModelId: 'm', headVersion: version, network } }),
      });
    });
  return { load, calls };
}

const version = (found: HeadLookup) => (found.status === 'ready' ? found.head.headVersion : found.status);

describe('PredictCache', () => {
  it('loads once for a burst of misses on one task, then answers from memory', async () => {
    const { load, calls } = store(new Map([['t', 1]]));
    const cache = new PredictCache({ load });
    const a = cache.get('tenant', 't');
    const b = cache.get('tenant', 't');
    expect(calls).toHaveLength(1);
    calls[0].release();
    expect([version(await a), version(await b)]).toEqual([1, 1]);
    expect(version(await cache.get('tenant', 't'))).toBe(1);
    expect(calls).toHaveLength(1);
    expect({ hits: cache.hits, misses: cache.misses }).toEqual({ hits: 1, misses: 1 });
  });

  it('does not keep what a load read before a newer version landed, and the next request reads again', async () => {
    const versions = new Map([['t', 1]]);
    const { load, calls } = store(versions);
    const cache = new PredictCache({ load });
    const early = cache.get('tenant', 't');
    versions.set('t', 2);
    cache.invalidate('t', 2);
    calls[0].release();
    expect(version(await early)).toBe(1); // answered: it asked before the new version existed
    expect(cache.heldVersion('t')).toBeUndefined();
    const next = cache.get('tenant', 't');
    expect(calls).toHaveLength(2);
    calls[1].release();
    expect(version(await next)).toBe(2);
    expect(cache.heldVersion('t')).toBe(2);
    cache.invalidate('t', 1); // an older message changes nothing
    expect(cache.heldVersion('t')).toBe(2);
  });

  it("answers 'missing' for another tenant's cached task and keeps never-adapted tasks out", async () => {
    const { load, calls } = store(new Map([['t', 3], ['fresh', 0]]));
    const cache = new PredictCache({ load });
    const first = cache.get('owner', 't');
    calls[0].release();
    await first;
    expect(await cache.get('stranger', 't')).toEqual({ status: 'missing' });
    const fresh = cache.get('owner', 'fresh');
    calls[1].release();
    expect(await fresh).toEqual({ status: 'not-adapted' });
    expect(cache.size).toBe(1);
  });

  it('reloads entries older than maxAgeMs and evicts the least recently used beyond maxEntries', async () => {
    let now = 0;
    const { load, calls } = store(new Map([['a', 1], ['b', 1], ['c', 1]]));
    const cache = new PredictCache({ load, maxEntries: 2, maxAgeMs: 1000, now: () => now });
    const fetch = async (taskId: string) => {
      const pending = cache.get('tenant', taskId);
      calls.at(-1)?.release();
      return pending;
    };
    await fetch('a');
    await fetch('b');
    await fetch('a'); // a is now the most recently used
    await fetch('c'); // evicts b
    expect([cache.heldVersion('a'), cache.heldVersion('b'), cache.heldVersion('c')]).toEqual([1, undefined, 1]);
    const loads = calls.length;
    now = 1500;
    await fetch('a');
    expect(calls.length).toBe(loads + 1);
  });
});

describe('AdaptWaiters', () => {
  const message = (adaptationId: string): AdaptedMessage => ({ adaptationId, taskId: 't', tenantId: 'x', headVersion: 1, status: 'succeeded', steps: 1, durationMs: 1 });

  it('settles every waiter of an adaptation with its message, and only those', async () => {
    const waiters = new AdaptWaiters();
    const a1 = waiters.wait('a', 10_000)!;
    const a2 = waiters.wait('a', 10_000)!;
    const b = waiters.wait('b', 10_000)!;
    expect(waiters.settle(message('a'))).toBe(2);
    expect((await a1.outcome)?.adaptationId).toBe('a');
    expect((await a2.outcome)?.adaptationId).toBe('a');
    expect(waiters.size).toBe(1);
    b.cancel();
    expect(await b.outcome).toBeNull();
    expect(waiters.size).toBe(0);
    expect(waiters.settle(message('a'))).toBe(0);
  });

  it('resolves null after the timeout and forgets the waiter', async () => {
    const waiters = new AdaptWaiters();
    const started = Date.now();
    expect(await waiters.wait('slow', 50)!.outcome).toBeNull();
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    expect(waiters.size).toBe(0);
  });

  it('declines a wait beyond its most waiters, and counts a settled or cancelled one out once', async () => {
    const waiters = new AdaptWaiters(2);
    const a = waiters.wait('a', 10_000)!;
    const b = waiters.wait('b', 10_000)!;
    expect(waiters.wait('c', 10_000)).toBeNull();
    expect(waiters.waiters).toBe(2);
    a.cancel();
    a.cancel();
    waiters.settle(message('a'));
    expect(waiters.waiters).toBe(1);
    const c = waiters.wait('c', 10_000);
    expect(c).not.toBeNull();
    waiters.cancelAll();
    expect(await b.outcome).toBeNull();
    expect(waiters.waiters).toBe(0);
  });
});
