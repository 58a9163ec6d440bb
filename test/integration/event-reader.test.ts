/**
 * The shared reader of job event streams against a real Redis: one connection serves many keys and
 * watchers; a watcher added while XREAD blocks is served at once (the block is woken, not waited
 * out); a killed connection resumes from each watcher's last id, so nothing is lost or repeated.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobEventReader, type StreamEntry } from '../../src/jobs/event-reader.js';
import { SHARED_REDIS_URL } from './support/services.js';

const prefix = `test-reader-${randomUUID().slice(0, 8)}`;
let conn: Redis;
let commands: Redis;
let reader: JobEventReader;

beforeAll(() => {
  conn = new Redis(SHARED_REDIS_URL, { maxRetriesPerRequest: null, connectionName: `${prefix}:reader` });
  commands = new Redis(SHARED_REDIS_URL, { maxRetriesPerRequest: null });
  reader = new JobEventReader(conn, commands, pino({ level: 'silent' }));
});

afterAll(async () => {
  reader.close();
  conn.disconnect();
  const keys = await commands.keys(`${prefix}:*`);
  if (keys.length > 0) await commands.del(...keys);
  await commands.quit();
});

/** Collects what a watcher receives. */
function collector() {
  const ids: string[] = [];
  return { ids, deliver: (entries: StreamEntry[]) => ids.push(...entries.map(([id]) => id)) };
}

const add = (key: string, n: number) => commands.xadd(key, '*', 'type', 'progress', 'data', JSON.stringify({ iteration: n, iterations: 9 })) as Promise<string>;

describe('the shared event reader', () => {
  it('serves a watcher added during a block at once, and each watcher from its own last id', async () => {
    const a = `${prefix}:a`;
    const b = `${prefix}:b`;
    const first = collector();
    const watchA = reader.watch(a, '0', first.deliver);
    // Let the reader settle into its blocking XREAD on key a only.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const a1 = await add(a, 1);
    await expect.poll(() => first.ids).toEqual([a1]);

    const b1 = await add(b, 1);
    const second = collector();
    const started = Date.now();
    const watchB = reader.watch(b, '0', second.deliver);
    await expect.poll(() => second.ids, { timeout: 2_000 }).toEqual([b1]);
    expect(Date.now() - started).toBeLessThan(2_000);

    // A late watcher of key a resuming after a1 gets only what follows it; the first gets it once.
    const late = collector();
    const watchLate = reader.watch(a, a1, late.deliver);
    const a2 = await add(a, 2);
    await expect.poll(() => late.ids).toEqual([a2]);
    await expect.poll(() => first.ids).toEqual([a1, a2]);
    expect(reader.keys).toBe(2);
    expect(reader.size).toBe(3);
    for (const w of [watchA, watchB, watchLate]) w.close();
    expect(reader.keys).toBe(0);
  });

  it("resumes from each watcher's last id after its connection is killed", async () => {
    const key = `${prefix}:c`;
    const got = collector();
    const watch = reader.watch(key, '0', got.deliver);
    const c1 = await add(key, 1);
    await expect.poll(() => got.ids).toEqual([c1]);
    // The reader's connection is blocked in XREAD: find it by name and kill it from outside.
    const line = (await commands.client('LIST') as string).split('\n').find((l) => l.includes(`name=${prefix}:reader`))!;
    await commands.client('KILL', 'ID', /\bid=(\d+)/.exec(line)![1]);
    const c2 = await add(key, 2);
    const c3 = await add(key, 3);
    await expect.poll(() => got.ids, { timeout: 15_000 }).toEqual([c1, c2, c3]);
    expect(watch.lastId).toBe(c3);
    watch.close();
  });
});
