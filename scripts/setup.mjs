#!/usr/bin/env node
// Brings a checkout to "ready to run": dependencies installed, the fused engine's wasm kernels compiled,
// Postgres and Redis answering, databases created and migrated, Prisma client generated. `npm test`
// runs it with --test (also prepares the test database); `npm start`, `npm run demo`, `apikey`, `openapi`
// and `bench:serve` without. Plain Node with no npm imports at load time, because its first step may be
// installing them. Idempotent; a second run only checks, in about a second. It reports on stderr (its
// children's output too), so the stdout of the script it runs before stays that script's own
// (`KEY=$(npm run -s apikey -- create ...)`), and runs one at a time per checkout (`npm start &` then
// `npm run apikey` must not both run npm ci).
//
// On a Debian or Ubuntu machine with only Node.js, run as root: it installs what is missing with
// apt-get (postgresql and redis-server, creating and starting a Postgres cluster where there is none;
// with --test, docker-compose, chromium and python3-torch for the tests that need them). What it
// decides is scripts/setup-plan.mjs (pure, unit-tested); this file gathers the facts and acts.
//
// Environment: DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/fastadapt),
// TEST_DATABASE_URL (default: DATABASE_URL's database name + "_test"), REDIS_URL (default
// redis://127.0.0.1:6379).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { clusterId, parseClusters, planService, planTool, SERVICE_HOW, TEST_TOOLS, withLocalTrust } from './setup-plan.mjs';

const ROOT = join(import.meta.dirname, '..');
const DEFAULT_DATABASE_URL = 'postgresql://postgres@127.0.0.1:5432/fastadapt';
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
const START_WAIT_MS = 30_000;
/** How long a setup waits for another one on the same checkout (a fresh clone's npm ci included). */
const LOCK_WAIT_MS = 10 * 60_000;

const started = performance.now();
const log = (step, message) => console.error(`setup: ${step.padEnd(10)} ${message}`);

class SetupError extends Error {}

function run(command, args, options = {}) {
  // The child's stdout goes to our stderr (see the header).
  const result = spawnSync(command, args, { cwd: ROOT, stdio: ['inherit', 2, 'inherit'], ...options });
  if (result.error) throw new SetupError(`${command} could not start: ${result.error.message}`);
  if (result.status !== 0) throw new SetupError(`${command} ${args.join(' ')} exited with ${result.status}`);
  return result;
}

/** (a) node_modules missing, or package-lock.json changed since the last install -> npm ci. */
function ensureDependencies() {
  const lockfile = join(ROOT, 'package-lock.json');
  // npm rewrites this hidden lockfile at the end of every install.
  const installed = join(ROOT, 'node_modules', '.package-lock.json');
  if (!existsSync(lockfile)) {
    log('deps', 'no package-lock.json: npm install');
    run('npm', ['install', '--no-audit', '--no-fund']);
    return;
  }
  if (existsSync(installed) && statSync(installed).mtimeMs >= statSync(lockfile).mtimeMs) {
    log('deps', 'node_modules matches package-lock.json');
    return;
  }
  log('deps', existsSync(installed) ? 'package-lock.json changed: npm ci' : 'node_modules missing: npm ci');
  run('npm', ['ci', '--no-audit', '--no-fund']);
}

/** (b) The fused engine's WebAssembly kernels, compiled from src/meta/fused/assembly when missing or stale. */
async function ensureKernels() {
  const { buildWasm } = await import('./build-wasm.mjs');
  try {
    log('wasm', buildWasm() ? 'compiled src/meta/fused/kernels.wasm' : 'kernels.wasm is current');
  } catch (error) {
    throw new SetupError(`fused kernels: ${error.message}`);
  }
}

function endpoint(url, defaultPort) {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : defaultPort };
}

function answers({ host, port }, timeoutMs = 500) {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function waitUntilAnswers(target, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await answers(target)) return true;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return false;
}

