// prisma/migrations is the only way the schema reaches a database (scripts/setup.mjs, the migrate
// image), and prisma/schema.prisma is what the client is generated from: these tests fail when the two
// disagree, or when a database was left behind by the migrations.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffMigrationsToSchema, listMigrations, SCHEMA } from '../../scripts/prisma-cli.mjs';
import { TEST_DATABASE_URL } from './support/services.js';

describe('migrations vs schema.prisma', () => {
  let scratch: string;

  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), 'fastadapt-drift-'));
  });

  afterAll(() => {
    rmSync(scratch, { recursive: true, force: true });
  });

  it('replaying prisma/migrations yields exactly schema.prisma (no drift)', () => {
    const missing = diffMigrationsToSchema(TEST_DATABASE_URL);
    expect(missing, `schema.prisma changed without a migration; run \`npm run db:diff\`:\n${missing}`).toBe('');
  });

  it('reports the SQL a schema change would need, so drift cannot pass unnoticed', () => {
    const changed = join(scratch, 'schema.prisma');
    const source = readFileSync(SCHEMA, 'utf8');
    const withColumn = source.replace(/(model Tenant \{\n)/, '$1  plan String @default("free")\n');
    expect(withColumn).not.toBe(source);
    writeFileSync(changed, withColumn);

    const missing = diffMigrationsToSchema(TEST_DATABASE_URL, changed);

    expect(missing).toMatch(/ALTER TABLE "tenants" ADD COLUMN\s+"plan" TEXT NOT NULL DEFAULT 'free'/);
  });

  it('leaves no shadow database behind', async () => {
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    try {
      const { rows } = await admin.query("SELECT datname FROM pg_database WHERE datname LIKE '%shadow%'");
      expect(rows).toEqual([]);
    } finally {
      await admin.end();
    }
  });
});

describe('the test database', () => {
  let client: pg.Client;

  beforeAll(async () => {
    client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
  });

  afterAll(async () => {
    await client.end();
  });

  it('has every migration applied, with the checksum of the file in the repository', async () => {
    const local = listMigrations();
    expect(local.length).toBeGreaterThan(0);
    const { rows } = await client.query<{ migration_name: string; checksum: string }>(
      `SELECT migration_name, checksum FROM _prisma_migrations
        WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY migration_name`,
    );
    expect(rows.map((row) => ({ name: row.migration_name, checksum: row.checksum }))).toEqual(local);
  });

  it('has the snake_case tables the schema maps to', async () => {
    const { rows } = await client.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables
        WHERE table_schema = 'public' AND table_name <> '_prisma_migrations' ORDER BY table_name`,
    );
    expect(rows.map((row) => row.table_name)).toEqual([
      'adaptations',
      'adapted_heads',
      'api_keys',
      'checkpoints',
      'dataset_chunks',
      'dataset_tasks',
      'evaluations',
      'job_metrics',
      'meta_model_aliases',
      'meta_models',
      'meta_train_jobs',
      'studies',
      'study_trials',
      'task_examples',
      'task_families',
      'tasks',
      'tenants',
    ]);
  });
});
