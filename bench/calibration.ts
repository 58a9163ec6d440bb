/**
 * Knowing when not to answer (issue 25): `npm run bench:calibration [-- options]` writes
 * bench/results/calibration.json, and the figures bench/results/calibration-sinusoid.svg (a 10-shot
 * sinusoid task's 90% band) and calibration-digits.svg (a 5-way 5-shot digits task's 90% sets).
 *
 * Per row: meta-train a model with the engine (no service), calibrate it exactly as the end of
 * meta-training does (calibrationSettingsFor: CALIBRATION_TASKS validation tasks per number of
 * shots), then evaluate it on `--tasks` held-out (test split) tasks per number of shots as an
 * evaluation does (evaluateMetaModel, its own inner steps): empirical coverage at nominal 0.9 and
 * mean interval width or set size; ECE before and after the temperature; novelty AUROC (outside
 * classes against the task's own, or inputs beyond the family's range). Beside it a non-adaptive
 * baseline on the same test tasks: one global interval (split conformal on |y - median y| of the
 * validation targets, whatever the task) or, for classification, the set a task-blind score gives
 * (all classes: labels are exchangeable across episodes).
 *
 * Rows: sinusoid (MAML 1-40-40-1, 5 and 10 shots), linear (MAML 1-40-40-1, 5 and 10 shots),
 * digits-mlp (ProtoNets 196-128-64, 5-way 1 and 5 shots), digits-conv (ProtoNets Conv-4, 5-way 1
 * and 5 shots). Options: --rows a,b (default all), --tasks N (600), --iterations-<row> N, --seed N (0),
 * --backend wasm|cpu (wasm), --out PATH. Rows already in the output file and not run again are kept,
 * so rows can be run separately (on a shared machine one at a time fits in a few minutes).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend, type BackendPreference } from '../src/meta/backend.js';
import { conformalQuantile, predictionSet, sortScores, temperatureScale } from '../src/meta/conformal.js';
import { digits, linear, sinusoid } from '../src/meta/families/index.js';
import {
  adapt,
  calibrationForShots,
  calibrationSettingsFor,
  coverageMetrics,
  evaluateMetaModel,
  fitCalibration,
  halfWidth,
  metaTrain,
  noveltyAuroc,
  predict,
  quantileFor,
  taskParams,
  type AlgorithmName,
  type Calibration,
  type EvaluationRow,
  type MetaModel,
  type ModelConfig,
  type TaskFamily,
} from '../src/meta/index.js';
import { scoreTasks } from '../src/meta/calibration.js';
import { Rng } from '../src/meta/rng.js';

const { values: opts } = parseArgs({
  options: {
    rows: { type: 'string', default: 'sinusoid,linear,digits-mlp,digits-conv' },
    tasks: { type: 'string', default: '600' },
    seed: { type: 'string', default: '0' },
    backend: { type: 'string', default: 'wasm' },
    'iterations-sinusoid': { type: 'string', default: '3000' },
    'iterations-linear': { type: 'string', default: '3000' },
    'iterations-digits-mlp': { type: 'string', default: '2000' },
    'iterations-digits-conv': { type: 'string', default: '300' },
    out: { type: 'string', default: 'bench/results/calibration.json' },
  },
});

/**
 * Validation and test pools of the generated families: a generated family holds its held-out tasks
 * in fixed pools (default 100 each), and 600 test tasks must be 600 different tasks; the calibration
 * then draws its CALIBRATION_TASKS from a pool as large.
 */
const HELD_OUT_TASKS = 2000;

interface RowPlan {
  family: TaskFamily;
  algorithm: AlgorithmName;
  model: ModelConfig;
  hyper: { shots: number; queryShots: number; metaBatchSize: number; innerSteps: number; innerLr: number; metaLr: number };
  evaluate: number[];
  describe: string;
  /**
   * Evaluate through the calibration measures alone, 50 tasks at a time (scoreTasks), rather than
   * evaluateMetaModel, whose adapted row adapts all its tasks in one batch: 600 Conv-4 tasks at once
   * exhaust the wasm backend's memory.
   */
  chunked?: boolean;
}

