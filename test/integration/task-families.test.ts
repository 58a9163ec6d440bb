/**
 * Task families on the real database: generator and dataset families are validated by the engine
 * (errors name the field as a JSON pointer), stored (dataset tasks as float32 bytes that decode back),
 * listed with a cursor, and bounded by the configured limits (400 per field, 413 for the body).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFamilySpec } from '../../src/db/repositories/task-families.js';
import { newTenant, SINE, startApi, type TestApi } from './support/api-app.js';

let api: TestApi;
let headers: Record<string, string>;
let tenantId: string;

beforeAll(async () => {
  api = await startApi('families', { MAX_DATASET_TASKS: '6', MAX_SUPPORT_EXAMPLES: '40', MAX_BODY_BYTES: '65536' });
  ({ headers, tenantId } = await newTenant(api.db));
});

afterAll(async () => {
  await api?.close();
});

const post = (payload: unknown, h = headers) => api.app.inject({ method: 'POST', url: '/task-families', headers: h, payload: payload as object });

function problem(response: { statusCode: number; headers: Record<string, unknown>; json(): unknown }, status: number) {
  expect(response.statusCode).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  return response.json() as { detail: string; errors?: { path: string; message: string }[] };
}

/** `n` tasks of a 2-D linear relation, `examples` points each. */
function lineTasks(n: number, examples: number) {
  return Array.from({ length: n }, (_, t) => {
    const x = Array.from({ length: examples }, (_, i) => [i / examples, (t + 1) * 0.25]);
    return { x, y: x.map(([a, b]) => 2 * a - b + t) };
  });
}

