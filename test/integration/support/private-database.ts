/**
 * A Postgres database of the test's own, migrated from prisma/migrations. Worker processes run the
 * reconciler, which re-enqueues every unfinished job of the whole database: against the shared test
 * database it would pick up (and run) other tests' jobs, so tests that start workers use one of these.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { TEST_DATABASE_URL } from './services.js';

const MIGRATIONS = join(import.meta.dirname, '..', '..', '..', 'prisma', 'migrations');

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function onServer<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export interface PrivateDatabase {
  url: string;
  /** Drops it, disconnecting whoever is still connected. */
  drop(): Promise<void>;
}

/**
 * Creates `fastadapt_t_<label>_<random>` on the test server (or the server of `serverUrl`: a
 * benchmark's DATABASE_URL) and applies every migration.
 */
export async function createPrivateDatabase(label: string, serverUrl = TEST_DATABASE_URL): Promise<PrivateDatabase> {
  const name = `fastadapt_t_${label.replace(/[^a-z0-9]/gi, '_')}_${randomUUID().slice(0, 8)}`;
  const maintenance = withDatabase(serverUrl, 'postgres');
  await onServer(maintenance, (client) => client.query(`CREATE DATABASE "${name}"`));
  const url = withDatabase(serverUrl, name);
  const migrations = readdirSync(MIGRATIONS, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  await onServer(url, async (client) => {
    for (const migration of migrations) await client.query(readFileSync(join(MIGRATIONS, migration, 'migration.sql'), 'utf8'));
  });
  return {
    url,
    drop: () => onServer(maintenance, (client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => undefined),
  };
}
