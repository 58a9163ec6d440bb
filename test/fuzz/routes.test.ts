/**
 * Property-based fuzzing of every route the app serves (enumerated from the app, so routes added
 * later are fuzzed too): FUZZ_RUNS (default 2000) hostile requests per route through `inject`, on the
 * real Postgres and Redis. Properties: never a 5xx, every error is problem+json, every request is
 * answered (no hang, no crash), and a rejected request changes nothing: after each batch in which no
 * request succeeded, every table's full contents (every tenant's rows; see support/stored-state.ts)
 * and the queues' job counts are exactly as before. At the end no NaN is stored in any float column.
 * The suite runs on a database of its own, so no other test's writes show up in those checksums.
 *
 * FUZZ_SEED reproduces a run (the seed is printed with any failure); FUZZ_RUNS changes the count.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/db/repositories/api-keys.js';
import { withTimeout } from '../../src/util/timeout.js';
import { storeMetaModel } from '../integration/support/adapt-fixtures.js';
import { newTenant, SINE, startApi, type TestApi } from '../integration/support/api-app.js';
import { createPrivateDatabase } from '../integration/support/private-database.js';
import { requestFor, type FuzzContext, type FuzzRequest } from './support/arbitraries.js';
import { fuzzRoutes, registeredRoutes } from './support/routes.js';
import { changedTables, storedState, storedStateQuery, type StoredState } from './support/stored-state.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** Requests in flight at once: the batch after which "nothing succeeded, so nothing changed" is checked. */
const BATCH = 16;
const ANSWER_WITHIN_MS = 15_000;

// Built before the tests are collected: one test per route the app has.
const database = await createPrivateDatabase('fuzz');
const api: TestApi = await startApi('fuzz', { DATABASE_URL: database.url, RATE_LIMIT_MAX: '1000000000', MAX_CONCURRENT_JOBS_PER_TENANT: '5' });
const routes = fuzzRoutes(api.app);
let context: FuzzContext;
let stateQuery: string;
const answered = new Map<string, number>();

interface Snapshot {
  tables: StoredState;
  queued: number[];
}

async function snapshot(): Promise<Snapshot> {
  const [tables, queued] = await Promise.all([storedState(api.db, stateQuery), Promise.all(Object.values(api.queues).map((q) => q.count()))]);
  return { tables, queued };
}

/** What changed between two snapshots, in words; '' when nothing did. */
function changes(before: Snapshot, after: Snapshot): string {
  const tables = changedTables(before.tables, after.tables);
  const queues = before.queued.some((n, i) => n !== after.queued[i]) ? [`queued jobs ${before.queued} -> ${after.queued}`] : [];
  return [...tables.map((t) => `table ${t}`), ...queues].join(', ');
}

beforeAll(async () => {
  const tenant = await newTenant(api.db);
  const tenantId = tenant.tenantId;
  const stranger = await newTenant(api.db);
  const familyOf = async (headers: Record<string, string>) =>
    ((await api.app.inject({ method: 'POST', url: '/task-families', headers, payload: SINE })).json() as { id: string }).id;
  const jobOf = async (headers: Record<string, string>, familyId: string) => {
    const job = (await api.app.inject({ method: 'POST', url: '/meta-train', headers, payload: { familyIds: [familyId], algorithm: 'maml', hyper: { iterations: 10 } } })).json() as { id: string };
    // Ended, so its event stream answers and closes instead of waiting for a worker.
    await api.app.inject({ method: 'POST', url: `/meta-train/${job.id}/cancel`, headers });
    return job.id;
  };
  const ownFamily = await familyOf(tenant.headers);
  // Uploads in progress, so part, commit and delete requests reach a family that takes them.
  const uploading = async (inputDim: number, kind = 'regression') =>
    ((await api.app.inject({ method: 'POST', url: '/task-families', headers: tenant.headers, payload: { name: 'rows', kind, inputDim, source: 'upload', ...(kind === 'classification' ? { nWay: 2 } : {}) } })).json() as { id: string }).id;
  const uploads = [await uploading(1), await uploading(1, 'classification'), await uploading(3)];
  const strangerFamily = await familyOf(stranger.headers);
  const revoked = await createApiKey(api.db, '', { tenantId });
  await api.db.prisma.apiKey.update({ where: { id: revoked.keyId }, data: { revokedAt: new Date() } });
  // Meta-models stored as a finished job would (no worker here): one with a head, ProtoNets' headless
  // one (its export answers 409), and a task never adapted (409 from predict and model export).
  const withHead = await storeMetaModel(api.db, tenantId, { hidden: [4] });
  const headless = await storeMetaModel(api.db, tenantId, { algorithm: 'protonet', kind: 'classification', inputDim: 2, nWay: 2, hidden: [4] });
  const task = (await api.app.inject({ method: 'POST', url: '/tasks', headers: tenant.headers, payload: { metaModelId: withHead.metaModelId } })).json() as { id: string };
  context = {
    authorization: tenant.headers.authorization,
    knownIds: [
      ownFamily, await jobOf(tenant.headers, ownFamily), strangerFamily, await jobOf(stranger.headers, strangerFamily), tenantId, revoked.keyId,
      withHead.metaModelId, headless.metaModelId, task.id, ...uploads,
    ],
  };
  stateQuery = await storedStateQuery(api.db);
});

