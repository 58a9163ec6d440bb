/**
 * Uploaded dataset families on the real database: created empty, filled part by part (CSV and NDJSON,
 * streamed), a retried part replacing itself, a bad row answered with its part, line and column and
 * nothing of that part stored, the commit fixing the splits (seeded, class-disjoint, or the rows'
 * own), limits, deletion before commit, and meta-training refusing a family that is not ready.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFamilySpec } from '../../src/db/repositories/task-families.js';
import { createFamily, Rng } from '../../src/meta/index.js';
import { newTenant, QUICK, startApi, startWorker, waitForJob, type TestApi } from './support/api-app.js';

let api: TestApi;
let headers: Record<string, string>;
let tenantId: string;

beforeAll(async () => {
  api = await startApi('uploads', { MAX_DATASET_ROWS: '2000', MAX_PART_BYTES: '200000' });
  ({ headers, tenantId } = await newTenant(api.db));
});

afterAll(async () => {
  await api?.close();
});

interface Family { id: string; status: string; rowCount: number; taskCount: number; source: string; error?: string }

async function create(body: Record<string, unknown>): Promise<Family> {
  const response = await api.app.inject({ method: 'POST', url: '/task-families', headers, payload: { source: 'upload', ...body } });
  expect(response.statusCode, response.body).toBe(201);
  return response.json() as Family;
}

const put = (id: string, n: number, body: string, type = 'text/csv') =>
  api.app.inject({ method: 'PUT', url: `/task-families/${id}/parts/${n}`, headers: { ...headers, 'content-type': type }, payload: body });
const commit = (id: string) => api.app.inject({ method: 'POST', url: `/task-families/${id}/commit`, headers });
const chunkRows = async (id: string) =>
  Number((await api.db.sql.query<{ n: string }>('SELECT COALESCE(SUM(examples), 0) AS n FROM dataset_chunks WHERE family_id = $1', [id])).rows[0].n);

/** A regression CSV: `tasks` tasks of `rows` rows, y = x1 + 2 x2 + task. */
function regressionCsv(tasks: number, rows: number, from = 0): string {
  const lines = ['task,y,x1,x2'];
  for (let t = from; t < from + tasks; t++) {
    for (let i = 0; i < rows; i++) {
      const [a, b] = [i / rows, (t % 7) / 7];
      lines.push(`t${t},${a + 2 * b + t},${a},${b}`);
    }
  }
  return lines.join('\n') + '\n';
}

