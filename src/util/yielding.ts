/**
 * Long synchronous work in a worker process (a conv body's evaluation or calibration on hundreds of
 * tasks) blocks the event loop: BullMQ cannot renew the job's lock (it expires after
 * LOCK_DURATION_MS and another worker runs the job again) and the study scheduler's transactions time
 * out. Such work is written as a generator of parts; a worker drains it with a turn of the event
 * loop between parts, a synchronous caller drains it at once.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

/** Every part of `parts` in order, yielding to the event loop after each one. */
export async function drainYielding<T>(parts: Iterable<T>): Promise<T[]> {
  const out: T[] = [];
  for (const part of parts) {
    out.push(part);
    await nextTurn();
  }
  return out;
}