afterAll(async () => {
  await api.close();
  await database.drop();
});

interface Failure {
  request: FuzzRequest;
  why: string;
}

async function send(request: FuzzRequest): Promise<{ status: number; contentType: string; body: string }> {
  const response = await withTimeout(api.app.inject({ ...request, method: request.method as 'GET' }), ANSWER_WITHIN_MS);
  return { status: response.statusCode, contentType: String(response.headers['content-type'] ?? ''), body: response.body };
}

function describeFailures(label: string, seed: number, failures: Failure[]): string {
  const shown = failures.slice(0, 5).map((f) => `  ${f.why}\n    ${JSON.stringify(f.request).slice(0, 400)}`).join('\n');
  return `${failures.length} of ${RUNS} requests to ${label} failed (FUZZ_SEED=${seed}):\n${shown}`;
}

describe(`fuzz: ${RUNS} hostile requests per route`, () => {
  it('enumerates every route the app serves, including the API contract', () => {
    const registered = registeredRoutes(api.app).map((r) => `${r.method} ${r.url}`);
    expect(routes.map((r) => `${r.method} ${r.url}`)).toEqual(registered);
    // A floor: if reading the route tree broke, these would go missing.
    expect(registered).toEqual(expect.arrayContaining([
      'POST /task-families', 'GET /task-families', 'GET /task-families/:id', 'POST /meta-train', 'GET /meta-train',
      'GET /meta-train/:id', 'POST /meta-train/:id/cancel', 'GET /meta-train/:id/metrics', 'GET /meta-train/:id/events',
      'GET /meta-models', 'GET /meta-models/:id', 'PUT /meta-models/:id/aliases/:alias', 'GET /healthz', 'GET /readyz',
    ]));
  });

  for (const [index, route] of routes.entries()) {
    const label = `${route.method} ${route.url}`;
    it(label, async () => {
      const seed = SEED + index;
      const requests = fc.sample(requestFor(route, context), { numRuns: RUNS, seed });
      const failures: Failure[] = [];
      let before = await snapshot();
      for (let i = 0; i < requests.length; i += BATCH) {
        const batch = requests.slice(i, i + BATCH);
        const answers = await Promise.all(batch.map(async (request) => {
          try {
            const answer = await send(request);
            if (answer.status >= 500) failures.push({ request, why: `${answer.status}: ${answer.body.slice(0, 300)}` });
            else if (answer.status >= 400 && !answer.contentType.startsWith('application/problem+json')) {
              failures.push({ request, why: `${answer.status} answered as ${answer.contentType || 'no content type'}` });
            }
            return answer.status;
          } catch (error) {
            failures.push({ request, why: `threw: ${(error as Error).message}` });
            return 0;
          }
        }));
        const after = await snapshot();
        const changed = changes(before, after);
        if (answers.every((status) => status >= 400) && changed !== '') {
          failures.push({ request: batch[0], why: `a batch of only rejected requests changed stored state (${changed}) (batch: ${JSON.stringify(batch).slice(0, 1500)})` });
        }
        before = after;
      }
      answered.set(label, requests.length);
      expect(failures.length, describeFailures(label, seed, failures)).toBe(0);
    }, 120_000);
  }

  it('fuzzed every route with the full count and stored no NaN', async () => {
    expect([...answered.keys()]).toEqual(routes.map((r) => `${r.method} ${r.url}`));
    expect([...answered.values()].every((n) => n === RUNS)).toBe(true);
    // The database is the suite's own: every row in it was written by the fuzzed requests or their setup.
    const floats = await api.db.prisma.$queryRawUnsafe<{ table_name: string; column_name: string; data_type: string; udt_name: string }[]>(
      `SELECT c.table_name, c.column_name, c.data_type, c.udt_name FROM information_schema.columns c
         WHERE c.table_schema = current_schema() AND (c.data_type IN ('double precision', 'real') OR c.udt_name IN ('_float4', '_float8'))`,
    );
    for (const f of floats) {
      const test = f.data_type === 'ARRAY' ? `'NaN' = ANY("${f.column_name}")` : `"${f.column_name}" = 'NaN'`;
      const [{ n }] = await api.db.prisma.$queryRawUnsafe<{ n: bigint }[]>(`SELECT count(*) AS n FROM "${f.table_name}" WHERE ${test}`);
      expect(Number(n), `${f.table_name}.${f.column_name}`).toBe(0);
    }
  });
});
