/**
 * "An adaptation ended": the worker publishes it on Redis channel `<prefix>:adapted` once the row in
 * Postgres says so, and every API process listens on one subscribed connection, to answer the client
 * waiting on that adaptation and to drop the task's cached head. Pub/sub is fire-and-forget: the row
 * stays the record, so a listener that missed a message reads the row instead (never by polling).
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { Subscription } from './subscription.js';

/** The pub/sub channel adaptation outcomes travel on. */
export function adaptedChannel(prefix: string): string {
  return `${prefix}:adapted`;
}

const Ms = Type.Number({ minimum: 0 });

/** Where the worker's time went, in ms (for latency work; optional so older workers may omit it). */
export const AdaptTimingsSchema = Type.Object({
  /** From enqueue to the worker picking the job up. */
  queuedMs: Ms,
  /** Reading the adaptation and (on a cache miss) the meta-model. */
  loadMs: Ms,
  /** The engine's inner loop, encoding included. */
  adaptMs: Ms,
  /** The Postgres transaction that stores the head. */
  writeMs: Ms,
});

/** The message: the JSON shape both sides agree on. */
export const AdaptedMessageSchema = Type.Object({
  adaptationId: Type.String({ minLength: 1 }),
  taskId: Type.String({ minLength: 1 }),
  tenantId: Type.String({ minLength: 1 }),
  /** The stored head version; null when the adaptation failed. */
  headVersion: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]),
  status: Type.Union([Type.Literal('succeeded'), Type.Literal('failed')]),
  /** Mean support loss before and after adaptation, and the guard's record (succeeded only; see SupportLossView). */
  supportLoss: Type.Optional(Type.Object({
    before: Type.Number(),
    after: Type.Number(),
    trace: Type.Array(Type.Union([Type.Number(), Type.Null()])),
    bestStep: Type.Integer({ minimum: 0 }),
    diverged: Type.Boolean(),
  })),
  /** Inner steps run (0 for ProtoNets). */
  steps: Type.Integer({ minimum: 0 }),
  /** Worker time from picking the job up to the outcome being stored. */
  durationMs: Ms,
  /** Why it failed (failed only). */
  error: Type.Optional(Type.String()),
  timings: Type.Optional(AdaptTimingsSchema),
});

export type AdaptedMessage = Static<typeof AdaptedMessageSchema>;
export type AdaptTimings = Static<typeof AdaptTimingsSchema>;

const checker = Compile(AdaptedMessageSchema);

/** Announces an adaptation's outcome; resolves with how many connections received it. */
export async function publishAdapted(redis: Redis, prefix: string, message: AdaptedMessage): Promise<number> {
  return redis.publish(adaptedChannel(prefix), JSON.stringify(message));
}

/** Parses a message; null for anything that is not one (a listener skips it). */
export function decodeAdapted(raw: string): AdaptedMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return null;
  }
  return checker.Check(value) ? value : null;
}

export type AdaptedListener = (message: AdaptedMessage) => void;

/**
 * A subscription to `<prefix>:adapted` that decodes each message for the listeners registered with
 * {@link on}. One per process is enough however many listeners it serves.
 */
export class AdaptedSubscriber {
  private constructor(
    private readonly subscription: Subscription,
    private readonly logger: Logger,
  ) {}

  /**
   * Subscribes on a connection duplicated from `redis` and resolves once Redis has confirmed it, so
   * nothing published after this resolves is missed.
   * @param name - connection name suffix, shown by CLIENT LIST. Default 'adapted'.
   */
  static async start(redis: Redis, prefix: string, logger: Logger, name = 'adapted'): Promise<AdaptedSubscriber> {
    const subscription = await new Subscription(redis, adaptedChannel(prefix), logger, name).subscribed();
    return new AdaptedSubscriber(subscription, logger);
  }

  /** Calls `listener` with every message from now on; returns the function that stops it. */
  on(listener: AdaptedListener): () => void {
    return this.subscription.onMessage((raw) => {
      const message = decodeAdapted(raw);
      if (message) listener(message);
      else this.logger.warn({ raw: raw.slice(0, 200) }, 'ignoring a malformed adapted message');
    });
  }

  /** Calls `listener` each time the subscription comes back after its connection dropped. */
  onReconnect(listener: () => void): () => void {
    return this.subscription.onReconnect(listener);
  }

  close(): Promise<void> {
    return this.subscription.close();
  }
}
