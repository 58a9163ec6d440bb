/** Redis connections. Redis is transport only; Postgres is the record, so these may come and go. */
import { Redis } from 'ioredis';
import type { Logger } from 'pino';

function logErrors(redis: Redis, name: string, logger: Logger): Redis {
  // Without a listener ioredis prints every reconnect failure to the console; route it to the log.
  redis.on('error', (err: Error) => logger.warn({ err, connection: name }, 'redis connection error'));
  return redis;
}

/**
 * A connection for BullMQ queues and workers. `maxRetriesPerRequest: null` lets commands wait
 * through a reconnect instead of failing, which BullMQ's blocking worker connection requires.
 */
export function createRedis(url: string, name: string, logger: Logger): Redis {
  return logErrors(new Redis(url, { maxRetriesPerRequest: null, connectionName: `fastadapt:${name}` }), name, logger);
}

/**
 * A connection for health probes: while Redis is unreachable a command fails at once with the reason
 * rather than queueing until Redis returns, so /readyz can say what is wrong.
 */
export function createProbeRedis(url: string, logger: Logger): Redis {
  return logErrors(
    new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, connectionName: 'fastadapt:probe' }),
    'probe',
    logger,
  );
}
