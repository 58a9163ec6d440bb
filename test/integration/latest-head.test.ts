/**
 * The predict cache's miss path (loadLatestHead): one statement that finds the tenant's task and its
 * newest head, and answers missing / not-adapted / ready; its plan reads both tables through their
 * primary keys (the scale benchmark records the plan the planner picks at 10^5 tasks too).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../../src/db/client.js';
import { LATEST_HEAD_SQL, loadLatestHead } from '../../src/db/repositories/tasks.js';
import { encodeParams } from '../../src/meta/index.js';
import { storeMetaModel } from './support/adapt-fixtures.js';
import { TEST_DATABASE_URL } from './support/services.js';
import { seedTenant } from './support/training-fixtures.js';

let db: Db;
let tenantId: string;
let otherTenantId: string;
let metaModelId: string;

beforeAll(async () => {
  db = createDb(TEST_DATABASE_URL);
  tenantId = await seedTenant(db, 'latest-head');
  otherTenantId = await seedTenant(db, 'latest-head-other');
  ({ metaModelId } = await storeMetaModel(db, tenantId, { hidden: [4] }));
});

afterAll(async () => {
  await db.prisma.tenant.deleteMany({ where: { id: { in: [tenantId, otherTenantId] } } });
  await db.close();
});

const head = (value: number) => new Uint8Array(encodeParams({ 'head.weight': { shape: [4, 1], data: new Float32Array(4).fill(value) }, 'head.bias': { shape: [1], data: new Float32Array([value]) } }));

describe('loadLatestHead', () => {
  it("answers the newest version of the tenant's task, and nothing for another tenant", async () => {
    const task = await db.prisma.task.create({ data: { tenantId, metaModelId, kind: 'regression', inputDim: 1 } });
    expect(await loadLatestHead(db, tenantId, task.id)).toEqual({ status: 'not-adapted' });
    for (const version of [1, 2, 3]) {
      await db.prisma.adaptedHead.create({ data: { taskId: task.id, version, params: head(version), supportLossBefore: 1, supportLossAfter: 0.5, supportLossTrace: [], bestStep: 5, diverged: false, steps: 5, innerLr: 0.01, durationMs: 1 } });
    }
    await db.prisma.task.update({ where: { id: task.id }, data: { headVersion: 3 } });
    const found = await loadLatestHead(db, tenantId, task.id);
    expect(found.status).toBe('ready');
    if (found.status !== 'ready') return;
    expect(found.head).toMatchObject({ taskId: task.id, metaModelId, headVersion: 3 });
    expect(Array.from(found.head.adapted['head.bias'].data)).toEqual([3]);
    expect(await loadLatestHead(db, otherTenantId, task.id)).toEqual({ status: 'missing' });
    expect(await loadLatestHead(db, tenantId, '00000000-0000-7000-8000-000000000000')).toEqual({ status: 'missing' });
  });

  it('reads tasks and adapted_heads through their primary keys', async () => {
    // One connection of the pool, so the setting and the EXPLAIN share a transaction.
    const client = await db.sql.connect();
    await client.query('BEGIN');
    try {
      // Tiny test tables would rather be scanned whole: forbid it, so the plan shows which indexes serve.
      await client.query('SET LOCAL enable_seqscan = off');
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${LATEST_HEAD_SQL}`, ['t', null]);
      const text = rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(text).toMatch(/Index (Only )?Scan using tasks_pkey on tasks/);
      expect(text).toMatch(/Index (Only )?Scan Backward using adapted_heads_pkey on adapted_heads/);
      expect(text).not.toMatch(/Seq Scan|Sort/);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });
});