/** The rows evaluateMetaModel gives a calibrated meta-model's own steps, computed 50 tasks at a time. */
function chunkedRows(model: MetaModel, family: TaskFamily, settings: { shots: number[]; tasks: number; queryShots: number; seed: number; steps: number[] }): EvaluationRow[] {
  const ways = model.spec.kind === 'classification' ? model.spec.outputDim : undefined;
  return settings.shots.map((shots) => {
    const rng = new Rng(settings.seed + shots);
    const episodes = Array.from({ length: settings.tasks }, () => family.sampleEpisode(rng, 'test', { shots, queryShots: settings.queryShots, ways }));
    const scored = scoreTasks(model, episodes);
    const auroc = noveltyAuroc(model, family, model.calibration!, shots, { scored, rng: new Rng(settings.seed + 31 * shots + 1), queryShots: settings.queryShots });
    const accuracy = mean(scored.map((t) => mean(t.probabilities.map((p, i) => (p.indexOf(Math.max(...p)) === t.query.y[i] ? 1 : 0)))));
    const loss = mean(scored.map((t) => mean(t.probabilities.map((p, i) => -Math.log(Math.max(p[t.query.y[i]], 1.2e-7))))));
    return { method: 'adapted', shots, steps: 0, loss: { mean: loss, ci95: 0 }, accuracy: { mean: accuracy, ci95: 0 }, diverged: 0, ...coverageMetrics(model.calibration!, shots, scored), ...(auroc === undefined ? {} : { noveltyAuroc: auroc }) };
  });
}

const PLANS: Record<string, RowPlan> = {
  sinusoid: { family: sinusoid({ heldOutTasks: HELD_OUT_TASKS }), algorithm: 'maml', model: { hidden: [40, 40] }, hyper: { shots: 10, queryShots: 10, metaBatchSize: 8, innerSteps: 1, innerLr: 0.01, metaLr: 0.003 }, evaluate: [5, 10], describe: 'MAML 1-40-40-1 relu, one inner step of 0.01, trained at 10 shots' },
  linear: { family: linear({ heldOutTasks: HELD_OUT_TASKS }), algorithm: 'maml', model: { hidden: [40, 40] }, hyper: { shots: 10, queryShots: 10, metaBatchSize: 8, innerSteps: 1, innerLr: 0.01, metaLr: 0.003 }, evaluate: [5, 10], describe: 'MAML 1-40-40-1 relu, one inner step of 0.01, trained at 10 shots' },
  'digits-mlp': { family: digits({}, { ways: 5 }), algorithm: 'protonet', model: { hidden: [128, 64] }, hyper: { shots: 1, queryShots: 15, metaBatchSize: 4, innerSteps: 1, innerLr: 0.01, metaLr: 0.001 }, evaluate: [1, 5], describe: 'ProtoNets 196-128-64 relu, 5-way, trained at 1 shot' },
  'digits-conv': { family: digits({}, { ways: 5 }), algorithm: 'protonet', model: { body: 'conv', inputShape: [14, 14, 1], channels: [64, 64, 64, 64] }, hyper: { shots: 1, queryShots: 15, metaBatchSize: 2, innerSteps: 1, innerLr: 0.01, metaLr: 0.001 }, evaluate: [1, 5], describe: 'ProtoNets Conv-4 (64 channels) on 14x14x1, 5-way, trained at 1 shot', chunked: true },
};

const round = (x: number, digits = 4) => Number(x.toFixed(digits));
const mean = (v: readonly number[]) => v.reduce((a, b) => a + b, 0) / v.length;

