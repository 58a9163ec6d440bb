/**
 * Bounds a wait: `work`, unless it has not settled within `ms`, then a rejection with `onTimeout()`
 * (default: "no answer within <ms> ms"). The timer is cleared either way, so a race that settles keeps
 * no timer holding the process open. `work` itself is not cancelled; its late outcome is ignored.
 */
export async function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => Error = () => new Error(`no answer within ${ms} ms`)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
