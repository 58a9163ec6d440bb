/**
 * One reading connection for every job event stream an API process serves. Each watcher names a
 * stream key and the last id it has seen; the reader XREADs all watched keys with BLOCK on a single
 * connection (from the oldest id any watcher of a key needs) and hands each watcher only the entries
 * after its own last id. So a thousand open SSE clients cost Redis one connection, not a thousand.
 *
 * A watcher added or removed while XREAD blocks would wait for the block to end; the reader wakes
 * its connection with CLIENT UNBLOCK from the command connection instead. After a lost connection it
 * reads again from each watcher's last id, so nothing is skipped or sent twice.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/** A stream entry as XREAD returns it: `[id, [field, value, ...]]`. */
export type StreamEntry = [string, string[]];

/** Entries read per key per XREAD. */
const BATCH = 100;

/**
 * How long one XREAD blocks when nothing changes; a wake-up ends it sooner. It also bounds the wait
 * of a new watcher whose wake-up missed the block (sent while the connection was reconnecting).
 */
const BLOCK_MS = 10_000;

/** A wake-up that reached Redis before the XREAD it meant to end is sent again this often (ms), a few times. */
const WAKE_RETRY_MS = 5;
const WAKE_TRIES = 20;

/** Pause after a failed read before the next try (the connection reconnects meanwhile). */
const RETRY_MS = 500;

/** Orders Redis stream ids (`<ms>-<seq>`). */
export function compareStreamIds(a: string, b: string): number {
  const [am, as = 0n] = a.split('-').map(BigInt);
  const [bm, bs = 0n] = b.split('-').map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  return as === bs ? 0 : as < bs ? -1 : 1;
}

export interface EventWatch {
  /** The id of the last entry delivered (or the starting id). */
  readonly lastId: string;
  /** Stops delivery; idempotent. */
  close(): void;
}

interface Watcher {
  key: string;
  lastId: string;
  deliver: (entries: StreamEntry[]) => void;
}

export class JobEventReader {
  private readonly watchers = new Map<string, Set<Watcher>>();
  private reading = false;
  private blocked = false;
  /** Counts XREADs, so a wake-up retries only against the read it was meant for. */
  private generation = 0;
  private closed = false;
  /** Redis's id of the reading connection (for CLIENT UNBLOCK); re-read after every reconnect. */
  private clientId: number | null = null;

  /**
   * @param conn a connection of the reader's own: XREAD BLOCK holds it.
   * @param commands any other connection, used only to wake `conn`.
   */
  constructor(private readonly conn: Redis, private readonly commands: Redis, private readonly logger: Logger) {
    conn.on('close', () => {
      this.clientId = null;
    });
  }

  /** Stream keys watched now. */
  get keys(): number {
    return this.watchers.size;
  }

  /** Watchers now, over all keys. */
  get size(): number {
    let n = 0;
    for (const set of this.watchers.values()) n += set.size;
    return n;
  }

  /** Delivers the entries of `key` after `fromId` ('0': from the start) to `deliver`, in order, until closed. */
  watch(key: string, fromId: string, deliver: (entries: StreamEntry[]) => void): EventWatch {
    if (this.closed) throw new Error('the event reader is closed');
    const watcher: Watcher = { key, lastId: fromId, deliver };
    const set = this.watchers.get(key) ?? new Set();
    set.add(watcher);
    this.watchers.set(key, set);
    this.changed();
    return {
      get lastId() {
        return watcher.lastId;
      },
      close: () => {
        const current = this.watchers.get(key);
        if (!current?.delete(watcher)) return;
        if (current.size === 0) {
          this.watchers.delete(key);
          // Stop reading a key nobody wants; with no key left the loop ends at its next wake-up.
          this.changed();
        }
      },
    };
  }

  /** Ends the loop; watchers get nothing more. The caller closes the connections. */
  close(): void {
    this.closed = true;
    this.watchers.clear();
    this.wake();
  }

  /** The watched set changed: start the loop, or end the current block so the next XREAD sees it. */
  private changed(): void {
    if (!this.reading) {
      this.reading = true;
      void this.loop();
    } else {
      this.wake();
    }
  }

  private wake(): void {
    if (!this.blocked || this.clientId === null) return;
    void this.unblock(this.generation, this.clientId);
  }

  /**
   * CLIENT UNBLOCK answers 0 when the connection is not blocked yet (the XREAD is still on its way):
   * try again briefly while that same read is pending.
   */
  private async unblock(generation: number, clientId: number): Promise<void> {
    try {
      for (let i = 0; i < WAKE_TRIES && this.blocked && this.generation === generation; i++) {
        if (Number(await this.commands.client('UNBLOCK', clientId)) === 1) return;
        await new Promise((resolve) => setTimeout(resolve, WAKE_RETRY_MS));
      }
    } catch (err) {
      this.logger.warn({ err }, 'could not wake the event reader');
    }
  }

  private async loop(): Promise<void> {
    try {
      while (!this.closed && this.watchers.size > 0) {
        try {
          await this.readOnce();
        } catch (err) {
          if (this.closed) break;
          this.logger.warn({ err }, 'event reader: read failed; retrying from each watcher\'s last id');
          await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        }
      }
    } finally {
      this.reading = false;
    }
    // A watcher added between the loop's last check and `reading = false` restarts it.
    if (!this.closed && this.watchers.size > 0) this.changed();
  }

  private async readOnce(): Promise<void> {
    // A Redis that refuses CLIENT (some managed services rename it) still works: a new watcher then
    // waits at most one block for its first read.
    this.clientId ??= await this.conn.client('ID').then(Number, () => null);
    // Per key, the oldest id any of its watchers needs.
    const keys: string[] = [];
    const ids: string[] = [];
    for (const [key, set] of this.watchers) {
      let from: string | undefined;
      for (const w of set) if (from === undefined || compareStreamIds(w.lastId, from) < 0) from = w.lastId;
      keys.push(key);
      ids.push(from!);
    }
    this.generation++;
    this.blocked = true;
    let answer: [string, StreamEntry[]][] | null;
    try {
      answer = await this.conn.xread('COUNT', BATCH, 'BLOCK', BLOCK_MS, 'STREAMS', ...keys, ...ids) as [string, StreamEntry[]][] | null;
    } finally {
      this.blocked = false;
    }
    for (const [key, entries] of answer ?? []) {
      for (const w of [...(this.watchers.get(key) ?? [])]) {
        const fresh = entries.filter(([id]) => compareStreamIds(id, w.lastId) > 0);
        if (fresh.length === 0) continue;
        w.lastId = fresh[fresh.length - 1][0];
        try {
          w.deliver(fresh);
        } catch (err) {
          this.logger.warn({ err, key }, 'event watcher failed');
        }
      }
    }
  }
}
