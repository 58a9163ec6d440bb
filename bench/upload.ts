/**
 * `npm run bench:upload -- [--rows 1000000] [--features 16] [--task-rows 100] [--part-mib 16]`:
 * bringing your own data at real size. Generates a regression CSV (`task,y,x1..xd`, tasks of
 * `--task-rows` rows), then in the same run:
 * - uploads it through the API (a separate `--role api` process, through the client's uploadFamily
 *   helper: parts, commit) and samples the API process's RSS every 20 ms throughout;
 * - loads the same file with `psql \copy` into a plain table (task text, y real, x1..xd real);
 * - loads the committed family as a worker does and samples episodes for `--seconds`: meta-batches of
 *   25 tasks x 20 rows (10 support + 10 query).
 * Writes bench/results/upload.json: rows, bytes, apiSeconds, psqlCopySeconds, apiVsPsql,
 * apiPeakRssGrowthMiB, episodesPerSecond (and the settings). Targets (issue 15): apiVsPsql <= 2
 * (upload at least half as fast as \copy), RSS growth < 200 MiB, >= 10^4 episodes per second.
 * The ratio depends on the machine being quiet (the client, the API and Postgres share its cores),
 * so `machine` records the load average (1, 5, 15 min) when the run starts, after the \copy, and at
 * the end: a 1-minute figure near the core count or above says it was not.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { createFastadaptClient, uploadFamily } from '../clients/typescript/src/index.js';
import { loadConfig } from '../src/config.js';
import { createDb } from '../src/db/client.js';
import { createApiKey } from '../src/db/repositories/api-keys.js';
import { loadFamilySpec } from '../src/db/repositories/task-families.js';
import { createFamily, Rng } from '../src/meta/index.js';
import { freePort } from '../test/integration/support/services.js';
import { readyz, startProcess } from './support/processes.js';

const { values: opts } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    features: { type: 'string', default: '16' },
    'task-rows': { type: 'string', default: '100' },
    'part-mib': { type: 'string', default: '16' },
    seconds: { type: 'string', default: '3' },
    out: { type: 'string', default: 'bench/results/upload.json' },
  },
});

const MiB = 1024 * 1024;
const round = (value: number, digits = 2) => Number(value.toFixed(digits));

/** The CSV: y = w_task . x + noise, with per-task weights, so tasks differ as they would. */
async function writeCsv(file: string, rows: number, features: number, taskRows: number): Promise<number> {
  const out = createWriteStream(file);
  const rng = new Rng(15);
  const header = ['task', 'y', ...Array.from({ length: features }, (_, i) => `x${i + 1}`)].join(',');
  let buffer = `${header}\n`;
  let weights: number[] = [];
  for (let r = 0; r < rows; r++) {
    const task = Math.floor(r / taskRows);
    if (r % taskRows === 0) weights = Array.from({ length: features }, () => rng.uniform(-1, 1));
    const x = Array.from({ length: features }, () => rng.uniform(-1, 1));
    const y = x.reduce((sum, v, i) => sum + v * weights[i], 0) + rng.uniform(-0.05, 0.05);
    buffer += `task-${task},${y.toFixed(5)},${x.map((v) => v.toFixed(5)).join(',')}\n`;
    if (buffer.length > MiB) {
      if (!out.write(buffer)) await once(out, 'drain');
      buffer = '';
    }
  }
  out.end(buffer);
  await once(out, 'finish');
  return statSync(file).size;
}

/** Resident set size of a process, in bytes (Linux /proc). */
function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'))!;
  return Number(line.split(/\s+/)[1]) * 1024;
}

