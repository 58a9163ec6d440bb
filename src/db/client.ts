// The one place that opens Postgres. The Prisma 7 client (generated into src/generated/prisma by
// scripts/setup.mjs) runs its WebAssembly query compiler over node-postgres through @prisma/adapter-pg,
// so no native engine is involved.
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../generated/prisma/client.js';
import type { PackedDataset } from '../meta/index.js';
import { lastLine } from '../util/error-reason.js';
import { Lru } from '../util/lru.js';
import { withTimeout } from '../util/timeout.js';

export { PrismaClient };
export { Prisma } from '../generated/prisma/client.js';
import { Prisma } from '../generated/prisma/client.js';

/** A write naming a row that is gone (Postgres 23503), e.g. an adaptation of a task deleted meanwhile. */
export function isForeignKeyViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === '23503';
}

/** The write broke a unique constraint (Prisma's P2002): another writer took the key first. */
export function isUniqueViolation(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002';
}

/** Runs `work` in one transaction on one pooled node-postgres connection (the raw-SQL repositories'). */
export async function inTransaction<T>(db: Db, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await db.sql.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

/** A connected database handle. Created by {@link createDb}. */
export interface Db {
  /** The Prisma client; only src/db/ repositories should use it directly. */
  prisma: PrismaClient;
  /**
   * The node-postgres pool under Prisma, for the few latency-bound statements (the adaptation round
   * trip) where Prisma's per-query overhead would be most of the cost; repositories only.
   */
  sql: pg.Pool;
  /**
   * Uploaded families' rows loaded for sampling, by family id, bounded in bytes across families
   * (committed families never change, so an entry never goes stale); repositories only.
   */
  datasets: Lru<string, PackedDataset>;
  /** Resolves when Postgres answers `SELECT 1` in time; rejects with the reason otherwise. */
  ping(): Promise<void>;
  /** Disconnects (closes the pool). Safe to call more than once. */
  close(): Promise<void>;
}

/** Options for {@link createDb}. */
export interface DbOptions {
  /** How long `ping()` waits for `SELECT 1`, in ms. Default 2000. */
  pingTimeoutMs?: number;
  /** How long opening a new connection may take before a query fails, in ms. Default 5000. */
  connectTimeoutMs?: number;
  /** Most connections the pool opens. Default 10. */
  poolSize?: number;
  /** Memory for uploaded families loaded for sampling, in MiB (DATASET_CACHE_MIB). Default 2048. */
  datasetCacheMiB?: number;
}

/**
 * Opens a connection pool to `url` (a `postgresql://` URL). Connections open lazily, so this never
 * throws for an unreachable server: `ping()` is how readiness is checked.
 */
export function createDb(url: string, options: DbOptions = {}): Db {
  const { pingTimeoutMs = 2000, connectTimeoutMs = 5000, poolSize = 10, datasetCacheMiB = 2048 } = options;
  const sql = new pg.Pool({ connectionString: url, connectionTimeoutMillis: connectTimeoutMs, max: poolSize });
  // An idle connection the server dropped: the pool replaces it at the next query, which reports any
  // lasting problem itself. Without a listener the event would end the process.
  sql.on('error', () => {});
  const adapter = new PrismaPg(sql);
  const prisma = new PrismaClient({ adapter });
  let closed: Promise<void> | null = null;

  const datasets = new Lru<string, PackedDataset>({
    maxEntries: 1000,
    maxWeight: datasetCacheMiB * 1024 * 1024,
    weigh: (rows) => rows.x.byteLength + rows.y.byteLength,
  });
  return {
    prisma,
    sql,
    datasets,
    ping: async () => {
      try {
        await withTimeout(prisma.$queryRaw`SELECT 1`, pingTimeoutMs, () => new Error(`Postgres did not answer within ${pingTimeoutMs} ms`));
      } catch (error) {
        throw new Error(`Postgres ping failed: ${lastLine(error)}`, { cause: error });
      }
    },
    // Prisma leaves a pool it was given open: end it here, once.
    close: () => (closed ??= prisma.$disconnect().finally(() => (sql.ended ? undefined : sql.end()))),
  };
}