describe('regression upload', () => {
  it('streams parts, replaces a retried part, commits a seeded 70/15/15 split by task, and samples', async () => {
    const family = await create({ name: 'lines', kind: 'regression', inputDim: 2 });
    expect(family).toMatchObject({ source: 'upload', status: 'uploading', rowCount: 0 });
    const first = await put(family.id, 1, regressionCsv(10, 20));
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ part: 1, rows: 200, family: { rowCount: 200, status: 'uploading' } });
    // Part 2 sent twice (a retry): the second replaces the first, nothing doubles.
    expect((await put(family.id, 2, regressionCsv(10, 20, 10))).statusCode).toBe(200);
    const retried = await put(family.id, 2, regressionCsv(10, 20, 10).replace(/\r?\n/g, '\r\n'));
    expect(retried.json()).toMatchObject({ rows: 200, family: { rowCount: 400 } });
    expect(await chunkRows(family.id)).toBe(400);

    const committed = await commit(family.id);
    expect(committed.statusCode).toBe(200);
    expect(committed.json()).toMatchObject({ status: 'ready', rowCount: 400, taskCount: 20 });
    const splits = (await api.db.sql.query<{ split: string; n: string }>('SELECT split, COUNT(DISTINCT group_key) AS n FROM dataset_chunks WHERE family_id = $1 GROUP BY split ORDER BY split', [family.id])).rows;
    expect(splits.map((r) => [r.split, Number(r.n)])).toEqual([['test', 3], ['train', 14], ['val', 3]]);

    // Loaded back as float32 rows: an episode's rows are rows of the CSV (y = x1 + 2 x2 + task).
    api.db.datasets.clear();
    const spec = (await loadFamilySpec(api.db, tenantId, family.id))!;
    expect(spec.rows?.y.length).toBe(400);
    const episode = createFamily(spec).sampleEpisode(new Rng(1), 'train', { shots: 5, queryShots: 5 });
    for (let i = 0; i < 5; i++) {
      const [a, b] = [episode.support.x[2 * i], episode.support.x[2 * i + 1]];
      const task = episode.support.y[i] - a - 2 * b;
      expect(Math.abs(task - Math.round(task))).toBeLessThan(1e-3);
    }
    // Committed: parts and a second commit are refused, and it cannot be deleted.
    expect((await put(family.id, 3, regressionCsv(1, 5))).statusCode).toBe(409);
    expect((await commit(family.id)).statusCode).toBe(409);
    expect((await api.app.inject({ method: 'DELETE', url: `/task-families/${family.id}`, headers })).statusCode).toBe(409);
  });

  it('answers a bad row with its part, line and column, and stores nothing of that part', async () => {
    const family = await create({ name: 'bad', kind: 'regression', inputDim: 2 });
    const body = regressionCsv(2, 5).split('\n');
    body[7] = 't1,3,0.5,NaN';
    const bad = await put(family.id, 4, body.join('\n'));
    expect(bad.statusCode).toBe(400);
    expect(bad.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(bad.json()).toMatchObject({ part: 4, line: 8, column: 'x2', detail: expect.stringMatching(/part 4, line 8, column x2/) });
    expect(await chunkRows(family.id)).toBe(0);

    const cases: [string, string, RegExp][] = [
      ['task,y,x1\nt,1,2\n', 'text/csv', /2 feature columns|1 feature columns/],
      ['task,y,x1,x2\nt,1,2\n', 'text/csv', /line 2.*3 columns/],
      ['task,y,x1,x2\n"t,1,2,3\n', 'text/csv', /quoted field/],
      ['{"task":"a","y":1,"x":[1]}\n', 'application/x-ndjson', /column x/],
      ['{"task":"a","y":1,"x":[1,2]}\n{"y":1,"x":[1,2]}\n', 'application/x-ndjson', /line 2, column task/],
      ['{"task":"a","y":1e400,"x":[1,2]}\n', 'application/x-ndjson', /column y/],
      ['not json\n', 'application/x-ndjson', /line 1/],
      ['', 'text/csv', /empty/],
      [`task,y,x1,x2\nt,1,2,${'9'.repeat(300_000)}\n`, 'text/csv', /./],
    ];
    for (const [text, type, detail] of cases) {
      const response = await put(family.id, 1, text, type);
      expect(response.statusCode, text.slice(0, 60)).toBeGreaterThanOrEqual(400);
      expect(response.statusCode).toBeLessThan(500);
      expect((response.json() as { detail: string }).detail).toMatch(detail);
    }
    expect((await put(family.id, 1, '{"a":1}', 'application/json')).statusCode).toBe(415);
    expect(await chunkRows(family.id)).toBe(0);
    expect((await api.app.inject({ method: 'GET', url: `/task-families/${family.id}`, headers })).json()).toMatchObject({ rowCount: 0, status: 'uploading' });
  });

  it('refuses a family past MAX_DATASET_ROWS (413) and keeps the parts before it', async () => {
    const family = await create({ name: 'big', kind: 'regression', inputDim: 2 });
    expect((await put(family.id, 1, regressionCsv(50, 30))).statusCode).toBe(200);
    const over = await put(family.id, 2, regressionCsv(20, 30));
    expect(over.statusCode).toBe(413);
    expect(await chunkRows(family.id)).toBe(1500);
  });

  it('refuses meta-training on an uploading family, and deletes it with its rows', async () => {
    const family = await create({ name: 'pending', kind: 'regression', inputDim: 2 });
    await put(family.id, 1, regressionCsv(5, 10));
    const job = await api.app.inject({ method: 'POST', url: '/meta-train', headers, payload: { familyIds: [family.id], algorithm: 'maml' } });
    expect(job.statusCode).toBe(400);
    expect(job.json()).toMatchObject({ errors: [{ path: '/familyIds/0', message: expect.stringMatching(/uploading, not ready/) }] });
    expect((await api.app.inject({ method: 'DELETE', url: `/task-families/${family.id}`, headers })).statusCode).toBe(204);
    expect(await chunkRows(family.id)).toBe(0);
    expect((await api.app.inject({ method: 'GET', url: `/task-families/${family.id}`, headers })).statusCode).toBe(404);
  });

  it('refuses a commit of unusable rows, says why and changes nothing, so fixed parts can be committed', async () => {
    const family = await create({ name: 'two-tasks', kind: 'regression', inputDim: 2 });
    await put(family.id, 1, regressionCsv(2, 10));
    const before = (await api.app.inject({ method: 'GET', url: `/task-families/${family.id}`, headers })).json();
    const refused = await commit(family.id);
    expect(refused.statusCode).toBe(400);
    expect((refused.json() as { detail: string }).detail).toMatch(/2 tasks cannot be split/);
    expect((await api.app.inject({ method: 'GET', url: `/task-families/${family.id}`, headers })).json()).toEqual(before);
    expect(before).toMatchObject({ status: 'uploading' });
    // The part at fault replaced (part 1 again), the same family commits.
    await put(family.id, 1, regressionCsv(5, 10));
    expect((await commit(family.id)).json()).toMatchObject({ status: 'ready', taskCount: 5 });
  });
});

