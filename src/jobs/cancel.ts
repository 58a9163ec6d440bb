/**
 * Cancel across processes: the API publishes a job id on Redis channel `<prefix>:cancel`; every
 * worker process subscribes and aborts the AbortController of each run of that job it has. Pub/sub
 * is fire-and-forget, so the processor also checks the job's cancelRequestedAt whenever it writes
 * progress: a message lost while Redis was away delays a cancel, never loses it.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/** The abort reason of a cancelled run (a shutdown aborts with worker.ts's SHUTDOWN instead). */
export const CANCEL = 'cancel';

/** The pub/sub channel cancel requests travel on. */
export function cancelChannel(prefix: string): string {
  return `${prefix}:cancel`;
}

/** Asks every worker process to cancel `jobId`; resolves with how many processes were listening. */
export async function publishCancel(redis: Redis, prefix: string, jobId: string): Promise<number> {
  return redis.publish(cancelChannel(prefix), jobId);
}

/** One tracked run: its cancel signal, and release() once the run is over. */
export interface TrackedRun {
  readonly signal: AbortSignal;
  /** Aborts this run with reason {@link CANCEL} (e.g. its row says a cancel was requested). */
  cancel(): void;
  release(): void;
}

/**
 * The runs of this process, by job id, and the subscription that cancels them. Several runs of one
 * job id can coexist briefly (a stale run not yet fenced out), so each id keeps a set.
 */
export class CancelListener {
  private readonly runs = new Map<string, Set<AbortController>>();

  private constructor(
    private readonly subscriber: Redis,
    private readonly logger: Logger,
  ) {
    subscriber.on('message', (_channel: string, jobId: string) => {
      const controllers = this.runs.get(jobId);
      logger.info({ jobId, running: controllers?.size ?? 0 }, 'cancel request received');
      for (const controller of controllers ?? []) controller.abort(CANCEL);
    });
  }

  /**
   * Subscribes on a dedicated connection (a subscribed connection can run nothing else), duplicated
   * from `redis`. ioredis resubscribes by itself after a reconnect.
   */
  static async start(redis: Redis, prefix: string, logger: Logger): Promise<CancelListener> {
    const subscriber = redis.duplicate({ connectionName: 'fastadapt:cancel' });
    subscriber.on('error', (err: Error) => logger.warn({ err, connection: 'cancel' }, 'redis connection error'));
    const listener = new CancelListener(subscriber, logger);
    await subscriber.subscribe(cancelChannel(prefix));
    return listener;
  }

  /** Starts tracking a run of `jobId`. */
  track(jobId: string): TrackedRun {
    const controller = new AbortController();
    const set = this.runs.get(jobId) ?? new Set<AbortController>();
    set.add(controller);
    this.runs.set(jobId, set);
    return {
      signal: controller.signal,
      cancel: () => controller.abort(CANCEL),
      release: () => {
        set.delete(controller);
        if (set.size === 0 && this.runs.get(jobId) === set) this.runs.delete(jobId);
      },
    };
  }

  /** Job ids with a run in this process (for tests and logs). */
  get running(): string[] {
    return [...this.runs.keys()];
  }

  async close(): Promise<void> {
    await this.subscriber.quit().catch(() => this.subscriber.disconnect());
  }
}