function onPath(binary) {
  return spawnSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' }).status === 0;
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

/** apt-get install; where that fails (package lists stale or absent, as in a fresh container), apt-get update and once more. */
function aptInstall(packages) {
  const options = { stdio: ['ignore', 2, 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } };
  const install = () => spawnSync('apt-get', ['install', '-y', '-qq', ...packages], options).status === 0;
  if (install()) return true;
  spawnSync('apt-get', ['update', '-qq'], options);
  return install();
}

/** Installed Postgres server majors (Debian's layout: /usr/lib/postgresql/<version>/bin/postgres). */
function postgresServerVersions() {
  if (!existsSync('/usr/lib/postgresql')) return [];
  return readdirSync('/usr/lib/postgresql').filter((v) => existsSync(`/usr/lib/postgresql/${v}/bin/postgres`));
}

/** What planService needs to know about this machine (see scripts/setup-plan.mjs). */
async function serviceFacts(service, target, user) {
  const facts = { service, host: target.host, port: target.port, user, answering: await answers(target), root: isRoot(), aptGet: onPath('apt-get') };
  if (service === 'redis') return { ...facts, installed: onPath('redis-server') };
  const serverVersions = postgresServerVersions();
  const listed = onPath('pg_lsclusters') ? spawnSync('pg_lsclusters', ['--no-header'], { encoding: 'utf8' }).stdout : '';
  return { ...facts, installed: onPath('pg_ctlcluster') && serverVersions.length > 0, serverVersions, clusters: parseClusters(listed ?? '') };
}

/** Carries out one step of planService's plan. */
function carryOut(name, step) {
  const cluster = `${step.version}/${step.name}`;
  switch (step.kind) {
    case 'create-cluster':
      log(name, `no cluster: creating ${cluster} on port ${step.port}`);
      return run('pg_createcluster', ['--port', String(step.port), step.version, step.name]);
    case 'trust-local': {
      const hba = `/etc/postgresql/${step.version}/${step.name}/pg_hba.conf`;
      const before = readFileSync(hba, 'utf8');
      const after = withLocalTrust(before, step.user);
      if (after !== before) writeFileSync(hba, after);
      return log(name, `${cluster} (created by setup): ${step.user} connects from this machine without a password (${hba})`);
    }
    case 'start-cluster':
      log(name, `starting cluster ${cluster}`);
      return run('pg_ctlcluster', ['--skip-systemctl-redirect', step.version, step.name, 'start']);
    case 'reload-cluster':
      return run('pg_ctlcluster', ['--skip-systemctl-redirect', step.version, step.name, 'reload']);
    case 'start-redis':
      log(name, `starting redis-server on port ${step.port}`);
      return run('redis-server', [
        '--daemonize', 'yes', '--bind', '127.0.0.1', '--port', String(step.port),
        '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction',
      ]);
    default:
      throw new SetupError(`unknown setup step ${step.kind}`);
  }
}

/**
 * (b) The service answers on its TCP port; if not and it is local, install it with apt-get where
 * setup may (root), create its cluster (Postgres) where there is none, start it and wait.
 */
async function ensureService(name, target, user) {
  const where = `${target.host}:${target.port}`;
  const first = await serviceFacts(name, target, user);
  let plan = planService(first);
  if (plan.steps?.[0]?.kind === 'install') {
    const { packages } = plan.steps[0];
    log(name, `not answering at ${where} and not installed: apt-get install ${packages.join(' ')}`);
    if (!aptInstall(packages)) throw new SetupError(`${name} does not answer at ${where} and apt-get could not install ${packages.join(' ')}: ${SERVICE_HOW}`);
    // What the package's own scripts did (Debian's postgresql creates a cluster and may start it) decides what is left.
    const before = new Set((first.clusters ?? []).map(clusterId));
    const facts = await serviceFacts(name, target, user);
    plan = planService({ ...facts, createdBySetup: (facts.clusters ?? []).map(clusterId).filter((id) => !before.has(id)) });
    if (plan.steps?.[0]?.kind === 'install') throw new SetupError(`apt-get installed ${packages.join(' ')}, but setup still does not find ${name}'s binaries`);
  }
  if (plan.fail) throw new SetupError(plan.fail);
  if (plan.steps.length === 0) return log(name, `answers at ${where}`);
  try {
    for (const step of plan.steps) carryOut(name, step);
  } catch (error) {
    // e.g. pg_ctlcluster run by a user who does not own the cluster.
    throw new SetupError(`${name} does not answer at ${where} and starting it failed (${error.message}): ${SERVICE_HOW}`);
  }
  if (!(await waitUntilAnswers(target, START_WAIT_MS))) {
    throw new SetupError(`${name} was started but does not answer at ${where} after ${START_WAIT_MS / 1000} s: ${SERVICE_HOW}`);
  }
  log(name, `started, answers at ${where}`);
}

/** How setup tells whether a test tool is here: as the tests that need it look for it. */
const toolPresent = {
  'docker-compose': () => onPath('docker-compose'),
  chromium: () => existsSync('/usr/bin/chromium'),
  // Where bench/pytorch/baseline.ts's findPytorch('auto') looks: /usr/bin/python3, then python3 on
  // PATH. find_spec locates the package without importing it: `import torch` takes 1.5 s, and a
  // second setup run should take about a second (the tests import it, and say so if it fails).
  torch: () =>
    ['/usr/bin/python3', 'python3'].some(
      (python) => spawnSync(python, ['-c', "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"], { stdio: 'ignore' }).status === 0,
    ),
};

/**
 * (f, --test only) The tools some tests need (scripts/setup-plan.mjs's TEST_TOOLS): Debian's
 * docker-compose validates docker-compose.yml statically (`docker-compose config`, no Docker engine),
 * Debian's Chromium runs the dashboard's browser test (playwright-core drives /usr/bin/chromium and
 * downloads no browser), python3-torch runs the PyTorch parity tests. Installed with apt-get where
 * setup may; otherwise it says why, and those tests skip saying why (fail under CI=true).
 */
function ensureTestTool(tool) {
  const { what, neededBy } = TEST_TOOLS[tool];
  const plan = planTool(tool, { present: toolPresent[tool](), root: isRoot(), aptGet: onPath('apt-get') });
  if (plan.missing) return log('tools', plan.missing);
  if (!plan.install) return log('tools', `${what} present (${neededBy})`);
  log('tools', `installing ${plan.install} with apt-get (${neededBy})`);
  if (!aptInstall([plan.install]) || !toolPresent[tool]()) {
    log('tools', `apt-get could not install ${plan.install}: ${neededBy} will be skipped (and fail under CI=true)`);
  }
}

function databaseName(url) {
  const name = decodeURIComponent(new URL(url).pathname.slice(1));
  if (!/^[A-Za-z_][A-Za-z0-9_$-]*$/.test(name)) throw new SetupError(`unexpected database name "${name}" in ${url}`);
  return name;
}

/** (c) CREATE DATABASE for each url whose database is missing (on that url's server). */
async function ensureDatabases(pg, urls) {
  for (const url of urls) {
    const name = databaseName(url);
    const maintenance = new URL(url);
    maintenance.pathname = '/postgres';
    const client = new pg.Client({ connectionString: maintenance.toString() });
    await client.connect();
    try {
      const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      if (rowCount === 0) {
        try {
          await client.query(`CREATE DATABASE "${name}"`);
          log('database', `created ${name}`);
        } catch (error) {
          // Another setup running at the same moment created it first.
          if (error.code !== '42P04') throw error;
        }
      } else {
        log('database', `${name} exists`);
      }
    } finally {
      await client.end();
    }
  }
}

/** Pending = a local migration that the database has not recorded as applied with the same checksum. */
async function pendingMigrations(pg, url, migrations) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows: exists } = await client.query("SELECT to_regclass('public._prisma_migrations') AS t");
    if (exists[0].t === null) return migrations.map((m) => m.name);
    const { rows } = await client.query(
      'SELECT migration_name, checksum FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL',
    );
    const applied = new Map(rows.map((row) => [row.migration_name, row.checksum]));
    return migrations.filter((m) => applied.get(m.name) !== m.checksum).map((m) => m.name);
  } finally {
    await client.end();
  }
}

