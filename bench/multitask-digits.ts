/**
 * Multitask (hard parameter sharing) on `digits`, the issue's target: `npx tsx bench/multitask-digits.ts [options]`.
 * Trains the 196-128-64 body with one softmax over the 24 training classes (digits' task pool), then
 * fits a fresh head on each episode's support set (multinomial logistic regression, Newton) and
 * reports 5-way 1-shot and 5-shot accuracy over `--episodes` episodes of the held-out classes, with
 * a 95% confidence interval (1.96 standard errors of the per-episode accuracies). The reference: the
 * same method in plain PyTorch reached 75.2% / 89.1% on the test split (issue 13).
 *
 * Tuning uses `--split val` (validation classes, never the test ones); `--ridges a,b,...` then also
 * scores other ridges of the head (RIDGE_CLASSIFICATION is the engine's) on the same episodes.
 *
 * Options: --iterations N (default 2000), --batch-tasks N (pool draws per minibatch, each of
 * 5 x (1 + 15) = 80 examples; default 8), --lr X (Adam, default 0.001), --episodes N (default 600),
 * --split val|test (default test), --seed N (default 0), --backend B (default wasm), --out PATH
 * (default bench/results/multitask-digits.json; with --split val: ...-val.json).
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend, tf, type BackendPreference } from '../src/meta/backend.js';
import { digits } from '../src/meta/families/index.js';
import { MetaLearner, metaTrain, modelSpec, packEpisodes, Rng, type ParamArrays } from '../src/meta/index.js';
import { embed, toTensors } from '../src/meta/model.js';
import { logisticHead, RIDGE_CLASSIFICATION } from '../src/meta/linear-head.js';
import type { Episode, Split } from '../src/meta/types.js';

const { values: args } = parseArgs({
  options: {
    iterations: { type: 'string', default: '2000' },
    'batch-tasks': { type: 'string', default: '8' },
    lr: { type: 'string', default: '0.001' },
    episodes: { type: 'string', default: '600' },
    split: { type: 'string', default: 'test' },
    seed: { type: 'string', default: '0' },
    backend: { type: 'string', default: 'wasm' },
    ridges: { type: 'string', default: '' },
    out: { type: 'string' },
  },
});

const WAYS = 5;
const QUERY_SHOTS = 15;
const HIDDEN = [128, 64];
const REFERENCE = { method: 'plain PyTorch: MLP 196-128-64 pretrained on the 24 training classes, linear head fitted on the support set (issue 13)', shot1: 0.752, shot5: 0.891 };
const round = (x: number, digits = 4) => Number(x.toFixed(digits));

/** Mean and 95% confidence half-width of per-episode accuracies. */
function summary(accuracies: number[]) {
  const mean = accuracies.reduce((a, b) => a + b, 0) / accuracies.length;
  const sd = Math.sqrt(accuracies.reduce((a, x) => a + (x - mean) ** 2, 0) / (accuracies.length - 1));
  return { accuracy: round(mean), ci95: round((1.96 * sd) / Math.sqrt(accuracies.length)) };
}

/** Per-episode accuracy through the engine's own path: MetaLearner.evaluate (adapt, then the query set). */
function engineAccuracies(learner: MetaLearner, episodes: Episode[]): number[] {
  return episodes.map((episode) => learner.evaluate(packEpisodes([episode])).accuracy!);
}

/** Per-episode accuracy of a head fitted with another ridge (tuning on the validation split only). */
function ridgeAccuracies(params: ParamArrays, episodes: Episode[], ridge: number): number[] {
  const spec = modelSpec('classification', 196, { hidden: HIDDEN }, WAYS);
  return episodes.map((episode) => {
    const [hs, hq] = tf.tidy(() => {
      const theta = toTensors(params);
      return [episode.support, episode.query].map((ex) => embed(spec, theta, tf.tensor2d(ex.x, [ex.n, 196])).dataSync() as Float32Array);
    });
    const dim = HIDDEN[HIDDEN.length - 1];
    const head = logisticHead(hs, episode.support.y, episode.support.n, dim, WAYS, ridge);
    let hits = 0;
    for (let i = 0; i < episode.query.n; i++) {
      const logits = Array.from({ length: WAYS }, (_, c) => hq.subarray(i * dim, (i + 1) * dim).reduce((s, h, d) => s + h * head.weight[d * WAYS + c], head.bias[c]));
      if (logits.indexOf(Math.max(...logits)) === episode.query.y[i]) hits++;
    }
    return hits / episode.query.n;
  });
}