/** The non-adaptive baseline's coverage and width (regression) or set size (classification) on the test tasks. */
function baselineOf(model: MetaModel, family: TaskFamily, shots: number, calibration: Calibration, tasks: number, queryShots: number, seed: number) {
  const ways = model.spec.kind === 'classification' ? model.spec.outputDim : undefined;
  if (ways !== undefined) return { method: 'task-blind set (all classes)', coverage: 1, setSize: ways };
  // Validation targets (the calibration's own tasks, drawn the same way), then the test tasks of evaluateMetaModel.
  const valRng = new Rng(seed + 1);
  const valY = Array.from({ length: calibration.tasks }, () => Array.from(family.sampleEpisode(valRng, 'val', { shots, queryShots }).query.y)).flat();
  const centre = [...valY].sort((a, b) => a - b)[Math.floor(valY.length / 2)];
  const q = conformalQuantile(sortScores(valY.map((y) => Math.abs(y - centre))), 0.9);
  const rng = new Rng(seed + shots);
  let covered = 0;
  let total = 0;
  for (let t = 0; t < tasks; t++) {
    for (const y of family.sampleEpisode(rng, 'test', { shots, queryShots }).query.y) {
      if (Math.abs(y - centre) <= q) covered++;
      total++;
    }
  }
  return { method: 'one global interval (median of validation targets +- their conformal 0.9 quantile)', coverage: round(covered / total), width: round(2 * q) };
}

async function runRow(name: string, plan: RowPlan, iterations: number, tasks: number, seed: number) {
  const started = performance.now();
  let model: MetaModel | undefined;
  const hyper = { ...plan.hyper, iterations, evalEvery: iterations, checkpointEvery: iterations, evalTasks: 50, seed };
  for await (const event of metaTrain({ algorithm: plan.algorithm, model: plan.model, families: plan.family, hyper })) {
    if (event.type === 'result') model = event.model;
  }
  const trainSeconds = (performance.now() - started) / 1000;
  console.log(`${name}: meta-trained ${iterations} iterations in ${trainSeconds.toFixed(0)} s`);
  const settings = { ...calibrationSettingsFor({ shots: plan.hyper.shots, queryShots: plan.hyper.queryShots, seed }), shots: [...new Set([...calibrationSettingsFor({ shots: plan.hyper.shots, queryShots: plan.hyper.queryShots, seed }).shots, ...plan.evaluate])] };
  const calibrationStarted = performance.now();
  const calibration = fitCalibration(model!, plan.family, settings);
  const calibrationSeconds = (performance.now() - calibrationStarted) / 1000;
  console.log(`${name}: calibrated ${settings.shots.join(', ')} shots on ${calibration.tasks} validation tasks each in ${calibrationSeconds.toFixed(1)} s`);
  const calibrated: MetaModel = { ...model!, calibration };
  const evaluationStarted = performance.now();
  const evaluation = { shots: plan.evaluate, steps: [plan.hyper.innerSteps], tasks, queryShots: plan.hyper.queryShots, seed: seed + 1000, baselines: [] };
  const rows: EvaluationRow[] = plan.chunked ? chunkedRows(calibrated, plan.family, evaluation) : evaluateMetaModel(calibrated, plan.family, evaluation);
  const evaluationSeconds = (performance.now() - evaluationStarted) / 1000;
  const byShots = plan.evaluate.map((shots) => {
    const row = rows.find((r) => r.shots === shots)!;
    const used = calibrationForShots(calibration, shots);
    const out = {
      shots,
      tasks,
      coverage: round(row.coverage!),
      ...(row.width === undefined ? {} : { width: round(row.width) }),
      ...(row.setSize === undefined ? {} : { setSize: round(row.setSize) }),
      ...(row.ece ? { ece: { before: round(row.ece.before), after: round(row.ece.after) } } : {}),
      ...(row.noveltyAuroc === undefined ? {} : { noveltyAuroc: round(row.noveltyAuroc) }),
      score: used.score,
      temperature: round(used.temperature),
      queryLoss: round(row.loss.mean),
      ...(row.accuracy ? { accuracy: round(row.accuracy.mean) } : {}),
      baseline: baselineOf(calibrated, plan.family, shots, calibration, tasks, plan.hyper.queryShots, seed + 1000),
    };
    console.log(`  ${shots} shots: ${JSON.stringify(out)}`);
    return out;
  });
  return { row: { family: plan.family.name, algorithm: plan.algorithm, model: plan.describe, iterations, trainSeconds: round(trainSeconds, 1), calibrationSeconds: round(calibrationSeconds, 1), evaluationSeconds: round(evaluationSeconds, 1), calibrationTasks: calibration.tasks, noveltyThreshold: round(calibration.noveltyThreshold), byShots }, model: calibrated };
}

