#!/usr/bin/env node
// Offline Prisma tooling for fastadapt: generating the Prisma 7 client and running migrations through
// the Prisma 6 CLI, with nothing downloaded. Plain Node and no npm imports, so scripts/setup.mjs can
// load it before `npm ci` has run.
//
// Why two CLIs: every Prisma 7 CLI command first downloads a native schema engine. `generate` does not
// use it, so it runs with PRISMA_SCHEMA_ENGINE_BINARY=/bin/true. Migrations need a real schema engine:
// Prisma 6.19 has a WebAssembly one (`engine: 'js'` in prisma6.config.ts) that talks to Postgres through
// @prisma/adapter-pg. Prisma 6 insists on a `url` in the datasource block, which Prisma 7 forbids, so
// Prisma 6 reads a copy of prisma/schema.prisma with a placeholder url added (the adapter supplies the
// real connection); the models are byte-for-byte the same file.
//
// Usage (also through npm scripts):
//   node scripts/prisma-cli.mjs generate [--force]   Prisma 7 client into src/generated/prisma
//   node scripts/prisma-cli.mjs deploy               apply prisma/migrations to $DATABASE_URL
//   node scripts/prisma-cli.mjs diff [--create NAME] SQL that migrations lack vs schema.prisma; exit 2
//                                                    on drift, or write it as a new migration
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const SCHEMA = join(ROOT, 'prisma', 'schema.prisma');
export const MIGRATIONS = join(ROOT, 'prisma', 'migrations');
export const GENERATED_CLIENT = join(ROOT, 'src', 'generated', 'prisma');
/** Must match `schema` in prisma6.config.ts. */
export const PRISMA6_SCHEMA = join(ROOT, 'node_modules', '.cache', 'fastadapt', 'prisma6', 'schema.prisma');
export const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/fastadapt';

const STAMP = join(GENERATED_CLIENT, '.schema-stamp');
const PRISMA7_BIN = join(ROOT, 'node_modules', 'prisma', 'build', 'index.js');
const PRISMA6_BIN = join(ROOT, 'node_modules', 'prisma6', 'build', 'index.js');
const PRISMA6_PRELOAD = join(ROOT, 'scripts', 'prisma6-preload.cjs');

const QUIET_ENV = {
  CHECKPOINT_DISABLE: '1', // no version-check request
  PRISMA_HIDE_UPDATE_MESSAGE: '1',
  PRISMA_MIGRATE_SKIP_GENERATE: '1',
};

function sha256(data) {
  return createHash('sha256').update(data).digest('hex');
}

function packageVersion(name) {
  return JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version;
}

/** What the generated client depends on: the schema text and the generator's version. */
function clientStamp() {
  return sha256(`${readFileSync(SCHEMA, 'utf8')}\n${packageVersion('prisma')}\n${packageVersion('@prisma/client')}`);
}

export function clientIsCurrent() {
  return existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === clientStamp();
}

/** Generates the Prisma 7 client (skipped when the schema and Prisma are unchanged, unless forced). */
export function generateClient({ force = false } = {}) {
  if (!force && clientIsCurrent()) return false;
  const result = spawnSync(process.execPath, [PRISMA7_BIN, 'generate', '--config', 'prisma.config.ts'], {
    cwd: ROOT,
    encoding: 'utf8',
    // The native schema engine is never used by `generate`; /bin/true stops the download attempt.
    env: { ...process.env, ...QUIET_ENV, PRISMA_SCHEMA_ENGINE_BINARY: '/bin/true' },
  });
  if (result.status !== 0) {
    throw new Error(`prisma generate failed:\n${result.stdout}${result.stderr}`);
  }
  writeFileSync(STAMP, `${clientStamp()}\n`);
  return true;
}

/**
 * Writes the Prisma 6 copy of `schemaPath` (see the header) to `copyPath` when missing or stale.
 * @returns copyPath
 */
export function writePrisma6Schema(schemaPath = SCHEMA, copyPath = PRISMA6_SCHEMA) {
  const source = readFileSync(schemaPath, 'utf8');
  const datasource = /datasource\s+db\s*\{([^}]*)\}/;
  const match = datasource.exec(source);
  if (!match) throw new Error(`${relative(ROOT, schemaPath)} has no \`datasource db { ... }\` block`);
  if (/^\s*url\s*=/m.test(match[1])) throw new Error('schema.prisma must not set a datasource url (Prisma 7)');
  const copy = source.replace(datasource, (block) =>
    block.replace(/\}$/, '  url      = "postgresql://placeholder" // connection comes from the adapter\n}'),
  );
  mkdirSync(dirname(copyPath), { recursive: true });
  if (!existsSync(copyPath) || readFileSync(copyPath, 'utf8') !== copy) writeFileSync(copyPath, copy);
  return copyPath;
}