describe('generator families', () => {
  it('creates a sinusoid family: 201, Location, and GET answers the same resource', async () => {
    const response = await post({ ...SINE, generator: { type: 'sinusoid', params: { amplitude: [0.1, 5] } } });
    expect(response.statusCode).toBe(201);
    const family = response.json() as { id: string };
    expect(family).toMatchObject({ name: 'sine', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid', params: { amplitude: [0.1, 5] } }, taskCount: 0 });
    expect(response.headers.location).toBe(`/task-families/${family.id}`);
    const read = await api.app.inject({ method: 'GET', url: `/task-families/${family.id}`, headers });
    expect(read.json()).toEqual(family);
  });

  it("names the engine's complaint as a JSON pointer", async () => {
    const bad = problem(await post({ ...SINE, generator: { type: 'sinusoid', params: { amplitude: [5, 1] } } }), 400);
    expect(bad.errors).toEqual([{ path: '/generator/params/amplitude', message: expect.stringMatching(/low \(5\) must not exceed high \(1\)/), in: 'body' }]);
    const wrongDim = problem(await post({ ...SINE, inputDim: 3 }), 400);
    expect(wrongDim.errors?.[0].path).toBe('/inputDim');
    const kind = problem(await post({ ...SINE, kind: 'classification', nWay: 5 }), 400);
    expect(kind.errors?.[0].path).toBe('/kind');
    const unknownParam = problem(await post({ ...SINE, generator: { type: 'sinusoid', params: { frequency: 2 } } }), 400);
    expect(unknownParam.errors?.[0].path).toBe('/generator/params/frequency');
  });

  it('refuses both or neither of generator and tasks, and an unknown generator', async () => {
    expect(problem(await post({ name: 'x', kind: 'regression', inputDim: 1 }), 400).errors?.[0].path).toBe('/generator');
    expect(problem(await post({ ...SINE, tasks: lineTasks(1, 4) }), 400).errors?.[0].message).toMatch(/exactly one/);
    expect(problem(await post({ ...SINE, generator: { type: 'cosine' } }), 400).errors?.[0]).toMatchObject({ path: '/generator/type', message: expect.stringMatching(/must be one of sinusoid\|/) });
  });
});

describe('dataset families', () => {
  it('stores tasks as float32 and gives them back', async () => {
    const tasks = lineTasks(3, 8);
    const response = await post({ name: 'lines', kind: 'regression', inputDim: 2, tasks });
    expect(response.statusCode).toBe(201);
    const family = response.json() as { id: string; taskCount: number };
    expect(family.taskCount).toBe(3);
    expect(family).not.toHaveProperty('tasks');
    const rows = await api.db.prisma.datasetTask.findMany({ where: { familyId: family.id }, orderBy: { index: 'asc' } });
    expect(rows.map((r) => [r.index, r.examples, r.x.byteLength, r.y.byteLength])).toEqual([0, 1, 2].map((i) => [i, 8, 8 * 2 * 4, 8 * 4]));
    const spec = await loadFamilySpec(api.db, tenantId, family.id);
    expect(spec?.tasks).toHaveLength(3);
    spec!.tasks!.forEach((task, t) => {
      task.x.forEach((row, i) => row.forEach((v, d) => expect(v).toBeCloseTo(tasks[t].x[i][d], 6)));
      task.y.forEach((v, i) => expect(v).toBeCloseTo(tasks[t].y[i], 5));
    });
  });

  it('names the bad example: wrong width, label, mismatched lengths', async () => {
    const tasks = lineTasks(2, 4);
    tasks[1].x[2] = [0.5];
    expect(problem(await post({ name: 'l', kind: 'regression', inputDim: 2, tasks }), 400).errors).toEqual([
      expect.objectContaining({ path: '/tasks/1/x/2', message: expect.stringMatching(/inputDim \(2\)/) }),
    ]);
    const labels = { name: 'c', kind: 'classification', inputDim: 1, nWay: 2, tasks: [{ x: [[0], [1], [2], [3]], y: [0, 1, 0.5, 1] }] };
    expect(problem(await post(labels), 400).errors?.[0].path).toBe('/tasks/0/y/2');
    const lengths = { name: 'l', kind: 'regression', inputDim: 1, tasks: [{ x: [[0], [1], [2]], y: [0, 1] }] };
    expect(problem(await post(lengths), 400).errors?.[0].path).toBe('/tasks/0/y');
  });

  it('checks a classification family can draw its ways', async () => {
    const twoClasses = { x: [[0], [0.1], [1], [1.1]], y: [0, 0, 1, 1] };
    expect((await post({ name: 'ok', kind: 'classification', inputDim: 1, nWay: 2, tasks: [twoClasses] })).statusCode).toBe(201);
    const body = problem(await post({ name: 'three', kind: 'classification', inputDim: 1, nWay: 3, tasks: [twoClasses] }), 400);
    expect(body.errors?.[0]).toMatchObject({ path: '/tasks', message: expect.stringMatching(/3 classes/) });
  });
});

describe('limits', () => {
  it('refuses more tasks than MAX_DATASET_TASKS and more examples than MAX_SUPPORT_EXAMPLES, naming the field', async () => {
    expect(problem(await post({ name: 'many', kind: 'regression', inputDim: 2, tasks: lineTasks(7, 3) }), 400).errors?.[0].path).toBe('/tasks');
    expect(problem(await post({ name: 'long', kind: 'regression', inputDim: 2, tasks: lineTasks(1, 41) }), 400).errors?.map((e) => e.path)).toContain('/tasks/0/x');
  });

  it('answers 413 problem+json for a body over MAX_BODY_BYTES', async () => {
    const big = { name: 'big', kind: 'regression', inputDim: 2, tasks: lineTasks(6, 40).map((t) => ({ ...t, y: t.y.map((v) => v + 0.123456789) })) };
    big.name = 'x'.repeat(70_000);
    const body = problem(await post(big), 413);
    expect(body.detail).toBeTruthy();
  });
});

describe('listing', () => {
  it('pages newest first with a cursor, and refuses a forged cursor', async () => {
    const tenant = await newTenant(api.db);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(((await post({ ...SINE, name: `sine-${i}` }, tenant.headers)).json() as { id: string }).id);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const url: string = `/task-families?limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const page = (await api.app.inject({ method: 'GET', url, headers: tenant.headers })).json() as { items: { id: string }[]; nextCursor: string | null };
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((f) => f.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
    const forged = await api.app.inject({ method: 'GET', url: '/task-families?cursor=bm90LWEtY3Vyc29y', headers: tenant.headers });
    expect(problem(forged, 400).errors?.[0]).toMatchObject({ path: '/cursor', in: 'query' });
    expect(problem(await api.app.inject({ method: 'GET', url: '/task-families?limit=0', headers: tenant.headers }), 400).errors?.[0].path).toBe('/limit');
  });
});
