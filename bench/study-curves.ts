/**
 * Why a default study starts its first rung no earlier than a ninth of its top (STUDY_MAX_HALVINGS in
 * src/meta/study.ts): `npm run bench:study-curves` meta-trains a few candidates of the default space
 * to a study's top rung, each on its own, with a validation evaluation every 48 iterations (the
 * study's own validation: keepBest's, 100 tasks), and writes each learning curve and the ranking at
 * every evaluation to bench/results/studies-curves.json. A rung at an iteration ranks the trials by
 * these values; the candidates that end best are those that the 61-candidate default studies
 * (bench:studies before 2026-12-08: rungs of 14, 43 and 128 iterations before the top) dropped early.
 *
 * Families as bench:studies: sinusoid (MLP 40-40, 10 shots) and digits (MLP 64-64, 5-way 5-shot),
 * the default hyper-parameters otherwise, as a study's trials have them.
 * Options: --families sinusoid,digits-mlp; --iterations N (default 1152); --every N (default 48);
 * --out PATH.
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { initBackend } from '../src/meta/backend.js';
import { digits, sinusoid } from '../src/meta/families/index.js';
import type { AlgorithmName } from '../src/meta/index.js';
import { defaultSearchSpace, defaultTrials, DEFAULT_STUDY_ITERATIONS, studySchedule, type StudyCandidate } from '../src/meta/study.js';
import { metaTrain } from '../src/meta/train.js';
import type { ModelConfig } from '../src/meta/model.js';
import type { TaskFamily } from '../src/meta/types.js';

const { values: opts } = parseArgs({
  options: {
    families: { type: 'string', default: 'sinusoid,digits-mlp' },
    iterations: { type: 'string', default: '1152' },
    every: { type: 'string', default: '48' },
    out: { type: 'string', default: new URL('./results/studies-curves.json', import.meta.url).pathname },
  },
});
const ITERATIONS = Number(opts.iterations);
const EVERY = Number(opts.every);

const inner = (algorithm: AlgorithmName, innerLr: number, innerSteps: number): StudyCandidate => ({ algorithm, hyper: { innerLr, innerSteps, zeroHead: false } });

/** Per family: the candidates that ended best in bench:studies' singles or its top rungs, and those that led its early rungs. */
const CASES: Record<string, { family: () => TaskFamily; model: ModelConfig; shots: number; metric: 'loss' | 'accuracy'; candidates: StudyCandidate[] }> = {
  sinusoid: {
    family: () => sinusoid(),
    model: { hidden: [40, 40] },
    shots: 10,
    metric: 'loss',
    candidates: [{ algorithm: 'multitask', hyper: {} }, inner('metasgd', 0.01, 1), inner('metasgd', 0.01, 5), inner('metasgd', 0.1, 1), inner('maml', 0.01, 1), inner('maml', 0.01, 5), inner('anil', 0.01, 1)],
  },
  'digits-mlp': {
    family: () => digits({}, { ways: 5 }),
    model: { hidden: [64, 64] },
    shots: 5,
    metric: 'accuracy',
    candidates: [{ algorithm: 'multitask', hyper: {} }, { algorithm: 'protonet', hyper: {} }, inner('metasgd', 0.4, 5), inner('maml', 0.4, 5), inner('metasgd', 0.01, 1), inner('maml', 0.1, 1)],
  },
};

const label = (c: StudyCandidate) => (c.hyper.innerLr === undefined ? c.algorithm : `${c.algorithm} ${c.hyper.innerLr} x ${c.hyper.innerSteps}`);

async function main(): Promise<void> {
  await initBackend('wasm');
  const loadAtStart = loadavg();
  const families = [];
  for (const name of opts.families.split(',')) {
    const c = CASES[name];
    if (!c) throw new Error(`--families: unknown ${name} (known: ${Object.keys(CASES).join(', ')})`);
    const curves: { candidate: string; seconds: number; points: { iteration: number; validation: number }[] }[] = [];
    for (const candidate of c.candidates) {
      const start = performance.now();
      const points: { iteration: number; validation: number }[] = [];
      const hyper = { iterations: ITERATIONS, evalEvery: EVERY, checkpointEvery: ITERATIONS, shots: c.shots, ...candidate.hyper };
      for await (const event of metaTrain({ algorithm: candidate.algorithm, model: c.model, families: c.family(), hyper })) {
        if (event.type === 'metrics') points.push({ iteration: event.iteration, validation: Number((c.metric === 'accuracy' ? event.valAccuracy! : event.valLoss).toFixed(4)) });
      }
      curves.push({ candidate: label(candidate), seconds: Number(((performance.now() - start) / 1000).toFixed(1)), points });
      console.log(`${name} ${label(candidate)}: ${points.map((p) => `${p.iteration}:${p.validation}`).join(' ')}`);
    }
    // The ranking a rung at each evaluation would make, best first.
    const better = (a: number, b: number) => (c.metric === 'accuracy' ? b - a : a - b);
    const ranking = curves[0].points.map((_, k) => ({
      iteration: curves[0].points[k].iteration,
      bestFirst: [...curves].sort((a, b) => better(a.points[k].validation, b.points[k].validation)).map((curve) => curve.candidate),
    }));
    families.push({ family: name, metric: c.metric, model: c.model, shots: c.shots, curves, ranking });
  }
  const { rungs } = studySchedule(defaultTrials(defaultSearchSpace('classification'), DEFAULT_STUDY_ITERATIONS), DEFAULT_STUDY_ITERATIONS);
  const out = {
    setting: `each candidate meta-trained alone for ${ITERATIONS} iterations (a default study's top rung is ${rungs[rungs.length - 1].iterations}), validation every ${EVERY} on the job's 100 validation tasks (the values a study ranks trials by), seed 0, tfjs on wasm (digits Conv-4 not run)`,
    families,
    machine: { cpus: cpus().length, node: process.version, loadAverageAtStart: loadAtStart.map((v) => Number(v.toFixed(2))), loadAverageAtEnd: loadavg().map((v) => Number(v.toFixed(2))) },
    at: new Date().toISOString(),
  };
  writeFileSync(opts.out, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote ${opts.out}`);
}

await main();