/**
 * Runs the Prisma 6 CLI with prisma6.config.ts against `databaseUrl`.
 * @returns the spawnSync result (status, stdout, stderr); throws only if the CLI could not start.
 */
export function runPrisma6(args, { databaseUrl = process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL } = {}) {
  writePrisma6Schema();
  const result = spawnSync(process.execPath, ['-r', PRISMA6_PRELOAD, PRISMA6_BIN, ...args, '--config', 'prisma6.config.ts'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: {
      ...process.env,
      ...QUIET_ENV,
      DATABASE_URL: databaseUrl,
      // Our client uses the query compiler, so the CLI must not fetch a query engine library either.
      PRISMA_CLIENT_ENGINE_TYPE: 'client',
    },
  });
  if (result.error) throw result.error;
  return result;
}

/** Migration folders in apply order, with the checksum Prisma records for each (sha256 of the SQL). */
export function listMigrations() {
  if (!existsSync(MIGRATIONS)) return [];
  return readdirSync(MIGRATIONS, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(MIGRATIONS, entry.name, 'migration.sql')))
    .map((entry) => ({
      name: entry.name,
      checksum: sha256(readFileSync(join(MIGRATIONS, entry.name, 'migration.sql'))),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Applies pending migrations to `databaseUrl` (`prisma migrate deploy`). */
export function deployMigrations(databaseUrl) {
  const result = runPrisma6(['migrate', 'deploy'], { databaseUrl });
  if (result.status !== 0) {
    const output = `${result.stdout}${result.stderr}`;
    // Deploy applies migrations to a database that exists; creating one is setup's job (or the operator's).
    const missing = /Database `[^`]*` does not exist/.test(output)
      ? '\nCreate it first: `node scripts/setup.mjs` creates and migrates the database of DATABASE_URL (or run `createdb` on its server).'
      : '';
    throw new Error(`prisma migrate deploy failed for ${redact(databaseUrl)}:\n${output}${missing}`);
  }
}

/**
 * The SQL that would bring a database built from prisma/migrations to `schemaPath`
 * (default prisma/schema.prisma). Uses a throw-away shadow database (created and dropped by
 * prisma6.config.ts) on the server of `databaseUrl`.
 * @returns '' when there is no drift.
 */
export function diffMigrationsToSchema(databaseUrl, schemaPath = SCHEMA) {
  const copy = schemaPath === SCHEMA ? writePrisma6Schema() : writePrisma6Schema(schemaPath, schemaPath.replace(/(\.prisma)?$/, '.prisma6.prisma'));
  const args = ['migrate', 'diff', '--from-migrations', relative(ROOT, MIGRATIONS), '--to-schema-datamodel', copy];
  const result = runPrisma6([...args, '--script', '--exit-code'], { databaseUrl });
  // --exit-code: 0 = no difference, 2 = difference, anything else = error.
  if (result.status === 0) return '';
  if (result.status === 2) return result.stdout;
  throw new Error(`prisma migrate diff failed:\n${result.stdout}${result.stderr}`);
}

export function redact(url) {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
}

function migrationTimestamp(date = new Date()) {
  return date.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

function main(argv) {
  const [command, ...rest] = argv;
  const databaseUrl = process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL;
  switch (command) {
    case 'generate': {
      const generated = generateClient({ force: rest.includes('--force') });
      console.log(generated ? `generated the Prisma client in ${relative(ROOT, GENERATED_CLIENT)}` : 'Prisma client is current');
      return 0;
    }
    case 'deploy':
      deployMigrations(databaseUrl);
      console.log(`migrations applied to ${redact(databaseUrl)}`);
      return 0;
    case 'diff': {
      const sql = diffMigrationsToSchema(databaseUrl);
      const nameAt = rest.indexOf('--create');
      if (nameAt === -1) {
        if (sql === '') console.log('prisma/migrations matches prisma/schema.prisma');
        else process.stdout.write(sql);
        return sql === '' ? 0 : 2;
      }
      const name = rest[nameAt + 1];
      if (!name || !/^[a-z0-9_]+$/.test(name)) throw new Error('--create needs a snake_case migration name');
      if (sql === '') {
        console.log('no changes: no migration written');
        return 0;
      }
      const dir = join(MIGRATIONS, `${migrationTimestamp()}_${name}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'migration.sql'), sql);
      console.log(`wrote ${relative(ROOT, dir)}/migration.sql`);
      return 0;
    }
    default:
      console.error('usage: node scripts/prisma-cli.mjs generate [--force] | deploy | diff [--create NAME]');
      return 64;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  }
}