async function main(argv) {
  const forTests = argv.includes('--test');
  const databaseUrl = process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
  const testUrl = process.env.TEST_DATABASE_URL || withDatabase(databaseUrl, `${databaseName(databaseUrl)}_test`);
  const urls = forTests ? [databaseUrl, testUrl] : [databaseUrl];

  ensureDependencies();
  await ensureKernels();
  await ensureService('postgres', endpoint(databaseUrl, 5432), decodeURIComponent(new URL(databaseUrl).username) || 'postgres');
  await ensureService('redis', endpoint(process.env.REDIS_URL || DEFAULT_REDIS_URL, 6379));

  // Installed by now: load them from the checkout.
  const { default: pg } = await import(pathToFileURL(join(ROOT, 'node_modules', 'pg', 'lib', 'index.js')).href);
  const prismaCli = await import('./prisma-cli.mjs');
  await ensureDatabases(pg, urls);

  const hadClient = existsSync(prismaCli.GENERATED_CLIENT);
  if (prismaCli.generateClient()) log('prisma', `generated the client (${hadClient ? 'schema or Prisma changed' : 'missing'})`);
  else log('prisma', 'client is current');

  const migrations = prismaCli.listMigrations();
  for (const url of urls) {
    const name = databaseName(url);
    const pending = await pendingMigrations(pg, url, migrations);
    if (pending.length === 0) {
      log('migrate', `${name} is up to date (${migrations.length} migration${migrations.length === 1 ? '' : 's'})`);
      continue;
    }
    prismaCli.deployMigrations(url);
    log('migrate', `${name}: applied ${pending.join(', ')}`);
  }
  if (forTests) for (const tool of Object.keys(TEST_TOOLS)) ensureTestTool(tool);
  log('ready', `in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

function withDatabase(url, name) {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function lockHolder(lock) {
  try {
    return Number(readFileSync(join(lock, 'pid'), 'utf8'));
  } catch {
    return null; // being created or released right now
  }
}

function lockAgeMs(lock) {
  try {
    return Date.now() - statSync(lock).mtimeMs;
  } catch {
    return 0; // just released
  }
}

function isRunning(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/** Runs `work` holding this checkout's setup lock (a directory in the temp dir: mkdir is atomic). */
async function withLock(work) {
  const lock = join(tmpdir(), `fastadapt-setup-${createHash('sha256').update(ROOT).digest('hex').slice(0, 12)}.lock`);
  const deadline = Date.now() + LOCK_WAIT_MS;
  let told = false;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
    }
    const holder = lockHolder(lock);
    const orphaned = holder === null ? lockAgeMs(lock) > 5_000 : !isRunning(holder);
    if (orphaned) {
      rmSync(lock, { recursive: true, force: true }); // left by a setup that was killed
      continue;
    }
    if (Date.now() > deadline) throw new SetupError(`another setup (pid ${holder}) has held ${lock} for ${LOCK_WAIT_MS / 60_000} min; stop it or remove the directory`);
    if (!told) log('lock', `another setup (pid ${holder ?? '?'}) is running on this checkout: waiting for it`);
    told = true;
    await sleep(250);
  }
  try {
    return await work();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

withLock(() => main(process.argv.slice(2))).catch((error) => {
  const message = error instanceof SetupError ? error.message : (error?.stack ?? String(error));
  console.error(`setup: FAILED    ${message}`);
  process.exitCode = 1;
});
