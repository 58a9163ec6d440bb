/**
 * `npm run upload` against a listening API: a CSV file streamed in several parts (a progress line
 * per part), committed, the family id on stdout; a file with a bad row exits 1 naming part, line and
 * column.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newTenant, startApi, type TestApi } from './support/api-app.js';

let api: TestApi;
let key: string;
let url: string;
const dir = mkdtempSync(join(tmpdir(), 'fastadapt-upload-'));

beforeAll(async () => {
  api = await startApi('upload-cli');
  key = (await newTenant(api.db)).headers.authorization.slice('Bearer '.length);
  url = await api.app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await api?.close();
});

function upload(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'scripts/upload.ts', ...args], { env: { ...process.env, ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('npm run upload', () => {
  it('streams a CSV in parts with progress, commits, and prints the family id', async () => {
    const lines = ['task,y,x1,x2,x3'];
    for (let t = 0; t < 30; t++) for (let i = 0; i < 100; i++) lines.push(`sensor-${t},${(t + i) / 10},${i / 100},${t / 30},${(i * t) % 7}`);
    const file = join(dir, 'sensors.csv');
    writeFileSync(file, lines.join('\n') + '\n');
    // ~90 KB in parts of 0.02 MiB: several parts.
    const run = await upload(['--name', 'sensors', '--kind', 'regression', '--url', url, '--part-mib', '0.02', file], { FASTADAPT_API_KEY: key });
    expect(run.stderr).toMatch(/committed 3,000 rows/);
    expect(run.code).toBe(0);
    expect(run.stderr.match(/rows .* MiB\/s {2}ETA/g)!.length).toBeGreaterThan(3);
    const id = run.stdout.trim();
    const family = (await api.app.inject({ method: 'GET', url: `/task-families/${id}`, headers: { authorization: `Bearer ${key}` } })).json();
    expect(family).toMatchObject({ status: 'ready', source: 'upload', inputDim: 3, rowCount: 3000, taskCount: 30 });
  });

  it('declares the rows\' image shape with --input-shape (checked by the service against inputDim)', async () => {
    const lines = ['task,y,x1,x2,x3,x4'];
    for (let t = 0; t < 10; t++) for (let i = 0; i < 10; i++) lines.push(`tile-${t},${t + i},${i / 10},${t / 10},${(i + t) % 3},1`);
    const file = join(dir, 'tiles.csv');
    writeFileSync(file, lines.join('\n') + '\n');
    const run = await upload(['--name', 'tiles', '--kind', 'regression', '--input-shape', '2x2x1', '--url', url, '--key', key, file]);
    expect(run.code, run.stderr).toBe(0);
    const family = (await api.app.inject({ method: 'GET', url: `/task-families/${run.stdout.trim()}`, headers: { authorization: `Bearer ${key}` } })).json();
    expect(family).toMatchObject({ status: 'ready', inputDim: 4, inputShape: [2, 2, 1] });
    const misfit = await upload(['--name', 'tiles', '--kind', 'regression', '--input-shape', '3x2x1', '--url', url, '--key', key, file]);
    expect(misfit.code).toBe(1);
    expect(misfit.stderr).toMatch(/inputShape.*product must be inputDim/);
    expect((await upload(['--name', 'tiles', '--kind', 'regression', '--input-shape', '2x2', '--url', url, '--key', key, file])).code).toBe(2);
  });

  it('exits 1 naming the part, line and column of a bad row; 2 without a key', async () => {
    const file = join(dir, 'bad.ndjson');
    writeFileSync(file, ['{"label":1,"x":[1,2]}', '{"label":2,"x":[1,"two"]}'].join('\n'));
    const run = await upload(['--name', 'bad', '--kind', 'classification', '--url', url, '--key', key, file]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/part 1, line 2, column x\[1\]/);
    // A bad row early in a large part: the answer reaches the client while it is still sending.
    const big = join(dir, 'big.csv');
    const rows = Array.from({ length: 120_000 }, (_, i) => `t${i % 50},${i},${i / 7}`);
    rows[1] = 't1,1,oops';
    writeFileSync(big, `task,y,x\n${rows.join('\n')}\n`);
    const early = await upload(['--name', 'big', '--kind', 'regression', '--url', url, '--key', key, big]);
    expect(early.stderr).toMatch(/part 1, line 3, column x/);
    expect(early.code).toBe(1);
    const noKey = await upload(['--name', 'x', '--kind', 'regression', file], { FASTADAPT_API_KEY: '' });
    expect(noKey.code).toBe(2);
  });
});
