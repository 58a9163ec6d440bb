/** What the HTTP layer needs from the rest of the process; main.ts and tests provide it. */
import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config.js';
import type { Db } from '../db/client.js';
import type { Queues } from '../jobs/queues.js';

/** The checks behind /readyz, each a real round trip to the dependency. */
export interface ReadinessProbes {
  /** Resolves when Postgres answers (Db.ping: SELECT 1). */
  postgres(): Promise<unknown>;
  /** Resolves when Redis answers PING. */
  redis(): Promise<unknown>;
  /** Name of the active TensorFlow.js backend, or null before one is initialised. */
  backend(): string | null;
}

export interface AppDeps {
  config: Config;
  db: Db;
  queues: Queues;
  probes: ReadinessProbes;
  /** A pino logger to share with the rest of the process; by default the app makes its own. */
  logger?: FastifyBaseLogger;
}
