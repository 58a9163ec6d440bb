/**
 * `npm run apikey -- <command>`: API key management for operators, straight against DATABASE_URL.
 *
 *   create --tenant NAME [--name LABEL]   a new key for tenant NAME (created when no tenant has that
 *   create --tenant-id ID [--name LABEL]  name); the key goes to stdout, once, and is never shown again
 *   list [--tenant NAME] [--json]         every key: id, prefix, tenant, label, created, last used, revoked
 *   revoke <id|prefix|key>                the key is refused from the next request on (running API
 *                                         processes hear it on Redis; without Redis, within AUTH_CACHE_TTL_MS)
 *
 * Only the key's SHA-256 is stored. `create` prints nothing but the key on stdout, so
 * `KEY=$(npm run -s apikey -- create --tenant acme)` captures it; everything else goes to stderr.
 * Exit status: 0 done, 1 no such key or tenant (or an ambiguous tenant name), 2 usage error.
 */
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { ConfigError, loadConfig, type Config } from '../src/config.js';
import { createDb, type Db } from '../src/db/client.js';
import {
  createApiKey,
  findTenantsByName,
  listApiKeys,
  revokeApiKeyByRef,
  tenantExists,
  type ApiKeySummary,
} from '../src/db/repositories/api-keys.js';
import { publishRevokedKey } from '../src/jobs/revocations.js';
import { errorMessage } from '../src/util/error-reason.js';

const USAGE = `usage: npm run apikey -- create --tenant NAME [--name LABEL]
       npm run apikey -- create --tenant-id ID [--name LABEL]
       npm run apikey -- list [--tenant NAME] [--json]
       npm run apikey -- revoke <id|prefix|key>`;

/** A failure to report in one line, with the exit status it deserves. */
class CliError extends Error {
  constructor(message: string, readonly exitCode: 1 | 2) {
    super(message);
  }
}

const usage = (why: string) => new CliError(`${why}\n${USAGE}`, 2);

function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function create(db: Db, args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: { tenant: { type: 'string' }, 'tenant-id': { type: 'string' }, name: { type: 'string' } },
    allowPositionals: true,
  });
  if (positionals.length > 0) throw usage(`create takes no positional arguments (got ${positionals.join(' ')})`);
  const tenantName = values.tenant?.trim();
  const givenId = values['tenant-id']?.trim();
  if ((tenantName === undefined) === (givenId === undefined)) throw usage('create needs exactly one of --tenant NAME and --tenant-id ID');
  if (tenantName === '') throw usage('--tenant needs a non-empty name');

  let tenantId = givenId;
  if (tenantId !== undefined) {
    if (!(await tenantExists(db, tenantId))) throw new CliError(`no tenant with id ${tenantId}`, 1);
  } else {
    // A second key for an existing tenant (key rotation) names it; a new name makes a new tenant.
    const tenants = await findTenantsByName(db, tenantName!);
    if (tenants.length > 1) {
      throw new CliError(`${tenants.length} tenants are named ${JSON.stringify(tenantName)}: pick one with --tenant-id (${tenants.map((t) => t.id).join(', ')})`, 1);
    }
    tenantId = tenants[0]?.id;
  }
  const created = await createApiKey(db, tenantName ?? '', { tenantId, name: values.name });
  process.stdout.write(`${created.key}\n`);
  say(`created key ${created.keyId} (${created.key.split('_').slice(0, 2).join('_')}) for tenant ${created.tenantId}${tenantId === undefined ? ' (new)' : ''}`);
  say('store it now: it is shown only this once');
}

function formatDate(date: Date | null): string {
  return date === null ? '-' : date.toISOString();
}

function table(keys: ApiKeySummary[]): string {
  const header = ['ID', 'PREFIX', 'TENANT', 'TENANT ID', 'NAME', 'CREATED', 'LAST USED', 'STATUS'];
  const rows = keys.map((k) => [
    k.id, k.prefix, k.tenantName, k.tenantId, k.name ?? '-', formatDate(k.createdAt), formatDate(k.lastUsedAt),
    k.revokedAt === null ? 'active' : `revoked ${k.revokedAt.toISOString()}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

async function list(db: Db, args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, options: { tenant: { type: 'string' }, json: { type: 'boolean' } }, allowPositionals: true });
  if (positionals.length > 0) throw usage(`list takes no positional arguments (got ${positionals.join(' ')})`);
  const keys = await listApiKeys(db, { tenantName: values.tenant });
  process.stdout.write(values.json ? `${JSON.stringify(keys, null, 2)}\n` : `${table(keys)}\n`);
}

/** Tells running API processes, which trust a resolved key for a while, to drop it now. */
async function announceRevocation(config: Config, keyId: string): Promise<void> {
  // One attempt, bounded: the revocation is already stored; Redis only makes it immediate.
  const redis = new Redis(config.redisUrl, { lazyConnect: true, connectTimeout: 2_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    const heard = await publishRevokedKey(redis, config.queuePrefix, keyId);
    say(`announced on Redis: ${heard} running API process(es) dropped it at once`);
  } catch (error) {
    say(`could not announce it on Redis (${errorMessage(error)}): running API processes refuse it within AUTH_CACHE_TTL_MS`);
  } finally {
    redis.disconnect();
  }
}

async function revoke(db: Db, args: string[], config: Config): Promise<void> {
  const { positionals } = parseArgs({ args, options: {}, allowPositionals: true });
  if (positionals.length !== 1) throw usage('revoke needs one key id, prefix or key');
  const result = await revokeApiKeyByRef(db, positionals[0]);
  if (result.outcome === 'missing') throw new CliError(`no API key ${JSON.stringify(positionals[0])}`, 1);
  const { key } = result;
  say(result.outcome === 'revoked'
    ? `revoked key ${key.id} (${key.prefix}) of tenant ${key.tenantName} (${key.tenantId})`
    : `key ${key.id} (${key.prefix}) was already revoked at ${key.revokedAt!.toISOString()}`);
  await announceRevocation(config, key.id);
}

const COMMANDS: Record<string, (db: Db, args: string[], config: Config) => Promise<void>> = { create, list, revoke };

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    say(USAGE);
    return command === undefined ? 2 : 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    say(`unknown command ${JSON.stringify(command)}\n${USAGE}`);
    return 2;
  }
  let db: Db | undefined;
  try {
    const config = loadConfig(process.env, []);
    db = createDb(config.databaseUrl);
    await run(db, rest, config);
    return 0;
  } catch (error) {
    if (error instanceof CliError) {
      say(`apikey: ${error.message}`);
      return error.exitCode;
    }
    if (error instanceof ConfigError) {
      say(`apikey: ${error.message}`);
      return 2;
    }
    // parseArgs reports unknown or malformed options as TypeErrors with a code.
    if ((error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      say(`apikey: ${(error as Error).message}\n${USAGE}`);
      return 2;
    }
    say(`apikey: ${(error as Error).message.trim().split('\n').pop()}`);
    return 1;
  } finally {
    await db?.close();
  }
}

process.exitCode = await main(process.argv.slice(2));
