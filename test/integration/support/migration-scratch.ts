/**
 * A scratch database as it was just before one migration (every earlier migration applied, in
 * order), for tests that check how a migration carries existing rows over: insert rows as the old
 * schema held them, `applyTarget()`, then read what the migration made of them. Call it inside a
 * `describe`: it registers the hooks that create the database and drop it afterwards.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { listMigrations, MIGRATIONS } from '../../../scripts/prisma-cli.mjs';
import { TEST_DATABASE_URL } from './services.js';

/** The full name of the one migration whose name ends with `suffix` (e.g. '_adaptation_guard'). */
export function migrationNamed(suffix: string): string {
  const found = listMigrations().find((m) => m.name.endsWith(suffix));
  if (!found) throw new Error(`no migration ends with '${suffix}'`);
  return found.name;
}

const sql = (name: string) => readFileSync(join(MIGRATIONS, name, 'migration.sql'), 'utf8');

export interface DatabaseBefore {
  /** Connected to the scratch database once the suite's hooks ran. */
  client(): pg.Client;
  /** Runs the target migration's SQL on it. */
  applyTarget(): Promise<void>;
}

export function databaseBefore(target: string): DatabaseBefore {
  const database = `fastadapt_migration_${randomUUID().slice(0, 8)}`;
  let admin: pg.Client | undefined;
  let client: pg.Client | undefined;

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE "${database}"`);
    const url = new URL(TEST_DATABASE_URL);
    url.pathname = `/${database}`;
    client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    for (const { name } of listMigrations().filter((m) => m.name < target)) await client.query(sql(name));
  });

  afterAll(async () => {
    await client?.end();
    await admin?.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    await admin?.end();
  });

  return {
    client: () => {
      if (!client) throw new Error('the scratch database is made in beforeAll');
      return client;
    },
    applyTarget: async () => {
      await (client as pg.Client).query(sql(target));
    },
  };
}
