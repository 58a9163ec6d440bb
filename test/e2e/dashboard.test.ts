/**
 * The dashboard in a real browser: the service runs as `node src/main.ts --role all` (API and worker)
 * on a private database, headless Debian Chromium (playwright-core) opens /, signs in with an API
 * key, and sees a running job's progress advance and its loss curves drawn, live from the event
 * stream read with fetch (the key travels in the Authorization header, never in a URL); adapts a
 * task; evaluates a meta-model against its baselines, drawn with confidence bars; and shows each
 * model's architecture (an MLP's widths, a conv body's channels and image shape); and follows a study
 * live to its leaderboard (trials by rung with validation intervals, the winner, the decision). Screenshots go to
 * test/artifacts/. Without /usr/bin/chromium it is skipped saying why, and fails under CI=true
 * (test/support/requirements.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDb } from '../../src/db/client.js';
import { createApiKey } from '../../src/db/repositories/api-keys.js';
import type { StudyView } from '../../src/db/repositories/studies.js';
import { createPrivateDatabase, type PrivateDatabase } from '../integration/support/private-database.js';
import { freePort, removePrefix, SHARED_REDIS_URL, uniquePrefix } from '../integration/support/services.js';
import { describeNeeding, requirement } from '../support/requirements.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(import.meta.dirname, '..', 'artifacts');
// Flags that work in this container: no sandbox (root), no GPU, and nothing that calls out to the network.
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let database: PrivateDatabase;
let service: ChildProcess | undefined;
let output = '';
let base: string;
let key: string;
let context: BrowserContext | undefined;
let profile: string;
let page: Page;
const prefix = uniquePrefix('dashboard');

async function waitForReady(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (service?.exitCode !== null) throw new Error(`the service exited:\n${output}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`the service was not ready after ${timeoutMs} ms:\n${output}`);
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as T;
}

beforeAll(async () => {
  database = await createPrivateDatabase('dashboard');
  const db = createDb(database.url);
  key = (await createApiKey(db, 'dashboard-e2e')).key;
  await db.close();

  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  service = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--role', 'all'], {
    env: {
      ...process.env, DATABASE_URL: database.url, REDIS_URL: SHARED_REDIS_URL, QUEUE_PREFIX: prefix, PORT: String(port),
      HOST: '127.0.0.1', TFJS_BACKEND: 'cpu', LOG_LEVEL: 'warn', RATE_LIMIT_MAX: '0',
      // The study scheduler moves a study on after each rung: a short pass keeps the study test short.
      STUDY_INTERVAL_MS: '200',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  service.stdout?.on('data', (chunk) => (output += chunk));
  service.stderr?.on('data', (chunk) => (output += chunk));
  await waitForReady(base);
}, 120_000);

afterAll(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  if (service && service.exitCode === null) {
    const exited = new Promise((resolve) => service!.once('exit', resolve));
    service.kill('SIGTERM');
    await exited;
  }
  await database?.drop();
  await removePrefix(SHARED_REDIS_URL, prefix);
}, 60_000);

const progressOf = (page: Page, jobId: string) =>
  page.locator(`#jobs tr[data-job-id="${jobId}"] .progress`).getAttribute('data-iteration').then(Number);

describeNeeding(requirement('chromium', existsSync(CHROMIUM) ? undefined : `${CHROMIUM} not found`), 'dashboard in headless Chromium', () => {
  it('follows a running job live: progress advances and the loss curves are drawn', async () => {
    const family = await call<{ id: string }>('POST', '/task-families', { name: 'sine', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid' } });
    const job = await call<{ id: string }>('POST', '/meta-train', {
      name: 'sine-dashboard', familyIds: [family.id], algorithm: 'maml', model: { hidden: [16, 16] },
      hyper: { iterations: 100_000, metaBatchSize: 4, shots: 5, queryShots: 5, evalEvery: 50, checkpointEvery: 5_000, seed: 1 },
    });

    profile = mkdtempSync(join(tmpdir(), 'fastadapt-chromium-'));
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1200, height: 1100 } });
    page = context.pages()[0] ?? (await context.newPage());
    const requests: { url: string; authorization?: string }[] = [];
    page.on('request', (request) => requests.push({ url: request.url(), authorization: request.headers().authorization }));
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));

    await page.goto(`${base}/`);
    await page.fill('#login-key', key);
    await page.click('#login-form button[type=submit]');

    const row = page.locator(`#jobs tr[data-job-id="${job.id}"]`);
    await row.locator('.status.running').waitFor({ timeout: 30_000 });
    const first = await progressOf(page, job.id);
    // Advances between two list refreshes (every 5 s) only if the event stream is feeding it.
    await expect.poll(() => progressOf(page, job.id), { timeout: 4_000, interval: 100 }).toBeGreaterThan(first + 50);

    // The running job is selected: its curves get a point per evaluation, several by now.
    const valLoss = page.locator('#loss-chart path[data-series="valLoss"]');
    await expect.poll(async () => Number(await valLoss.getAttribute('data-points', { timeout: 1_000 }).catch(() => 0)), { timeout: 30_000, interval: 200 }).toBeGreaterThanOrEqual(3);
    const path = await page.locator('#loss-chart path[data-series="trainLoss"]').getAttribute('d');
    expect(path).toMatch(/^M[\d.]+,[\d.]+(L[\d.]+,[\d.]+){2,}/);
    // The best evaluation so far (what hyper.keepBest stores) is marked, and validation has its intervals.
    await expect.poll(() => page.locator('#loss-chart g[data-series="best"] circle').count(), { timeout: 10_000, interval: 200 }).toBe(1);
    expect(await page.locator('#loss-chart g[data-ci="valLoss"] line').count()).toBeGreaterThanOrEqual(9);
    await expect.poll(() => page.locator('#job-summary').textContent(), { timeout: 10_000, interval: 200 }).toMatch(/best at iteration \d+: val loss [\d.]+ ± [\d.]+/);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });

    // Cancelled through the API: the browser hears it on the stream.
    await call('POST', `/meta-train/${job.id}/cancel`);
    await row.locator('.status.cancelled').waitFor({ timeout: 30_000 });

    // The key went only into headers and sessionStorage.
    const stream = requests.filter((r) => r.url.endsWith(`/meta-train/${job.id}/events`));
    expect(stream.length).toBeGreaterThan(0);
    expect(stream.every((r) => r.authorization === `Bearer ${key}`)).toBe(true);
    expect(requests.some((r) => r.url.includes(key))).toBe(false);
    // A string, evaluated in the page (this file is type-checked without the DOM library).
    expect(await page.evaluate('({ session: sessionStorage.length, local: localStorage.length })')).toEqual({ session: 1, local: 0 });
    expect(errors).toEqual([]);
  });

  it('adapts a new task from a meta-model, draws support points, unadapted and adapted predictions, and downloads the model', async () => {
    const family = await call<{ id: string }>('POST', '/task-families', { name: 'sine', kind: 'regression', inputDim: 1, generator: { type: 'sinusoid' } });
    const job = await call<{ id: string }>('POST', '/meta-train', {
      name: 'sine-quick', familyIds: [family.id], algorithm: 'maml', model: { hidden: [16, 16] },
      hyper: { iterations: 40, metaBatchSize: 4, shots: 5, queryShots: 5, evalEvery: 10, checkpointEvery: 10, seed: 3 },
    });
    await page.locator(`#jobs tr[data-job-id="${job.id}"] .status.succeeded`).waitFor({ timeout: 30_000 });
    // The meta-model list refreshes every 5 s.
    await page.locator('#models tbody tr').first().waitFor({ timeout: 15_000 });
    await page.click('#try-sample');
    await page.click('#try-form button[type=submit]');
    await page.locator('#try-status', { hasText: 'support loss' }).waitFor({ timeout: 30_000 });
    for (const series of ['unadapted', 'adapted']) {
      expect(await page.locator(`#try-chart path[data-series="${series}"]`).getAttribute('data-points')).toBe('101');
    }
    expect(await page.locator('#try-chart g[data-series="support"] circle').count()).toBe(10);
    expect(await page.locator('#try-chart').isVisible()).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-task.png'), fullPage: true });

    // The adapted model downloads as a file, fetched with the key (not in a URL) under the API's name.
    for (const [format, extension] of [['onnx', '.onnx'], ['tfjs', '.tfjs.json']]) {
      const [file] = await Promise.all([page.waitForEvent('download'), page.click(`#try-download button[data-format="${format}"]`)]);
      expect(file.suggestedFilename()).toMatch(new RegExp(`^task-[0-9a-f-]+-v2${extension.replaceAll('.', '\\.')}$`));
      const bytes = readFileSync(await file.path());
      if (format === 'onnx') expect(bytes.length).toBeGreaterThan(16 * 16 * 4);
      else expect(JSON.parse(bytes.toString('utf8'))).toMatchObject({ format: 'layers-model' });
    }
  });

  it("evaluates the meta-model from its view: loss against shots per method, each point with its confidence bar", async () => {
    await page.locator('#models tbody tr').first().click();
    await page.locator('#evaluation-status', { hasText: 'No evaluation of this meta-model yet' }).waitFor({ timeout: 10_000 });
    await page.fill('#evaluation-shots', '5, 10');
    await page.fill('#evaluation-tasks', '10');
    await page.click('#evaluation-form button[type=submit]');
    await page.locator('#evaluation-status', { hasText: 'Evaluation succeeded: 10 held-out tasks' }).waitFor({ timeout: 60_000 });
    // MAML meta-trained with one inner step: the adapted line at 1 step, and the three baselines (no multitask model here).
    for (const series of ['adapted-1', 'unadapted', 'scratch', 'raw']) {
      expect(await page.locator(`#evaluation-chart path[data-series="${series}"]`).getAttribute('data-points')).toBe('2');
      // A bar per point: its vertical line and two caps.
      expect(await page.locator(`#evaluation-chart g[data-ci="${series}"] line`).count()).toBe(6);
    }
    const path = await page.locator('#evaluation-chart path[data-series="adapted-1"]').getAttribute('d');
    expect(path).toMatch(/^M[\d.]+,[\d.]+L[\d.]+,[\d.]+$/);
    // The chart draws what the API holds: its newest evaluation of this model, two rows per method.
    const modelId = await page.locator('#models tbody tr').first().getAttribute('data-meta-model-id');
    const { items } = await call<{ items: { rows: unknown[] }[] }>('GET', `/meta-models/${modelId}/evaluations`);
    expect(items[0].rows).toHaveLength(8);
    expect(await page.locator('#evaluation-chart').isVisible()).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-evaluation.png'), fullPage: true });
  });

  it("names each model's architecture: an MLP's widths, a conv body's channels and the images it reads", async () => {
    const digits = await call<{ id: string; inputShape: number[] }>('POST', '/task-families', { name: 'digits', kind: 'classification', inputDim: 196, nWay: 5, generator: { type: 'digits' } });
    expect(digits.inputShape).toEqual([14, 14, 1]);
    // No inputShape in the request: the conv body reads the family's 14x14x1 images.
    const job = await call<{ id: string }>('POST', '/meta-train', {
      name: 'digits-conv', familyIds: [digits.id], algorithm: 'protonet', model: { body: 'conv', channels: [4, 4] },
      hyper: { iterations: 2, metaBatchSize: 2, shots: 1, queryShots: 1, evalEvery: 2, checkpointEvery: 2, seed: 1 },
    });
    const row = page.locator(`#jobs tr[data-job-id="${job.id}"]`);
    await row.locator('.status.succeeded').waitFor({ timeout: 30_000 });
    expect(await row.locator('td.architecture').textContent()).toBe('conv 4-4 on 14x14x1');
    expect(await page.locator('#jobs td.architecture', { hasText: 'mlp 16-16' }).count()).toBe(2);

    const model = page.locator('#models tbody tr', { hasText: 'digits-conv' });
    await model.waitFor({ timeout: 15_000 });
    expect(await model.locator('td.architecture').textContent()).toBe('conv 4-4 on 14x14x1');
    await model.click();
    await page.locator('#evaluation-title', { hasText: '(protonet, conv 4-4 on 14x14x1)' }).waitFor({ timeout: 10_000 });
    expect(await page.locator('#try-model option', { hasText: 'digits-conv' }).textContent()).toBe('digits-conv@1 (protonet, conv 4-4 on 14x14x1, classification)');
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-architectures.png'), fullPage: true });
  });

  it("follows a study live to its leaderboard: trials by rung with validation intervals, the winner and the decision", async () => {
    const blobs = await call<{ id: string }>('POST', '/task-families', { name: 'blobs', kind: 'classification', inputDim: 2, nWay: 3, generator: { type: 'gaussian-blobs' } });
    const quick = { metaBatchSize: 4, queryShots: 4, evalEvery: 8 };
    // The service's one worker runs one job at a time: a long job ahead holds the study's trials
    // queued until the browser follows the study, so that the rest of it can only arrive live.
    const blocker = await call<{ id: string }>('POST', '/meta-train', {
      name: 'blocker', familyIds: [blobs.id], algorithm: 'protonet', model: { hidden: [16] }, hyper: { ...quick, iterations: 100_000, shots: 5, evalEvery: 5_000, checkpointEvery: 5_000 },
    });
    const created = await call<StudyView>('POST', '/studies', {
      name: 'blobs-study', familyIds: [blobs.id], model: { hidden: [16] }, shots: 5, promote: 'production', budget: { iterations: 96 },
      candidates: [{ algorithm: 'protonet', hyper: quick }, { algorithm: 'maml', hyper: { ...quick, innerLr: 0.4 } }],
    });
    const requests: { url: string; authorization?: string }[] = [];
    page.on('request', (request) => requests.push({ url: request.url(), authorization: request.headers().authorization }));
    // The list refreshes every 5 s; the study is selected while it runs, so what follows comes from its stream.
    const row = page.locator(`#studies tr[data-study-id="${created.id}"]`);
    await row.waitFor({ timeout: 10_000 });
    await row.click();
    await page.locator('#study-title', { hasText: 'blobs-study' }).waitFor({ timeout: 5_000 });
    expect(await page.locator('#study-rungs table[data-rung="0"] tr[data-status="queued"]').count()).toBe(2);
    expect(await page.locator('#study-decision').textContent()).toContain('No decision yet');
    await expect.poll(() => requests.some((r) => r.url.endsWith(`/studies/${created.id}/events`)), { timeout: 5_000, interval: 100 }).toBe(true);
    await call('POST', `/meta-train/${blocker.id}/cancel`);
    await page.locator('#study-decision .verdict').waitFor({ timeout: 60_000 });
    const study = await call<StudyView>('GET', `/studies/${created.id}`);
    expect(study.status).toBe('succeeded');
    const decision = study.decision!;

    // Every trial in its rung's table, with its status and its validation accuracy's mean ± ci95 in percent.
    expect(new Set(study.trials.map((t) => t.rung)).size).toBe(study.settings.rungs.length);
    for (const trial of study.trials) {
      const tr = page.locator(`#study-rungs table[data-rung="${trial.rung}"] tr[data-candidate="${trial.candidate}"]`);
      expect(await tr.getAttribute('data-status')).toBe(trial.status);
      const text = (await tr.locator('td.validation').textContent())!;
      const [, mean, ci95] = /^([\d.]+)% ± ([\d.]+)$/.exec(text) ?? [];
      expect(Number(mean), text).toBeCloseTo(100 * trial.validation!.mean, 1);
      expect(Number(ci95), text).toBeCloseTo(100 * trial.validation!.ci95, 1);
      expect(await tr.locator('td').nth(1).textContent()).toBe(trial.algorithm);
    }
    for (const [rung, plan] of study.settings.rungs.entries()) {
      expect(await page.locator(`#study-rungs table[data-rung="${rung}"] caption`).textContent()).toContain(`to ${plan.iterations} iterations`);
    }
    // The winner: one highlighted row, in the top rung, the study's winner.
    const top = study.settings.rungs.length - 1;
    const winner = page.locator('#study-rungs tr.winner');
    expect(await winner.count()).toBe(1);
    const winning = study.trials.find((t) => t.status === 'winner')!;
    expect(winning).toMatchObject({ rung: top, jobId: study.winner!.jobId });
    expect(await page.locator(`#study-rungs table[data-rung="${top}"] tr.winner`).getAttribute('data-candidate')).toBe(String(winning.candidate));

    // The decision: promoted or not, its reason (naming any baseline that tied or won), each baseline's outcome.
    const verdict = (await page.locator('#study-decision .verdict').textContent())!;
    expect(verdict).toContain(decision.promoted ? `Promoted: blobs-study@production` : 'Not promoted.');
    expect(verdict).toContain(decision.reason);
    for (const b of decision.baselines.filter((b) => b.outcome !== 'beaten')) expect(verdict).toContain(b.method);
    expect(await page.locator('#study-decision tr[data-outcome]').evaluateAll((rows) => rows.map((r) => [r.children[0].textContent, r.getAttribute('data-outcome')])))
      .toEqual(decision.baselines.map((b) => [b.method, b.outcome]));
    expect(await row.locator('td').nth(6).textContent()).toBe(decision.promoted ? 'promoted to production' : 'not promoted');
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-study.png'), fullPage: true });

    // Live: the study's stream was read with the key in the Authorization header, never in a URL.
    const stream = requests.filter((r) => r.url.endsWith(`/studies/${created.id}/events`));
    expect(stream.length).toBeGreaterThan(0);
    expect(stream.every((r) => r.authorization === `Bearer ${key}`)).toBe(true);
    expect(requests.some((r) => r.url.includes(key))).toBe(false);

    // The winner's evaluation (the study's, on the test split) opens in the evaluation panel, raw baseline included.
    await page.locator('#study-decision button').click();
    await page.locator('#evaluation-title', { hasText: 'blobs-study@' }).waitFor({ timeout: 10_000 });
    await page.locator('#evaluation-status', { hasText: 'Evaluation succeeded: 100 held-out tasks' }).waitFor({ timeout: 10_000 });
    expect(await page.locator('#evaluation-chart path[data-series="raw"]').getAttribute('data-points')).toBe('1');
  });
});
