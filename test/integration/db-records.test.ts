// Round trips and constraints on the real test database through the generated Prisma 7 client.
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDb, Prisma, type Db } from '../../src/db/client.js';
import { TEST_DATABASE_URL } from './support/services.js';

let db: Db;
const tenants: string[] = [];

beforeAll(() => {
  db = createDb(TEST_DATABASE_URL);
});

afterEach(async () => {
  // Every row a test writes hangs off its tenant, so this also proves the cascade works.
  await db.prisma.tenant.deleteMany({ where: { id: { in: tenants.splice(0) } } });
});

afterAll(async () => {
  await db.close();
});

async function newTenant() {
  const tenant = await db.prisma.tenant.create({ data: { name: `db-test-${randomUUID()}` } });
  tenants.push(tenant.id);
  return tenant;
}

async function newJob(tenantId: string, overrides: Partial<Prisma.MetaTrainJobUncheckedCreateInput> = {}) {
  return db.prisma.metaTrainJob.create({
    data: {
      tenantId,
      name: 'sine maml',
      algorithm: 'maml',
      familyIds: ['family-a', 'family-b'],
      model: { hidden: [40, 40], activation: 'relu' },
      hyper: { iterations: 100, metaBatchSize: 25, seed: 7 },
      iterations: 100,
      ...overrides,
    },
  });
}

async function newMetaModel(tenantId: string, name: string, version: number, params: Uint8Array) {
  const job = await newJob(tenantId);
  return db.prisma.metaModel.create({
    data: {
      tenantId,
      name,
      version,
      jobId: job.id,
      algorithm: 'maml',
      kind: 'regression',
      inputDim: 1,
      model: { hidden: [40, 40], activation: 'relu' },
      innerSteps: 1,
      innerLr: 0.01,
      metrics: { iteration: 100, trainLoss: 0.5, valLoss: 0.6 },
      params: new Uint8Array(params),
    },
  });
}

/** Float32 values that a lossy encoding (JSON of doubles, text) would not keep bit for bit. */
function awkwardFloats(): Float32Array {
  const values = new Float32Array(1024);
  for (let i = 0; i < values.length; i++) values[i] = Math.fround(Math.sin(i * 12.9898) * 43758.5453) / (i + 1);
  values.set([0, -0, 1e-45, -3.4028234663852886e38, 3.4028234663852886e38, 1.1754943508222875e-38, Math.fround(0.1)]);
  return values;
}

function isUniqueViolation(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002';
}

describe('createDb', () => {
  it('pings the real database and closes more than once without error', async () => {
    const own = createDb(TEST_DATABASE_URL);
    await expect(own.ping()).resolves.toBeUndefined();
    await own.close();
    await expect(own.close()).resolves.toBeUndefined();
  });

  it('rejects ping with a reason when nothing listens', async () => {
    const nowhere = createDb('postgresql://postgres@127.0.0.1:1/fastadapt_test', { pingTimeoutMs: 1000 });
    await expect(nowhere.ping()).rejects.toThrow(/^Postgres ping failed: .+/);
    await nowhere.close();
  });
});

describe('meta-model parameters', () => {
  it('come back byte for byte as float32 Bytes', async () => {
    const tenant = await newTenant();
    const floats = awkwardFloats();
    const bytes = new Uint8Array(floats.buffer);
    const created = await newMetaModel(tenant.id, 'sine', 1, bytes);

    const read = await db.prisma.metaModel.findUniqueOrThrow({ where: { id: created.id } });

    expect(read.params.byteLength).toBe(4 * floats.length);
    expect(Buffer.from(read.params).equals(Buffer.from(bytes))).toBe(true);
    const back = new Float32Array(read.params.buffer, read.params.byteOffset, floats.length);
    expect(Object.is(back[1], -0)).toBe(true);
    expect(Array.from(back)).toEqual(Array.from(floats));
    expect(read.model).toEqual({ hidden: [40, 40], activation: 'relu' });
  });

  it('stores the job lineage both ways', async () => {
    const tenant = await newTenant();
    const model = await newMetaModel(tenant.id, 'sine', 1, new Uint8Array(8));
    const job = await db.prisma.metaTrainJob.findUniqueOrThrow({
      where: { id: model.jobId },
      include: { metaModel: { select: { id: true } } },
    });
    expect(job.metaModel?.id).toBe(model.id);
    expect(job.familyIds).toEqual(['family-a', 'family-b']);
    expect(job.status).toBe('queued');
  });
});