async function main(): Promise<void> {
  const iterations = Number(args.iterations);
  const batchTasks = Number(args['batch-tasks']);
  const lr = Number(args.lr);
  const count = Number(args.episodes);
  const seed = Number(args.seed);
  const split = args.split as Split;
  if (split !== 'val' && split !== 'test') throw new Error(`--split must be val or test, got ${split}`);
  const backend = await initBackend(args.backend as BackendPreference);
  const family = digits({}, { ways: WAYS });
  const started = performance.now();
  let params: ParamArrays | undefined;
  const curve: unknown[] = [];
  // Episode shape 1 + 15 per class: each pool draw is 80 examples; validation is 5-way 1-shot.
  const hyper = { iterations, metaBatchSize: batchTasks, shots: 1, queryShots: QUERY_SHOTS, metaLr: lr, evalEvery: Math.max(1, Math.floor(iterations / 10)), checkpointEvery: iterations, evalTasks: 100, seed };
  for await (const event of metaTrain({ algorithm: 'multitask', model: { hidden: HIDDEN, activation: 'relu' }, families: family, hyper })) {
    if (event.type === 'metrics') {
      console.log(`iter ${String(event.iteration).padStart(6)}  train loss ${event.trainLoss.toFixed(4)}  val 1-shot acc ${(100 * event.valAccuracy!).toFixed(1)}%`);
      curve.push({ iteration: event.iteration, trainLoss: round(event.trainLoss), valAccuracy1Shot: round(event.valAccuracy!) });
    }
    if (event.type === 'result') params = event.model.params;
  }
  const trainSeconds = (performance.now() - started) / 1000;
  const spec = modelSpec('classification', 196, { hidden: HIDDEN }, WAYS);
  const learner = new MetaLearner({ algorithm: 'multitask', spec, inner: { steps: 1, lr: 0.01 }, metaLr: lr }, params!);
  const results: Record<string, unknown> = {};
  for (const shots of [1, 5]) {
    const rng = new Rng(777 + shots);
    const episodes = Array.from({ length: count }, () => family.sampleEpisode(rng, split, { shots, queryShots: QUERY_SHOTS, ways: WAYS }));
    const engine = summary(engineAccuracies(learner, episodes));
    console.log(`${WAYS}-way ${shots}-shot on ${count} ${split} episodes: ${(100 * engine.accuracy).toFixed(1)}% +- ${(100 * engine.ci95).toFixed(1)}`);
    const byRidge: Record<string, unknown> = {};
    for (const ridge of args.ridges ? args.ridges.split(',').map(Number) : []) {
      if (split === 'test') throw new Error('--ridges tunes on the validation split only (--split val)');
      byRidge[String(ridge)] = summary(ridgeAccuracies(params!, episodes, ridge));
      console.log(`  ridge ${ridge}: ${JSON.stringify(byRidge[String(ridge)])}`);
    }
    results[`shot${shots}`] = { ...engine, ...(Object.keys(byRidge).length > 0 ? { byRidge } : {}) };
  }
  learner.dispose();
  const out = args.out ?? `bench/results/multitask-digits${split === 'val' ? '-val' : ''}.json`;
  const result = {
    setting: {
      family: 'digits (24 training / 8 validation / 8 test classes: 10 digits x 4 rotations)',
      architecture: `196-${HIDDEN.join('-')} relu body; training head: one softmax over the 24 training classes`,
      minibatch: `${batchTasks} draws of ${WAYS * (1 + QUERY_SHOTS)} examples (${batchTasks * WAYS * (1 + QUERY_SHOTS)} per Adam step)`,
      adaptation: `multinomial logistic regression head on the support set's body features, Newton's method, ridge ${RIDGE_CLASSIFICATION}`,
      episodes: `${WAYS}-way, ${QUERY_SHOTS} query examples per class, ${count} episodes per shot setting, split '${split}'`,
      ci95: '1.96 x standard deviation of per-episode accuracy / sqrt(episodes)',
    },
    options: { iterations, batchTasks, lr, episodes: count, split, seed, backend },
    reference: REFERENCE,
    ...results,
    curve,
    trainSeconds: round(trainSeconds, 1),
    date: new Date().toISOString().slice(0, 10),
  };
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`wrote ${out} (training ${trainSeconds.toFixed(0)} s)`);
}

await main();
