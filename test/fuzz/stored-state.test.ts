/**
 * The fuzz suite's "nothing stored" check could fail: the per-table checksums move when any tenant's
 * row is updated, inserted or deleted, and cover a table no one listed; they stay put when nothing
 * changed or only an exempt column did.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../../src/db/client.js';
import { touchApiKey } from '../../src/db/repositories/api-keys.js';
import { newTenant } from '../integration/support/api-app.js';
import { createPrivateDatabase, type PrivateDatabase } from '../integration/support/private-database.js';
import { changedTables, storedState, storedStateQuery } from './support/stored-state.js';

let database: PrivateDatabase;
let db: Db;
let fuzzTenant: string;
let otherTenant: string;

async function addFamily(tenantId: string, name: string): Promise<string> {
  const family = await db.prisma.taskFamily.create({ data: { tenantId, name, kind: 'regression', inputDim: 1, generator: { type: 'sinusoid' } } });
  return family.id;
}

beforeAll(async () => {
  database = await createPrivateDatabase('stored_state');
  db = createDb(database.url);
  fuzzTenant = (await newTenant(db)).tenantId;
  otherTenant = (await newTenant(db)).tenantId;
  await addFamily(fuzzTenant, 'mine');
  await addFamily(otherTenant, 'theirs');
});

afterAll(async () => {
  await db.close();
  await database.drop();
});

describe('stored-state checksums', () => {
  it('are the same when nothing changed, and cover every application table', async () => {
    const query = await storedStateQuery(db);
    const first = await storedState(db, query);
    expect(await storedState(db, query)).toEqual(first);
    expect(Object.keys(first)).toEqual(expect.arrayContaining(['tenants', 'api_keys', 'task_families', 'meta_train_jobs', 'tasks', 'adapted_heads', 'adaptations']));
    expect(Object.keys(first)).not.toContain('_prisma_migrations');
  });

  it("see an UPDATE of another tenant's row, with the same row count", async () => {
    const query = await storedStateQuery(db);
    const before = await storedState(db, query);
    const updated = await db.prisma.$executeRawUnsafe(`UPDATE task_families SET name = 'renamed' WHERE tenant_id = $1`, otherTenant);
    expect(updated).toBe(1);
    expect(changedTables(before, await storedState(db, query))).toEqual(['task_families']);
  });

  it("see an INSERT and a DELETE for another tenant", async () => {
    const query = await storedStateQuery(db);
    const before = await storedState(db, query);
    const id = await addFamily(otherTenant, 'extra');
    const inserted = await storedState(db, query);
    expect(changedTables(before, inserted)).toEqual(['task_families']);
    await db.prisma.taskFamily.delete({ where: { id } });
    expect(await storedState(db, query)).toEqual(before);
  });

  it('ignore the exempt api_keys.last_used_at, and nothing else of that table', async () => {
    const query = await storedStateQuery(db);
    const before = await storedState(db, query);
    const key = await db.prisma.apiKey.findFirstOrThrow({ where: { tenantId: otherTenant } });
    await touchApiKey(db, key.id, new Date(Date.now() + 1000));
    expect(changedTables(before, await storedState(db, query))).toEqual([]);
    await db.prisma.apiKey.update({ where: { id: key.id }, data: { name: 'relabelled' } });
    expect(changedTables(before, await storedState(db, query))).toEqual(['api_keys']);
  });

  it('cover a table added later, found from information_schema', async () => {
    await db.prisma.$executeRawUnsafe('CREATE TABLE later_table (tenant_id text, note text)');
    const query = await storedStateQuery(db);
    const before = await storedState(db, query);
    expect(Object.keys(before)).toContain('later_table');
    await db.prisma.$executeRawUnsafe(`INSERT INTO later_table VALUES ($1, 'x')`, otherTenant);
    expect(changedTables(before, await storedState(db, query))).toEqual(['later_table']);
  });
});