describe('constraints', () => {
  it('allow one meta-model per (tenant, name, version)', async () => {
    const tenant = await newTenant();
    const other = await newTenant();
    await newMetaModel(tenant.id, 'sine', 1, new Uint8Array(4));
    await newMetaModel(tenant.id, 'sine', 2, new Uint8Array(4));
    await newMetaModel(other.id, 'sine', 1, new Uint8Array(4));

    const duplicate = await newMetaModel(tenant.id, 'sine', 1, new Uint8Array(4)).catch((error: unknown) => error);

    expect(isUniqueViolation(duplicate)).toBe(true);
  });

  it('let an alias point only at a version of its own name, and move it', async () => {
    const tenant = await newTenant();
    const v1 = await newMetaModel(tenant.id, 'sine', 1, new Uint8Array(4));
    const v2 = await newMetaModel(tenant.id, 'sine', 2, new Uint8Array(4));
    const cosine = await newMetaModel(tenant.id, 'cosine', 1, new Uint8Array(4));
    const key = { tenantId: tenant.id, name: 'sine', alias: 'production' };

    await db.prisma.metaModelAlias.create({ data: { ...key, metaModelId: v1.id } });
    await db.prisma.metaModelAlias.update({ where: { tenantId_name_alias: key }, data: { metaModelId: v2.id } });
    const moved = await db.prisma.metaModelAlias.findUniqueOrThrow({ where: { tenantId_name_alias: key } });
    expect(moved.metaModelId).toBe(v2.id);

    const crossName = await db.prisma.metaModelAlias
      .update({ where: { tenantId_name_alias: key }, data: { metaModelId: cosine.id } })
      .catch((error: unknown) => error);
    expect(crossName).toBeInstanceOf(Prisma.PrismaClientKnownRequestError);
    expect((crossName as Prisma.PrismaClientKnownRequestError).code).toBe('P2003');
  });

  it('keep one metrics row per (job, iteration) and one idempotency key per tenant', async () => {
    const tenant = await newTenant();
    const other = await newTenant();
    const job = await newJob(tenant.id, { idempotencyKey: 'key-1', requestHash: 'abc' });
    await newJob(other.id, { idempotencyKey: 'key-1', requestHash: 'abc' });
    await newJob(tenant.id); // no key: any number of these

    const metric = { jobId: job.id, iteration: 10, trainLoss: 0.4, valLoss: 0.5 };
    await db.prisma.jobMetric.create({ data: metric });
    const again = await db.prisma.jobMetric.create({ data: metric }).catch((error: unknown) => error);
    const sameKey = await newJob(tenant.id, { idempotencyKey: 'key-1' }).catch((error: unknown) => error);

    expect(isUniqueViolation(again)).toBe(true);
    expect(isUniqueViolation(sameKey)).toBe(true);
  });

  it('refuse to delete a job whose meta-model still exists', async () => {
    const tenant = await newTenant();
    const model = await newMetaModel(tenant.id, 'sine', 1, new Uint8Array(4));
    const deleted = await db.prisma.metaTrainJob.delete({ where: { id: model.jobId } }).catch((error: unknown) => error);
    expect(deleted).toBeInstanceOf(Prisma.PrismaClientKnownRequestError);
    expect(await db.prisma.metaTrainJob.count({ where: { id: model.jobId } })).toBe(1);
  });
});

describe('tasks and adapted heads', () => {
  it('keep versioned heads per task and remove everything with the tenant', async () => {
    const tenant = await newTenant();
    const model = await newMetaModel(tenant.id, 'sine', 1, new Uint8Array(4));
    const task = await db.prisma.task.create({
      data: { tenantId: tenant.id, metaModelId: model.id, kind: 'regression', inputDim: 1 },
    });
    const head = {
      taskId: task.id,
      params: new Uint8Array(new Float32Array([1.5, -2.25]).buffer),
      supportLossBefore: 3.2,
      supportLossAfter: 0.4,
      supportLossTrace: [3.2, 0.9, 0.4],
      bestStep: 2,
      diverged: true,
      steps: 10,
      innerLr: 0.01,
      durationMs: 4.2,
    };
    await db.prisma.adaptedHead.create({ data: { ...head, version: 1 } });
    await db.prisma.adaptedHead.create({ data: { ...head, version: 2 } });
    const duplicate = await db.prisma.adaptedHead.create({ data: { ...head, version: 2 } }).catch((e: unknown) => e);
    expect(isUniqueViolation(duplicate)).toBe(true);
    expect(task.headVersion).toBeNull();

    await db.prisma.tenant.delete({ where: { id: tenant.id } });

    expect(await db.prisma.adaptedHead.count({ where: { taskId: task.id } })).toBe(0);
    expect(await db.prisma.metaModel.count({ where: { id: model.id } })).toBe(0);
    expect(await db.prisma.metaTrainJob.count({ where: { tenantId: tenant.id } })).toBe(0);
  });
});
