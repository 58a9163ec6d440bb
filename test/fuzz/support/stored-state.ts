/**
 * What the database stores, as one checksum per table: the fuzz suite's "a rejected request changed
 * nothing" compares these before and after, so an INSERT, UPDATE or DELETE anywhere fails it (any
 * tenant's rows, any table), not only a new row of the fuzz tenant.
 *
 * Tables are read from information_schema, so a table added by a later migration is covered without
 * touching this file.
 */
import type { Db } from '../../../src/db/client.js';

/**
 * Columns that change on a rejected request by design, and why; everything else must not move.
 * `api_keys.last_used_at`: authentication stamps it (at most once a minute per key, in the
 * background) before the request is validated, so a request that is then refused still touches it.
 */
export const EXEMPT_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  api_keys: ['last_used_at'],
};

/** Prisma's record of applied migrations is not application state. */
const IGNORED_TABLES = ['_prisma_migrations'];

/** A checksum of every table's full contents: table name -> md5 of its rows. */
export type StoredState = Record<string, string>;

const identifier = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * Builds the one query that checksums every table of the current schema: per table, md5 of its rows
 * as text (all columns but the exempt ones), in the order of that text, so the result depends on the
 * contents only, not on the physical row order.
 */
export async function storedStateQuery(db: Db): Promise<string> {
  const columns = await db.prisma.$queryRawUnsafe<{ table_name: string; column_name: string }[]>(
    `SELECT c.table_name, c.column_name FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
      WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
      ORDER BY c.table_name, c.ordinal_position`,
  );
  const byTable = new Map<string, string[]>();
  for (const { table_name: table, column_name: column } of columns) {
    if (IGNORED_TABLES.includes(table) || EXEMPT_COLUMNS[table]?.includes(column)) continue;
    byTable.set(table, [...(byTable.get(table) ?? []), column]);
  }
  if (byTable.size === 0) throw new Error('no tables found in the current schema');
  return [...byTable].map(([table, cols]) => {
    const row = `ROW(${cols.map(identifier).join(', ')})::text`;
    return `SELECT '${table}' AS t, md5(coalesce(string_agg(${row}, ',' ORDER BY ${row}), '')) AS sum FROM ${identifier(table)}`;
  }).join(' UNION ALL ');
}

/** Runs a query from {@link storedStateQuery}. */
export async function storedState(db: Db, query: string): Promise<StoredState> {
  const rows = await db.prisma.$queryRawUnsafe<{ t: string; sum: string }[]>(query);
  return Object.fromEntries(rows.map((r) => [r.t, r.sum]));
}

/** The tables whose checksums differ between two states (a table that appeared or went counts too). */
export function changedTables(before: StoredState, after: StoredState): string[] {
  const tables = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...tables].filter((t) => before[t] !== after[t]).sort();
}
