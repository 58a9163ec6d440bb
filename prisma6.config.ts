// Config for the Prisma 6 CLI (package alias `prisma6`), used ONLY for migrations: `migrate diff` and
// `migrate deploy`. Prisma 7's CLI downloads a native schema engine for every command, which cannot
// work offline; Prisma 6.19 with `engine: 'js'` runs its WebAssembly schema engine through the same
// driver adapter the app uses, so nothing is downloaded. The client itself is Prisma 7 (prisma.config.ts).
//
// Run it through scripts/prisma-cli.mjs (`npm run db:migrate`, `npm run db:diff`), which also writes
// the schema copy named below.
import { randomUUID } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { defineConfig } from 'prisma6/config';

const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/fastadapt';

/**
 * Connection fields rather than a connection string, because shadow databases are reached by
 * overriding `database` and pg lets a `connectionString` win over that override. Idle connections
 * close at once so the CLI exits as soon as it is done instead of waiting out the pool's idle timer.
 */
function poolConfig(url: string): pg.PoolConfig {
  const u = new URL(url);
  return {
    host: decodeURIComponent(u.hostname),
    port: u.port ? Number(u.port) : 5432,
    user: decodeURIComponent(u.username) || undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    database: decodeURIComponent(u.pathname.slice(1)) || undefined,
    idleTimeoutMillis: 1,
    allowExitOnIdle: true,
  };
}

async function adminQuery(config: pg.PoolConfig, sql: string): Promise<void> {
  const client = new pg.Client(config);
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

const PG_CHAR_OID = 18;
const PG_TEXT_OID = 25;

// A multi-statement script yields one result per statement.
type PgResult = { fields?: { dataTypeID: number }[] };
type WithPerformIO = { performIO(query: unknown): Promise<PgResult | PgResult[]> };

/**
 * The schema engine describes a database by reading pg_catalog columns of the internal one-byte type
 * `"char"` (e.g. pg_constraint.contype), which @prisma/adapter-pg 7.10 rejects as an unsupported type.
 * pg already hands those values over as strings, so the adapter is told they are text.
 */
function readCharAsText<T extends object>(adapter: T): T {
  const io = adapter as unknown as WithPerformIO;
  const performIO = io.performIO.bind(adapter);
  io.performIO = async (query) => {
    const result = await performIO(query);
    for (const { fields = [] } of Array.isArray(result) ? result : [result]) {
      for (const field of fields) {
        if (field.dataTypeID === PG_CHAR_OID) field.dataTypeID = PG_TEXT_OID;
      }
    }
    return result;
  };
  return adapter;
}

/**
 * The adapter with a shadow database (used by `migrate diff --from-migrations`) that is really
 * dropped afterwards: @prisma/adapter-pg 7.10 drops it while its own pool still holds a connection,
 * which fails and leaves one database behind per diff. Both connections read `"char"` as text.
 */
class MigrationAdapterFactory extends PrismaPg {
  constructor(private readonly pool: pg.PoolConfig) {
    super(pool);
  }

  override async connect() {
    return readCharAsText(await super.connect());
  }

  override async connectToShadowDb() {
    const database = `fastadapt_shadow_${randomUUID().replaceAll('-', '')}`;
    await adminQuery(this.pool, `CREATE DATABASE "${database}"`);
    const shadow = readCharAsText(await new PrismaPg({ ...this.pool, database }).connect());
    const dispose = shadow.dispose.bind(shadow);
    shadow.dispose = async () => {
      await dispose();
      await adminQuery(this.pool, `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    };
    return shadow;
  }
}

export default defineConfig({
  experimental: { adapter: true },
  engine: 'js',
  // A copy of prisma/schema.prisma with the datasource url Prisma 6 requires: scripts/prisma-cli.mjs writes it.
  schema: 'node_modules/.cache/fastadapt/prisma6/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  adapter: async () => new MigrationAdapterFactory(poolConfig(process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL)),
});
