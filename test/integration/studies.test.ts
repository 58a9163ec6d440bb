/**
 * Studies end to end (issue 23 item 3), on the real Postgres and Redis with the real handlers: two
 * worker pools and two schedulers in this process (so rung decisions race and must happen once),
 * a tenant job quota of 2 (so a trial waits for a slot).
 * - A three-candidate study on 2-d blobs runs rungs (3 trials to 24 iterations, the two best by
 *   validation on to 72, the better of them there the winner), the dropped trial stops at its rung and
 *   keeps its records, the promoted ones resume from their checkpoints (the winner's meta-model byte
 *   for byte that of one uninterrupted 72-iteration job), the winner is evaluated on the test split,
 *   and the decision agrees with the evaluation's intervals.
 * - Promotion is refused when a baseline ties or wins (two iterations of MAML against blobs) and
 *   performed when the winner beats every baseline (MAML on sinusoids against ridge, scratch, unadapted).
 * - A default study takes the first 14 candidates of the default space, its first rung at a ninth of its top.
 * - Cancel, idempotency, the job quota, bad input, another tenant's study.
 * - Restart: with no scheduler running and Redis wiped mid-study, new workers and a new scheduler
 *   finish the study from what Postgres holds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { StudyScheduler } from '../../src/jobs/study-scheduler.js';
import { DEFAULT_HYPER } from '../../src/meta/hyper.js';
import { defaultSearchSpace, DEFAULT_STUDY_ITERATIONS } from '../../src/meta/study.js';
import type { StudyView } from '../../src/db/repositories/studies.js';
import type { EvaluationView } from '../../src/db/repositories/evaluations.js';
import { newTenant, SINE, startApi, startWorker, type TestApi } from './support/api-app.js';
import { removePrefix } from './support/services.js';
import { readEventStream } from './support/sse.js';
import { waitUntil } from './support/training-fixtures.js';

const LIMIT = 2;
const logger = pino({ level: 'silent' });
let api: TestApi;
let baseUrl: string;
let workers: Awaited<ReturnType<typeof startWorker>>[] = [];
let schedulers: StudyScheduler[] = [];
let tenant: Awaited<ReturnType<typeof newTenant>>;
const tenants: string[] = [];

type Job = { id: string; status: string; studyId: string | null; progress: { iteration: number; iterations: number }; metaModelId: string | null };
type Problem = { status: number; errors?: { path: string; message: string }[] };

const startSchedulers = () => {
  schedulers = [0, 1].map(() => new StudyScheduler({ db: api.db, queues: api.queues, logger, maxActiveJobsPerTenant: LIMIT, intervalMs: 100 }).start());
};
const stopSchedulers = async () => {
  await Promise.all(schedulers.splice(0).map((s) => s.stop()));
};
const startWorkers = async () => {
  workers = [await startWorker(api), await startWorker(api)];
};
const stopWorkers = async () => {
  await Promise.all(workers.splice(0).map((w) => w.close()));
};

async function fresh() {
  const t = await newTenant(api.db);
  tenants.push(t.tenantId);
  return t;
}

const post = (url: string, payload: unknown, headers: Record<string, string> = tenant.headers) => api.app.inject({ method: 'POST', url, headers, payload: payload as Record<string, unknown> });
const get = (url: string, headers: Record<string, string> = tenant.headers) => api.app.inject({ method: 'GET', url, headers });

async function family(payload: Record<string, unknown>, headers = tenant.headers): Promise<string> {
  const created = await post('/task-families', payload, headers);
  expect(created.statusCode, created.body).toBe(201);
  return (created.json() as { id: string }).id;
}

async function ended(id: string, headers = tenant.headers, timeoutMs = 120_000): Promise<StudyView> {
  return waitUntil(async () => {
    const study = (await get(`/studies/${id}`, headers)).json() as StudyView;
    return study.status === 'running' ? undefined : study;
  }, `study ${id} to end`, timeoutMs, 100);
}

const blobs = (nWay: number) => ({ name: `blobs${nWay}`, kind: 'classification', inputDim: 2, nWay, generator: { type: 'gaussian-blobs' } });
const QUICK = { metaBatchSize: 4, queryShots: 4, evalEvery: 8 };

beforeAll(async () => {
  api = await startApi('studies', { MAX_CONCURRENT_JOBS_PER_TENANT: String(LIMIT) });
  baseUrl = await api.app.listen({ host: '127.0.0.1', port: 0 });
  await startWorkers();
  startSchedulers();
  tenant = await fresh();
}, 60_000);

afterAll(async () => {
  await stopSchedulers();
  await stopWorkers();
  // A study a failed test left running must not be moved on by later runs' schedulers.
  await api?.db.prisma.study.updateMany({ where: { tenantId: { in: tenants }, status: 'running' }, data: { status: 'cancelled', finishedAt: new Date() } });
  await api?.close();
});

describe('a study', () => {
  it('runs rungs on validation, resumes the promoted trial from its checkpoint, evaluates the winner and decides', async () => {
    const familyId = await family(blobs(3));
    const body = {
      name: 'blobs-study',
      familyIds: [familyId],
      model: { hidden: [16] },
      shots: 5,
      candidates: [
        { algorithm: 'protonet', hyper: QUICK },
        { algorithm: 'maml', hyper: { ...QUICK, innerLr: 0.4 } },
        { algorithm: 'multitask', hyper: { ...QUICK, tasks: 50 } },
      ],
      budget: { iterations: 168 },
      promote: 'production',
    };
    const created = await post('/studies', body);
    expect(created.statusCode, created.body).toBe(202);
    const queued = created.json() as StudyView;
    expect(created.headers.location).toBe(`/studies/${queued.id}`);
    expect(queued.settings).toMatchObject({ kind: 'classification', shots: 5, eta: 3, rungs: [{ trials: 3, iterations: 24 }, { trials: 2, iterations: 72 }], cost: 168, promote: 'production' });
    // The quota of 2 jobs: two trials start, the third waits for a slot.
    expect(queued.trials.map((t) => t.status)).toEqual(['queued', 'queued', 'pending']);

    // A finished trial is a version of the study's name, but `latest` waits for the winner: read while
    // the study still runs (checked after the read), it is not there.
    await waitUntil(async () => ((await get(`/meta-train?studyId=${queued.id}&status=succeeded`)).json() as { items: Job[] }).items.length > 0 || undefined, 'a trial to finish', 60_000, 20);
    const latestMidway = (await get('/meta-models/blobs-study@latest')).statusCode;
    if (((await get(`/studies/${queued.id}`)).json() as StudyView).status === 'running') expect(latestMidway).toBe(404);

    const study = await ended(queued.id);
    expect(study, JSON.stringify(study)).toMatchObject({ status: 'succeeded', error: null, rung: 1 });
    const first = study.trials.filter((t) => t.rung === 0);
    expect(first).toHaveLength(3);
    for (const trial of first) expect(trial.validation).toMatchObject({ metric: 'accuracy', mean: expect.any(Number), ci95: expect.any(Number) });
    // The two best by validation accuracy (ties: the lower candidate) are promoted; the other is dropped.
    const byValidation = (trials: typeof first) => [...trials].sort((a, b) => b.validation!.mean - a.validation!.mean || a.candidate - b.candidate);
    const finalists = byValidation(first).slice(0, 2);
    expect(first.map((t) => t.status)).toEqual(first.map((t) => (finalists.includes(t) ? 'promoted' : 'dropped')));
    // Both finalists train to the top; the better there by validation is the winner.
    const top = study.trials.filter((t) => t.rung === 1);
    expect(top.map((t) => t.candidate).sort()).toEqual(finalists.map((t) => t.candidate).sort());
    const [winner, runnerUp] = byValidation(top);
    expect([winner.status, runnerUp.status, winner.iterations, runnerUp.iterations]).toEqual(['winner', 'dropped', 72, 72]);
    expect(study.winner).toMatchObject({ jobId: winner.jobId, algorithm: body.candidates[winner.candidate].algorithm });

    // Trials are ordinary jobs: five of them (the rung decision happened once though two schedulers ran).
    const jobs = (await get(`/meta-train?studyId=${study.id}`)).json() as { items: Job[] };
    expect(jobs.items).toHaveLength(5);
    for (const job of jobs.items) expect(job).toMatchObject({ status: 'succeeded', studyId: study.id });
    for (const trial of first) expect(jobs.items.find((j) => j.id === trial.jobId)!.progress).toEqual({ iteration: 24, iterations: 24 });
    for (const trial of top) expect(jobs.items.find((j) => j.id === trial.jobId)!.progress).toEqual({ iteration: 72, iterations: 72 });
    // Only the finalists' meta-models are calibrated (the winner is one of them), not the dropped trials'.
    const calibrationOf = async (jobId: string) => ((await get(`/meta-models/${jobs.items.find((j) => j.id === jobId)!.metaModelId}`)).json() as { calibration: unknown }).calibration;
    for (const trial of top) expect(await calibrationOf(trial.jobId!)).not.toBeNull();
    for (const trial of first) expect(await calibrationOf(trial.jobId!)).toBeNull();
    // The winner resumed: its learning curve starts with its first rung's, byte for byte.
    const curve = async (id: string) => ((await get(`/meta-train/${id}/metrics`)).json() as { items: { iteration: number; valLoss: number }[] }).items;
    const before = await curve(first.find((t) => t.candidate === winner.candidate)!.jobId!);
    const after = await curve(winner.jobId!);
    expect(after.map((p) => p.iteration)).toEqual([8, 16, 24, 32, 40, 48, 56, 64, 72]);
    expect(after.slice(0, 3).map((p) => p.valLoss)).toEqual(before.map((p) => p.valLoss));
    // ... and from its checkpoint: its meta-model is the one uninterrupted training would give.
    const candidate = body.candidates[winner.candidate];
    const straight = await post('/meta-train', { name: 'straight', familyIds: [familyId], algorithm: candidate.algorithm, model: body.model, hyper: { ...candidate.hyper, shots: 5, iterations: 72 } });
    expect(straight.statusCode, straight.body).toBe(202);
    const straightJob = await waitUntil(async () => {
      const job = (await get(`/meta-train/${(straight.json() as Job).id}`)).json() as Job;
      return job.status === 'succeeded' ? job : undefined;
    }, 'the uninterrupted job', 60_000, 100);
    const params = async (id: string) => Buffer.from((await api.db.prisma.metaModel.findUniqueOrThrow({ where: { id }, select: { params: true } })).params);
    expect((await params(study.winner!.metaModelId)).equals(await params(straightJob.metaModelId!))).toBe(true);
    // Finished trials keep no checkpoint once the study ended.
    expect(await api.db.prisma.checkpoint.count({ where: { job: { studyId: study.id } } })).toBe(0);

    // The winner's evaluation on the test split, and a decision that agrees with its intervals.
    const evaluation = (await get(`/meta-models/${study.winner!.metaModelId}/evaluations/${study.evaluationId}`)).json() as EvaluationView;
    expect(evaluation).toMatchObject({ status: 'succeeded', settings: { shots: [5] } });
    // The study's own multitask trial (cut short at its rung) is not the multitask baseline; the
    // tenant has no other multitask model of these families, so there is none.
    expect(evaluation.multitaskMetaModelId ?? null).toBeNull();
    expect(evaluation.rows.some((r) => r.method === 'multitask')).toBe(false);
    const decision = study.decision!;
    expect(decision.baselines.length).toBeGreaterThan(0);
    const adapted = evaluation.rows.find((r) => r.method === 'adapted')!.accuracy!;
    expect(decision.winner).toEqual({ mean: adapted.mean, ci95: adapted.ci95 });
    for (const baseline of decision.baselines) {
      const row = evaluation.rows.find((r) => r.method === baseline.method)!.accuracy!;
      expect([baseline.mean, baseline.ci95]).toEqual([row.mean, row.ci95]);
      const apart = adapted.mean - adapted.ci95 > row.mean + row.ci95;
      expect(baseline.outcome === 'beaten').toBe(apart);
    }
    expect(decision.promoted).toBe(decision.baselines.every((b) => b.outcome === 'beaten'));
    // `latest` is the winner: the trials after it (the runner-up may end later) did not move it.
    expect(((await get('/meta-models/blobs-study@latest')).json() as { id: string }).id).toBe(study.winner!.metaModelId);
    const alias = await get('/meta-models/blobs-study@production');
    if (decision.promoted) expect((alias.json() as { id: string }).id).toBe(study.winner!.metaModelId);
    else expect(alias.statusCode).toBe(404);
    // The list shows it.
    expect(((await get('/studies')).json() as { items: StudyView[] }).items.map((s) => s.id)).toContain(study.id);
  }, 180_000);

  it('refuses to promote a winner that a baseline ties or beats, and says which; its event stream follows it to the end', async () => {
    const t = await fresh();
    const familyId = await family(blobs(2), t.headers);
    const created = await post('/studies', { name: 'too-short', familyIds: [familyId], model: { hidden: [16] }, shots: 5, candidates: [{ algorithm: 'maml', hyper: QUICK }], budget: { iterations: 2 }, promote: 'production' }, t.headers);
    expect(created.statusCode, created.body).toBe(202);
    const id = (created.json() as StudyView).id;
    const live = await readEventStream(`${baseUrl}/studies/${id}/events`, t.headers, 60_000);
    expect(live.contentType).toContain('text/event-stream');
    const states = live.events.map((e) => e.data as unknown as StudyView);
    expect(live.events.every((e) => e.event === 'study')).toBe(true);
    expect(states.every((s) => s.id === id)).toBe(true);
    expect(states.slice(0, -1).every((s) => s.status === 'running')).toBe(true);
    // Each event is a change; the last is the end, with the decision.
    expect(new Set(states.map((s) => JSON.stringify(s))).size).toBe(states.length);
    const study = await ended(id, t.headers);
    expect(states[states.length - 1]).toEqual(study);
    expect(study.status).toBe('succeeded');
    // An ended study's stream is its final state, at once.
    expect((await readEventStream(`${baseUrl}/studies/${id}/events`, t.headers, 10_000)).events.map((e) => e.data)).toEqual([study]);
    const decision = study.decision!;
    expect(decision.promoted).toBe(false);
    const unbeaten = decision.baselines.filter((b) => b.outcome !== 'beaten');
    expect(unbeaten.length).toBeGreaterThan(0);
    for (const b of unbeaten) expect(decision.reason).toContain(`${b.method} ${b.outcome === 'won' ? 'wins' : 'ties'}`);
    expect((await get('/meta-models/too-short@production', t.headers)).statusCode).toBe(404);
  }, 120_000);

  it('promotes a winner that beats every baseline beyond the intervals', async () => {
    const t = await fresh();
    const familyId = await family(SINE, t.headers);
    const maml = { algorithm: 'maml', hyper: { metaBatchSize: 8, innerLr: 0.01, metaLr: 0.003, evalEvery: 250, seed: 1 } };
    const created = await post('/studies', { name: 'sine-study', familyIds: [familyId], model: { hidden: [40, 40] }, shots: 10, candidates: [maml], budget: { iterations: 1000 }, promote: 'production' }, t.headers);
    expect(created.statusCode, created.body).toBe(202);
    const study = await ended((created.json() as StudyView).id, t.headers);
    expect(study.decision, JSON.stringify(study.decision)).toMatchObject({ promoted: true, alias: 'production', metric: 'loss' });
    expect(study.decision!.baselines.map((b) => b.outcome)).toEqual(study.decision!.baselines.map(() => 'beaten'));
    expect(study.decision!.baselines.map((b) => b.method)).toEqual(expect.arrayContaining(['unadapted', 'scratch']));
    expect(((await get('/meta-models/sine-study@production', t.headers)).json() as { id: string }).id).toBe(study.winner!.metaModelId);
  }, 120_000);
});

describe('cancel, idempotency and quota', () => {
  it('the same key and body give the same study; another body 422; cancel stops its trials and keeps its records', async () => {
    const t = await fresh();
    const familyId = await family(SINE, t.headers);
    const body = { name: 'long', familyIds: [familyId], candidates: [{ algorithm: 'maml' }, { algorithm: 'reptile' }], budget: { iterations: 200_000 } };
    const headers = { ...t.headers, 'idempotency-key': 'long-study' };
    const first = await post('/studies', body, headers);
    expect(first.statusCode, first.body).toBe(202);
    const id = (first.json() as StudyView).id;
    const again = await post('/studies', body, headers);
    expect(again.statusCode).toBe(200);
    expect((again.json() as StudyView).id).toBe(id);
    const other = await post('/studies', { ...body, name: 'other' }, headers);
    expect(other.statusCode).toBe(422);
    expect(await api.db.prisma.study.count({ where: { tenantId: t.tenantId } })).toBe(1);

    // Both trials hold the tenant's two job slots: a job or another study is refused.
    const job = await post('/meta-train', { familyIds: [familyId], algorithm: 'maml' }, t.headers);
    expect(job.statusCode).toBe(429);
    const second = await post('/studies', { ...body, name: 'second' }, t.headers);
    expect(second.statusCode).toBe(429);
    expect(second.json()).toMatchObject({ limit: LIMIT, active: LIMIT });

    await waitUntil(async () => ((await get(`/studies/${id}`, t.headers)).json() as StudyView).trials.some((tr) => tr.status === 'running') || undefined, 'a trial to run', 30_000, 50);
    const cancelled = await post(`/studies/${id}/cancel`, {}, t.headers);
    expect(cancelled.statusCode, cancelled.body).toBe(202);
    expect((cancelled.json() as StudyView).status).toBe('cancelled');
    const jobs = await waitUntil(async () => {
      const items = ((await get(`/meta-train?studyId=${id}`, t.headers)).json() as { items: Job[] }).items;
      return items.every((j) => j.status === 'cancelled') ? items : undefined;
    }, 'the trials to end cancelled', 30_000, 50);
    expect(jobs).toHaveLength(2);
    expect((await post(`/studies/${id}/cancel`, {}, t.headers)).statusCode).toBe(409);
    // No scheduler starts anything for it any more.
    await new Promise((r) => setTimeout(r, 500));
    expect(await api.db.prisma.metaTrainJob.count({ where: { studyId: id } })).toBe(2);
    expect(((await get(`/studies/${id}`, t.headers)).json() as StudyView).trials.map((tr) => tr.status)).toEqual(['cancelled', 'cancelled']);
  }, 60_000);
});

describe('a default study', () => {
  it('tries the first 14 candidates of the default space (each algorithm plain, then its grid spread), from a ninth of the top rung', async () => {
    const t = await fresh();
    const familyId = await family(SINE, t.headers);
    const created = await post('/studies', { name: 'default', familyIds: [familyId], model: { hidden: [16] } }, t.headers);
    expect(created.statusCode, created.body).toBe(202);
    const study = created.json() as StudyView;
    const space = defaultSearchSpace('regression').slice(0, 14);
    expect(study.settings.budget).toEqual({ iterations: DEFAULT_STUDY_ITERATIONS, trials: 14 });
    expect(study.settings.rungs.map((r) => r.trials)).toEqual([14, 4, 2]);
    const top = study.settings.rungs[2].iterations;
    expect(top).toBeGreaterThanOrEqual(DEFAULT_HYPER.iterations);
    expect(study.settings.rungs[0].iterations).toBe(Math.round(top / 9));
    expect(study.trials.map((tr) => [tr.algorithm, tr.hyper.innerLr, tr.hyper.innerSteps, tr.hyper.zeroHead])).toEqual(
      space.map((c) => [c.algorithm, c.hyper.innerLr ?? DEFAULT_HYPER.innerLr, c.hyper.innerSteps ?? DEFAULT_HYPER.innerSteps, c.hyper.zeroHead ?? false]),
    );
    expect((await post(`/studies/${study.id}/cancel`, {}, t.headers)).statusCode).toBe(202);
    await waitUntil(async () => {
      const items = ((await get(`/meta-train?studyId=${study.id}`, t.headers)).json() as { items: Job[] }).items;
      return items.every((j) => ['cancelled', 'succeeded', 'failed'].includes(j.status)) || undefined;
    }, 'the started trials to end', 30_000, 50);
  }, 60_000);
});

describe('bad input and tenancy', () => {
  it('answers 400 naming the field and stores nothing; another tenant\'s study is 404', async () => {
    const t = await fresh();
    const sine = await family(SINE, t.headers);
    const blobs3 = await family(blobs(3), t.headers);
    const foreign = await family(SINE);
    const cases: [Record<string, unknown>, string][] = [
      [{ familyIds: ['no-such-family'] }, '/familyIds/0'],
      [{ familyIds: [foreign] }, '/familyIds/0'],
      [{ familyIds: [sine, blobs3] }, '/familyIds/1'],
      [{ candidates: [{ algorithm: 'no-such' }] }, '/candidates/0/algorithm'],
      [{ candidates: [{ algorithm: 'maml' }, { algorithm: 'protonet' }] }, '/candidates/1/algorithm'],
      [{ candidates: [{ algorithm: 'maml', hyper: { iterations: 10 } }] }, '/candidates/0/hyper/iterations'],
      [{ candidates: [{ algorithm: 'maml', hyper: { innerLr: -1 } }] }, '/candidates/0/hyper/innerLr'],
      [{ budget: { iterations: 0 } }, '/budget/iterations'],
      [{ budget: { iterations: 5 } }, '/budget/iterations'],
      [{ budget: { trials: 0 } }, '/budget/trials'],
      [{ promote: 'latest' }, '/promote'],
      [{ shots: 0 }, '/shots'],
    ];
    for (const [change, path] of cases) {
      const answer = await post('/studies', { name: 'bad', familyIds: [sine], ...change }, t.headers);
      expect(answer.statusCode, `${JSON.stringify(change)}: ${answer.body}`).toBe(400);
      expect(answer.headers['content-type']).toContain('application/problem+json');
      expect((answer.json() as Problem).errors?.map((e) => e.path), JSON.stringify(change)).toContain(path);
    }
    expect(await api.db.prisma.study.count({ where: { tenantId: t.tenantId } })).toBe(0);
    expect(await api.db.prisma.metaTrainJob.count({ where: { tenantId: t.tenantId } })).toBe(0);

    const mine = await post('/studies', { name: 'mine', familyIds: [foreign], model: { hidden: [16] }, candidates: [{ algorithm: 'maml', hyper: { metaBatchSize: 2 } }], budget: { iterations: 3 } });
    expect(mine.statusCode, mine.body).toBe(202);
    const id = (mine.json() as StudyView).id;
    expect((await get(`/studies/${id}`, t.headers)).statusCode).toBe(404);
    expect((await post(`/studies/${id}/cancel`, {}, t.headers)).statusCode).toBe(404);
    expect(((await get('/studies', t.headers)).json() as { items: unknown[] }).items).toEqual([]);
    await ended(id);
  }, 60_000);
});

describe('restart', () => {
  it('with no scheduler and Redis wiped mid-study, new workers and a new scheduler finish it from Postgres', async () => {
    const t = await fresh();
    const familyId = await family(blobs(3), t.headers);
    await stopSchedulers();
    const created = await post('/studies', {
      name: 'restarted', familyIds: [familyId], model: { hidden: [16] }, shots: 5,
      candidates: [{ algorithm: 'protonet', hyper: QUICK }, { algorithm: 'anil', hyper: { ...QUICK, innerLr: 0.4 } }, { algorithm: 'fomaml', hyper: { ...QUICK, innerLr: 0.4 } }],
      budget: { iterations: 168 },
    }, t.headers);
    expect(created.statusCode, created.body).toBe(202);
    const id = (created.json() as StudyView).id;
    // The two started trials finish; with no scheduler the third waits.
    await waitUntil(async () => {
      const study = (await get(`/studies/${id}`, t.headers)).json() as StudyView;
      return study.trials.filter((tr) => tr.status === 'succeeded').length === 2 ? study : undefined;
    }, 'the first two trials', 60_000, 100);
    await stopWorkers();
    await removePrefix(api.redisUrl, api.prefix);

    // (No reconciler here: this file shares the test database, whose other files' queued jobs it would
    // take. Jobs lost by a wiped Redis mid-run are studies-kill.test.ts's, on a database of its own.)
    await startWorkers();
    startSchedulers();
    const study = await ended(id, t.headers);
    expect(study, JSON.stringify(study)).toMatchObject({ status: 'succeeded' });
    expect(study.trials.map((tr) => `${tr.rung}:${tr.status}`).sort()).toEqual(['0:dropped', '0:promoted', '0:promoted', '1:dropped', '1:winner']);
    expect(await api.db.prisma.metaTrainJob.count({ where: { studyId: id } })).toBe(5);
  }, 120_000);
});
