/**
 * Requests waiting for their adaptation to end, by adaptation id. The `<prefix>:adapted` message
 * settles a waiter in whichever API process holds it; a waiter whose message never comes (lost while
 * Redis was away, or the worker is slow) times out and the route reads the row once instead.
 */
import type { AdaptedMessage } from '../jobs/adapted.js';

export interface AdaptWait {
  /** The adaptation's outcome, or null when `timeoutMs` passed first. */
  readonly outcome: Promise<AdaptedMessage | null>;
  /** Stops waiting (the request went away); the promise resolves null. */
  cancel(): void;
}

/** Most requests one API process holds waiting at once. Default 10000. */
export const MAX_ADAPT_WAITERS = 10_000;

export class AdaptWaiters {
  private readonly waiting = new Map<string, Set<(message: AdaptedMessage | null) => void>>();
  private count = 0;

  /** @param maxWaiters beyond this many waiting requests, {@link wait} declines (the route answers 202 at once). */
  constructor(private readonly maxWaiters = MAX_ADAPT_WAITERS) {}

  /**
   * Starts waiting for `adaptationId`. Call it before the job is enqueued, so even the fastest
   * worker's message finds the waiter. Null when the process already holds `maxWaiters` waits: the
   * caller answers without waiting rather than hold more memory and timers.
   */
  wait(adaptationId: string, timeoutMs: number): AdaptWait | null {
    if (this.count >= this.maxWaiters) return null;
    this.count++;
    let settle!: (message: AdaptedMessage | null) => void;
    let settled = false;
    const outcome = new Promise<AdaptedMessage | null>((resolve) => {
      const timer = setTimeout(() => settle(null), timeoutMs);
      settle = (message) => {
        if (settled) return;
        settled = true;
        this.count--;
        clearTimeout(timer);
        this.remove(adaptationId, settle);
        resolve(message);
      };
    });
    const set = this.waiting.get(adaptationId) ?? new Set();
    set.add(settle);
    this.waiting.set(adaptationId, set);
    return { outcome, cancel: () => settle(null) };
  }

  /** Settles every waiter of the message's adaptation; returns how many there were. */
  settle(message: AdaptedMessage): number {
    const set = this.waiting.get(message.adaptationId);
    if (!set) return 0;
    const waiters = [...set];
    for (const settle of waiters) settle(message);
    return waiters.length;
  }

  /** Adaptations with a waiter now. */
  get size(): number {
    return this.waiting.size;
  }

  /** Requests waiting now. */
  get waiters(): number {
    return this.count;
  }

  /** Ends every wait with null (the app is closing). */
  cancelAll(): void {
    for (const set of [...this.waiting.values()]) for (const settle of [...set]) settle(null);
  }

  private remove(adaptationId: string, settle: (message: AdaptedMessage | null) => void): void {
    const set = this.waiting.get(adaptationId);
    if (!set) return;
    set.delete(settle);
    if (set.size === 0) this.waiting.delete(adaptationId);
  }
}