describe('many small tasks', () => {
  it('stores a part of 12,000 two-row tasks (more chunks than one INSERT carries) and commits it', async () => {
    const roomy = await startApi('uploads-roomy');
    try {
      const tenant = await newTenant(roomy.db);
      const created = (await roomy.app.inject({ method: 'POST', url: '/task-families', headers: tenant.headers, payload: { source: 'upload', name: 'many', kind: 'regression', inputDim: 1 } })).json() as Family;
      const lines = ['task,y,x'];
      for (let t = 0; t < 12_000; t++) lines.push(`t${t},${t},0.5`, `t${t},${t + 1},1.5`);
      const part = await roomy.app.inject({ method: 'PUT', url: `/task-families/${created.id}/parts/1`, headers: { ...tenant.headers, 'content-type': 'text/csv' }, payload: lines.join('\n') });
      expect(part.statusCode, part.body).toBe(200);
      const committed = await roomy.app.inject({ method: 'POST', url: `/task-families/${created.id}/commit`, headers: tenant.headers });
      expect(committed.json()).toMatchObject({ status: 'ready', taskCount: 12_000, rowCount: 24_000 });
      const spec = (await loadFamilySpec(roomy.db, tenant.tenantId, created.id))!;
      expect(spec.rows!.tasks).toHaveLength(12_000);
    } finally {
      await roomy.close();
    }
  });
});

describe('meta-training on an upload', () => {
  it('a worker meta-trains on a committed family, sampling it from the dataset cache', async () => {
    const family = await create({ name: 'trained', kind: 'regression', inputDim: 2 });
    await put(family.id, 1, regressionCsv(12, 30));
    expect((await commit(family.id)).statusCode).toBe(200);
    const worker = await startWorker(api);
    try {
      api.db.datasets.clear();
      const created = await api.app.inject({ method: 'POST', url: '/meta-train', headers, payload: { familyIds: [family.id], algorithm: 'maml', hyper: QUICK } });
      expect(created.statusCode, created.body).toBe(202);
      const job = await waitForJob<{ status: string; metrics?: { valLoss: number } }>(api, headers, (created.json() as { id: string }).id, (j) => j.status === 'succeeded' || j.status === 'failed', 60_000);
      expect(job.status).toBe('succeeded');
      // Loaded once, kept: the run and any later job share one copy of the rows.
      expect(api.db.datasets.has(family.id)).toBe(true);
    } finally {
      await worker.close();
    }
  });
});