async function main(): Promise<void> {
  const rows = Number(opts.rows);
  const features = Number(opts.features);
  const taskRows = Number(opts['task-rows']);
  const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent' }, []);
  const dir = join(tmpdir(), `fastadapt-bench-upload-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'rows.csv');
  const db = createDb(config.databaseUrl);
  let api: ChildProcess | undefined;
  let tenantId: string | undefined;
  const table = `bench_upload_copy_${process.pid}`;
  const load = () => loadavg().map((v) => round(v));
  const loadAverageAtStart = load();
  try {
    const bytes = await writeCsv(file, rows, features, taskRows);
    console.log(`generated ${rows.toLocaleString('en-US')} rows x ${features} features (${(bytes / MiB).toFixed(1)} MiB)`);

    // psql \copy of the same file into a plain table: the yardstick.
    const columns = ['task text', 'y real', ...Array.from({ length: features }, (_, i) => `x${i + 1} real`)].join(', ');
    const psql = (command: string) => {
      const result = spawnSync('psql', [config.databaseUrl, '-v', 'ON_ERROR_STOP=1', '-q', '-c', command], { encoding: 'utf8' });
      if (result.status !== 0) throw new Error(`psql failed: ${result.stderr}`);
    };
    psql(`CREATE TABLE ${table} (${columns})`);
    const copyStarted = performance.now();
    psql(`\\copy ${table} FROM '${file}' WITH (FORMAT csv, HEADER true)`);
    const psqlCopySeconds = (performance.now() - copyStarted) / 1000;
    psql(`DROP TABLE ${table}`);
    const loadAverageAfterCopy = load();
    console.log(`psql \\copy: ${psqlCopySeconds.toFixed(2)} s`);

    const key = await createApiKey(db, `bench-upload-${process.pid}`);
    tenantId = key.tenantId;
    const port = await freePort();
    api = await startProcess('the API', ['src/main.ts', '--role', 'api'], { PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', RATE_LIMIT_MAX: '1000000000', QUEUE_PREFIX: `fastadapt-bench-upload-${process.pid}` }, readyz(port));
    const baseline = rssBytes(api.pid!);
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(api!.pid!))), 20);
    const client = createFastadaptClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: key.key });
    const uploadStarted = performance.now();
    /** When each part was accepted: what remains after the last is the commit. */
    const partsDone: { part: number; seconds: number }[] = [];
    const family = await uploadFamily(client, createReadStream(file), {
      name: 'bench-upload',
      kind: 'regression',
      format: 'csv',
      partBytes: Math.floor(Number(opts['part-mib']) * MiB),
      onProgress: (p) => partsDone.push({ part: p.parts, seconds: (performance.now() - uploadStarted) / 1000 }),
    });
    const apiSeconds = (performance.now() - uploadStarted) / 1000;
    const commitSeconds = apiSeconds - (partsDone.at(-1)?.seconds ?? 0);
    clearInterval(sampler);
    peak = Math.max(peak, rssBytes(api.pid!));
    if (family.rowCount !== rows || family.status !== 'ready') throw new Error(`the upload committed ${family.rowCount} rows (${family.status}), expected ${rows}`);
    console.log(`API upload: ${apiSeconds.toFixed(2)} s (${(bytes / MiB / apiSeconds).toFixed(1)} MiB/s), commit ${commitSeconds.toFixed(2)} s, RSS ${(baseline / MiB).toFixed(0)} -> peak ${(peak / MiB).toFixed(0)} MiB`);

    // Sampling as a worker does: the family loaded once, episodes drawn from it.
    const loadStarted = performance.now();
    const sampled = createFamily((await loadFamilySpec(db, tenantId, family.id))!);
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    const rng = new Rng(1);
    const shape = { shots: 10, queryShots: 10 };
    let episodes = 0;
    const sampleStarted = performance.now();
    const until = sampleStarted + Number(opts.seconds) * 1000;
    while (performance.now() < until) {
      for (let t = 0; t < 25; t++) sampled.sampleEpisode(rng, 'train', shape);
      episodes += 25;
    }
    const episodesPerSecond = episodes / ((performance.now() - sampleStarted) / 1000);
    console.log(`sampling: ${Math.round(episodesPerSecond).toLocaleString('en-US')} episodes/s (meta-batches of 25 tasks x 20 rows); family loaded in ${loadSeconds.toFixed(2)} s`);

    const results = {
      rows,
      bytes,
      features,
      taskRows,
      partMiB: Number(opts['part-mib']),
      apiSeconds: round(apiSeconds, 3),
      psqlCopySeconds: round(psqlCopySeconds, 3),
      apiVsPsql: round(apiSeconds / psqlCopySeconds),
      commitSeconds: round(commitSeconds, 3),
      parts: partsDone.length,
      apiMiBPerSecond: round(bytes / MiB / apiSeconds),
      apiBaselineRssMiB: round(baseline / MiB, 1),
      apiPeakRssGrowthMiB: round((peak - baseline) / MiB, 1),
      familyLoadSeconds: round(loadSeconds, 3),
      episodesPerSecond: Math.round(episodesPerSecond),
      episodeShape: { tasksPerMetaBatch: 25, rowsPerTask: 20 },
      targets: { apiVsPsqlAtMost: 2, apiPeakRssGrowthMiBBelow: 200, episodesPerSecondAtLeast: 10_000 },
      machine: { cpus: cpus().length, node: process.version, loadAverageAtStart, loadAverageAfterCopy, loadAverageAtEnd: load() },
      at: new Date().toISOString(),
    };
    mkdirSync(dirname(opts.out), { recursive: true });
    writeFileSync(opts.out, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`wrote ${opts.out}`);
  } finally {
    if (api && api.exitCode === null) {
      api.kill('SIGTERM');
      await once(api, 'exit');
    }
    // The bench's tenant goes with its family and rows.
    if (tenantId) await db.prisma.tenant.delete({ where: { id: tenantId } }).catch(() => {});
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
