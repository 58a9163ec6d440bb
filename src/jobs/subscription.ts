/**
 * One Redis pub/sub channel on a dedicated connection (a subscribed connection can run nothing
 * else), fanned out to listeners. Pub/sub does not queue: what is published while the connection is
 * down is lost, so listeners that keep state derived from the messages (caches) are also told when
 * the subscription comes back after a drop, to start afresh. ioredis resubscribes by itself.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

export class Subscription {
  private readonly messageListeners = new Set<(raw: string) => void>();
  private readonly reconnectListeners = new Set<() => void>();
  private readonly connection: Redis;

  /**
   * Opens the connection (duplicated from `redis`) without waiting for it; {@link subscribed}
   * resolves once Redis has confirmed the subscription.
   * @param name - connection name suffix, shown by CLIENT LIST.
   */
  constructor(
    redis: Redis,
    readonly channel: string,
    private readonly logger: Logger,
    name: string,
  ) {
    this.connection = redis.duplicate({ connectionName: `fastadapt:${name}` });
    this.connection.on('error', (err: Error) => logger.warn({ err, connection: name }, 'redis connection error'));
    this.connection.on('message', (_channel: string, raw: string) => {
      for (const listener of this.messageListeners) {
        try {
          listener(raw);
        } catch (err) {
          logger.error({ err, channel }, 'a subscription listener threw');
        }
      }
    });
    // After the first 'ready', each further one is a reconnection.
    let connected = false;
    this.connection.on('ready', () => {
      if (!connected) {
        connected = true;
        return;
      }
      logger.warn({ channel }, 'subscription re-established: messages published meanwhile are lost');
      for (const listener of this.reconnectListeners) listener();
    });
  }

  /** Subscribes; resolves once Redis confirmed it, so nothing published afterwards is missed. */
  async subscribed(): Promise<this> {
    await this.connection.subscribe(this.channel);
    return this;
  }

  /** Calls `listener` with every raw message from now on; returns the function that stops it. */
  onMessage(listener: (raw: string) => void): () => void {
    this.messageListeners.add(listener);
    return () => this.messageListeners.delete(listener);
  }

  /** Calls `listener` each time the subscription comes back after its connection dropped. */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  async close(): Promise<void> {
    this.messageListeners.clear();
    this.reconnectListeners.clear();
    // quit() waits for a reply, which never comes while Redis is unreachable.
    if (this.connection.status === 'ready') await this.connection.quit().catch(() => this.connection.disconnect());
    else this.connection.disconnect();
  }
}