describe('classification upload', () => {
  /** `classes` classes of `per` rows, label,x1,x2 with x near (label, -label). */
  function poolCsv(classes: number, per: number, split?: (label: number) => string): string {
    const lines = [split ? 'label,x1,x2,split' : 'label,x1,x2'];
    for (let c = 0; c < classes; c++) {
      for (let i = 0; i < per; i++) lines.push(`${c},${c + i / 100},${-c}${split ? `,${split(c)}` : ''}`);
    }
    return lines.join('\n');
  }

  it('splits a class pool class-disjoint and draws N-way episodes of distinct classes', async () => {
    const family = await create({ name: 'pool', kind: 'classification', inputDim: 2, nWay: 3 });
    expect((await put(family.id, 1, poolCsv(40, 6))).statusCode).toBe(200);
    expect((await commit(family.id)).json()).toMatchObject({ status: 'ready', taskCount: 40 });
    const bySplit = (await api.db.sql.query<{ group_key: string; n: string }>('SELECT group_key, COUNT(DISTINCT split) AS n FROM dataset_chunks WHERE family_id = $1 GROUP BY group_key', [family.id])).rows;
    expect(bySplit.every((r) => Number(r.n) === 1)).toBe(true);
    const splitOf = new Map((await api.db.sql.query<{ group_key: string; split: string }>('SELECT DISTINCT group_key, split FROM dataset_chunks WHERE family_id = $1', [family.id])).rows.map((r) => [Number(r.group_key.slice(6)), r.split]));
    const sampled = createFamily((await loadFamilySpec(api.db, tenantId, family.id))!);
    for (const split of ['train', 'val', 'test'] as const) {
      const episode = sampled.sampleEpisode(new Rng(3), split, { shots: 2, queryShots: 2 });
      // Each way's support rows are one class (x1 ~ label, x2 = -label), of this split.
      for (let way = 0; way < 3; way++) {
        const label = -episode.support.x[2 * (way * 2) + 1];
        expect(splitOf.get(Math.round(label))).toBe(split);
      }
    }
  });

  it("honours the rows' split column and refuses a class in two splits", async () => {
    const family = await create({ name: 'named', kind: 'classification', inputDim: 2, nWay: 2 });
    const split = (c: number) => (c < 4 ? 'train' : c < 6 ? 'val' : 'test');
    await put(family.id, 1, poolCsv(8, 4, split));
    expect((await commit(family.id)).statusCode).toBe(200);
    const counted = (await api.db.sql.query<{ split: string; n: string }>('SELECT split, COUNT(DISTINCT group_key) AS n FROM dataset_chunks WHERE family_id = $1 GROUP BY split ORDER BY split', [family.id])).rows;
    expect(counted.map((r) => [r.split, Number(r.n)])).toEqual([['test', 2], ['train', 4], ['val', 2]]);

    const twice = await create({ name: 'twice', kind: 'classification', inputDim: 2, nWay: 2 });
    await put(twice.id, 1, poolCsv(8, 4, split));
    await put(twice.id, 2, poolCsv(1, 4, () => 'val'));
    const refused = await commit(twice.id);
    expect(refused.statusCode).toBe(400);
    expect((refused.json() as { detail: string }).detail).toMatch(/class '0' is in more than one split/);
  });

  it('refuses at commit a split without enough classes for an N-way episode (checked on the targets)', async () => {
    const family = await create({ name: 'thin-val', kind: 'classification', inputDim: 2, nWay: 3 });
    await put(family.id, 1, poolCsv(8, 4, (c) => (c < 5 ? 'train' : c < 6 ? 'val' : 'test')));
    const refused = await commit(family.id);
    expect(refused.statusCode).toBe(400);
    expect((refused.json() as { detail: string }).detail).toMatch(/no val task has 3 classes with at least 2 examples/);
    expect((await api.app.inject({ method: 'GET', url: `/task-families/${family.id}`, headers })).json()).toMatchObject({ status: 'uploading' });
  });

  it('takes NDJSON with tasks of labelled rows', async () => {
    const family = await create({ name: 'ndjson', kind: 'classification', inputDim: 2, nWay: 2 });
    const lines = [];
    for (let t = 0; t < 6; t++) for (let i = 0; i < 8; i++) lines.push(JSON.stringify({ task: `s${t}`, label: i % 2, x: [i % 2, t] }));
    expect((await put(family.id, 1, lines.join('\n'), 'application/x-ndjson')).json()).toMatchObject({ rows: 48 });
    expect((await commit(family.id)).json()).toMatchObject({ status: 'ready', taskCount: 6, rowCount: 48 });
  });
});