/** A sinusoid task's 90% band around the adapted curve (SVG), from the calibrated sinusoid model. */
function sinusoidFigure(model: MetaModel, seed: number): string {
  const rng = new Rng(seed + 4242);
  const [amplitude, phase] = [3.2, 0.8];
  const support = Array.from({ length: 10 }, () => rng.uniform(-5, 5));
  const examples = { x: Float32Array.from(support), y: Float32Array.from(support, (x) => amplitude * Math.sin(x - phase)), n: 10 };
  const adapted = adapt(model, examples);
  const grid = Array.from({ length: 201 }, (_, i) => -5 + i / 20);
  const prediction = predict(model.spec, taskParams(model, adapted.params), Float32Array.from(grid));
  if (prediction.kind !== 'regression') throw new Error('not regression');
  const c = calibrationForShots(model.calibration!, 10);
  const h = halfWidth(c, quantileFor(model.calibration!, c, 0.9), examples.y);
  const [W, H] = [640, 320];
  const sx = (x: number) => ((x + 5) / 10) * (W - 40) + 20;
  const sy = (y: number) => H / 2 + 10 - (y / 6) * (H / 2 - 30);
  const line = (ys: number[]) => grid.map((x, i) => `${i === 0 ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(ys[i]).toFixed(1)}`).join(' ');
  const upper = prediction.values.map((v) => v + h);
  const lower = prediction.values.map((v) => v - h);
  const band = `${line(upper)} ${grid.map((x, i) => `L${sx(grid[grid.length - 1 - i]).toFixed(1)},${sy(lower[grid.length - 1 - i]).toFixed(1)}`).join(' ')} Z`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<path d="${band}" fill="#9ecae1" opacity="0.6"/>`,
    `<path d="${line(grid.map((x) => amplitude * Math.sin(x - phase)))}" fill="none" stroke="#333" stroke-dasharray="4 3"/>`,
    `<path d="${line(prediction.values)}" fill="none" stroke="#08519c" stroke-width="2"/>`,
    ...support.map((x, i) => `<circle cx="${sx(x).toFixed(1)}" cy="${sy(examples.y[i]).toFixed(1)}" r="4" fill="#d94801"/>`),
    `<text x="20" y="16">Sinusoid task, 10 shots: adapted curve (blue), true curve (dashed), support set (orange)</text>`,
    `<text x="20" y="32">90% conformal band from the validation tasks (${c.score} residual, half-width ${h.toFixed(2)})</text>`,
    '</svg>',
  ].join('\n');
}

/**
 * A 5-way 5-shot digits test task (SVG): each query image with its 90% prediction set (the task's
 * classes numbered 0-4, shown by their first support image) and its true class, from the calibrated
 * digits model.
 */
function digitsFigure(model: MetaModel, family: TaskFamily, seed: number): string {
  const episode = family.sampleEpisode(new Rng(seed + 99), 'test', { shots: 5, queryShots: 2, ways: 5 });
  const adapted = adapt(model, episode.support);
  const prediction = predict(model.spec, taskParams(model, adapted.params), episode.query.x);
  if (prediction.kind !== 'classification') throw new Error('not classification');
  const c = calibrationForShots(model.calibration!, 5);
  const q = quantileFor(model.calibration!, c, 0.9);
  const sets = prediction.probabilities.map((p) => predictionSet(temperatureScale(p, c.temperature), q));
  const side = 14;
  const cell = 3;
  const image = (x: Float32Array, row: number, left: number, top: number) => {
    const out: string[] = [];
    for (let i = 0; i < side * side; i++) {
      const v = x[row * side * side + i];
      if (v > 0.05) out.push(`<rect x="${left + (i % side) * cell}" y="${top + Math.floor(i / side) * cell}" width="${cell}" height="${cell}" fill="rgb(0,0,0)" fill-opacity="${v.toFixed(2)}"/>`);
    }
    return out.join('');
  };
  const parts: string[] = [];
  // The classes: the first support image of each (support rows are class-major: 5 per class).
  parts.push('<text x="10" y="16">classes of the task (one support image each)</text>');
  for (let k = 0; k < 5; k++) {
    parts.push(image(episode.support.x, k * 5, 10 + k * 60, 26), `<text x="${10 + k * 60 + 46}" y="${26 + 30}">${k}</text>`);
  }
  parts.push('<text x="10" y="98">query images: 90% prediction set {labels}, true label after the bar (red: not covered)</text>');
  for (let i = 0; i < episode.query.n; i++) {
    const [col, row] = [i % 5, Math.floor(i / 5)];
    const [left, top] = [10 + col * 120, 108 + row * 62];
    const truth = episode.query.y[i];
    const covered = sets[i].includes(truth);
    parts.push(image(episode.query.x, i, left, top), `<text x="${left + 46}" y="${top + 26}" fill="${covered ? '#08519c' : '#cb181d'}">{${sets[i].join(',')}} | ${truth}</text>`);
  }
  return [`<svg xmlns="http://www.w3.org/2000/svg" width="620" height="240" viewBox="0 0 620 240" font-family="sans-serif" font-size="12">`, '<rect width="620" height="240" fill="white"/>', ...parts, '</svg>'].join('\n');
}

async function main(): Promise<void> {
  const backend = await initBackend(opts.backend as BackendPreference);
  const tasks = Number(opts.tasks);
  const seed = Number(opts.seed);
  const loadAtStart = loadavg().map((v) => round(v, 2));
  const existing = existsSync(opts.out!) ? (JSON.parse(readFileSync(opts.out!, 'utf8')) as { rows?: Record<string, unknown> }).rows ?? {} : {};
  const rows: Record<string, unknown> = { ...existing };
  let figure: string | undefined;
  let digitsSvg: string | undefined;
  for (const name of opts.rows!.split(',')) {
    const plan = PLANS[name];
    if (!plan) throw new Error(`unknown row ${name}; rows: ${Object.keys(PLANS).join(', ')}`);
    const { row, model } = await runRow(name, plan, Number(opts[`iterations-${name}` as keyof typeof opts]), tasks, seed);
    rows[name] = { ...row, backend, loadAverage: loadavg().map((v) => round(v, 2)), date: new Date().toISOString() };
    if (name === 'sinusoid') figure = sinusoidFigure(model, seed);
    if (name === 'digits-mlp') digitsSvg = digitsFigure(model, plan.family, seed);
  }
  const result = {
    setting: {
      nominalCoverage: 0.9,
      calibration: 'fitted as meta-training does (src/meta/calibration.ts): validation tasks per number of shots, split conformal quantile ceil((n+1) 0.9)-th, temperature by NLL; novelty threshold at the 95th percentile of validation in-task novelty',
      evaluation: 'evaluateMetaModel on test-split tasks, the meta-model\'s own inner steps; coverage pooled over every query example of every task',
      targets: { coverage: [0.88, 0.93], eceAfterAtMost: 0.03, noveltyAurocDigitsAtLeast: 0.8 },
      machine: 'shared 2-core machine, busy with other engineers\' work (see loadAverage per row)',
    },
    options: { tasks, seed },
    loadAverageAtStart: loadAtStart,
    rows,
  };
  mkdirSync(dirname(opts.out!), { recursive: true });
  writeFileSync(opts.out!, `${JSON.stringify(result, null, 2)}\n`);
  if (figure) writeFileSync(opts.out!.replace(/\.json$/, '-sinusoid.svg'), `${figure}\n`);
  if (digitsSvg) writeFileSync(opts.out!.replace(/\.json$/, '-digits.svg'), `${digitsSvg}\n`);
  console.log(`wrote ${opts.out}; mean coverage ${round(mean(Object.values(rows).flatMap((r) => (r as { byShots: { coverage: number }[] }).byShots.map((b) => b.coverage))))}`);
}

await main();
