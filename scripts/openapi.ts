/**
 * `npm run openapi`: writes the contract the app serves at /openapi.json to openapi/openapi.json and
 * regenerates the TypeScript client types (clients/typescript/src/schema.ts) from it.
 *
 * The document depends on configured limits (e.g. MAX_ITERATIONS bounds `hyper.iterations`), so it is
 * built with the defaults whatever this shell sets; only DATABASE_URL and REDIS_URL are read, because
 * building the app opens (lazily) its connections.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../src/config.js';
import { createDb } from '../src/db/client.js';
import { buildApp } from '../src/http/app.js';
import { closeQueues, createQueues } from '../src/jobs/queues.js';
import { createRedis } from '../src/jobs/redis.js';
import { CLIENT_TYPES_PATH, SPEC_PATH, renderClientTypes, renderSpec } from './openapi/render.js';

function write(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  process.stdout.write(`wrote ${relative(process.cwd(), path)} (${text.length} bytes)\n`);
}

async function servedDocument(): Promise<unknown> {
  const env: Record<string, string> = { LOG_LEVEL: 'silent', QUEUE_PREFIX: 'fastadapt-openapi' };
  for (const name of ['DATABASE_URL', 'REDIS_URL']) if (process.env[name]) env[name] = process.env[name]!;
  const config = loadConfig(env, []);
  const logger = pino({ level: 'silent' });
  const db = createDb(config.databaseUrl);
  const redis = createRedis(config.redisUrl, 'openapi', logger);
  const queues = createQueues({ connection: redis, prefix: config.queuePrefix, logger });
  const app = await buildApp({ config, db, queues, logger, probes: { postgres: () => db.ping(), redis: () => redis.ping(), backend: () => null } });
  try {
    const response = await app.inject({ method: 'GET', url: '/openapi.json' });
    if (response.statusCode !== 200) throw new Error(`GET /openapi.json answered ${response.statusCode}: ${response.body}`);
    return response.json();
  } finally {
    await app.close();
    await closeQueues(queues);
    await redis.quit();
    await db.close();
  }
}

const doc = await servedDocument();
write(SPEC_PATH, renderSpec(doc));
write(CLIENT_TYPES_PATH, await renderClientTypes(doc));
