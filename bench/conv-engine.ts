/**
 * The conv engines side by side, in one run: ONNX Runtime (src/meta/ort/) against tfjs on the wasm
 * backend (the route conv bodies took before) and plain PyTorch on one thread
 * (bench/pytorch/digits_protonet.py: ProtoNets, and ANIL with --algorithm anil), on the digitsConv setting of bench:meta (CONV_DIGITS: Conv-4,
 * 14x14x1 digits, 5-way; ProtoNets one episode of 15 queries per class an iteration; ANIL a
 * meta-batch of 4 episodes of 5 queries per class, one inner step).
 *
 * Rows: ms per meta-training iteration (episode sampling included, as PyTorch's msPerIteration) for
 * ProtoNets at 1 and 5 shots, ANIL and zero-head ANIL at 1 shot, and FOMAML and Reptile at 1 shot
 * (ONNX Runtime against tfjs-wasm only); ms per prediction call of 1 and 16
 * images (adapt.ts predict, parameters as serving holds them); ms for the evaluation of a conv
 * meta-model (MetaLearner.evaluate on 20 5-shot episodes, adaptation included). Engine and PyTorch
 * run one after the other, each timed in `--rounds` interleaved rounds; a figure is the median.
 * The machine is shared: the load average is recorded at the start and end, and only ratios measured
 * in the same run are compared. Writes bench/results/conv-engine.json.
 *
 * npx tsx bench/conv-engine.ts [--iterations 60] [--tfjs-iterations 10] [--rounds 3] [--ms 400] [--pytorch auto|off|PYTHON] [--out PATH]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { predict } from '../src/meta/adapt.js';
import { initBackend, tf } from '../src/meta/backend.js';
import { digits, packEpisodes } from '../src/meta/families/index.js';
import { MetaLearner, initMetaParams, type LearnerConfig } from '../src/meta/learner.js';
import { modelSpec, type ParamArrays } from '../src/meta/model.js';
import { ortThreads, ortVersion } from '../src/meta/ort/index.js';
import { prepareNetwork, runNetwork } from '../src/meta/predict-arrays.js';
import { Rng } from '../src/meta/rng.js';
import type { EpisodeBatch } from '../src/meta/types.js';
import { CONV_DIGITS, blockMsPerCall, median } from './meta-timing.js';
import { findPytorch } from './pytorch/baseline.js';
import { pytorchDigitsProtonet, writeDigitsData } from './pytorch/digits.js';

const { values: args } = parseArgs({
  options: {
    iterations: { type: 'string', default: '60' },
    'tfjs-iterations': { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    ms: { type: 'string', default: '400' },
    pytorch: { type: 'string', default: 'auto' },
    out: { type: 'string', default: new URL('./results/conv-engine.json', import.meta.url).pathname },
  },
});
const ITERATIONS = Number(args.iterations);
const TFJS_ITERATIONS = Number(args['tfjs-iterations']);
const ROUNDS = Number(args.rounds);
const BLOCK_MS = Number(args.ms);
const ENGINES = { onnxruntime: 'ort', 'tfjs-wasm': 'tfjs' } as const;
type Engine = keyof typeof ENGINES;
const round2 = (x: number) => Math.round(x * 100) / 100;
const round3 = (x: number) => Math.round(x * 1000) / 1000;
/** Training losses kept per engine: the first iterations', to check that PyTorch trains as the engine does. */
const FIRST_LOSSES = 10;
const load = () => loadavg().map(round2);

const family = digits({}, { ways: CONV_DIGITS.ways });
const model = { body: 'conv', inputShape: CONV_DIGITS.inputShape, channels: CONV_DIGITS.channels, activation: 'relu' } as const;
const spec = modelSpec('classification', family.inputDim, model, CONV_DIGITS.ways);

interface Case {
  name: string;
  algorithm: 'protonet' | 'anil' | 'fomaml' | 'reptile';
  zeroHead: boolean;
  shots: number;
  queryShots: number;
  metaBatchSize: number;
  innerLr: number;
}

const CASES: Case[] = [
  { name: 'protonet 1-shot', algorithm: 'protonet', zeroHead: false, shots: 1, queryShots: CONV_DIGITS.queryShots, metaBatchSize: CONV_DIGITS.metaBatchSize, innerLr: 1 },
  { name: 'protonet 5-shot', algorithm: 'protonet', zeroHead: false, shots: 5, queryShots: CONV_DIGITS.queryShots, metaBatchSize: CONV_DIGITS.metaBatchSize, innerLr: 1 },
  { name: 'anil 1-shot', algorithm: 'anil', zeroHead: false, shots: 1, ...CONV_DIGITS.adapting, innerLr: CONV_DIGITS.adapting.innerLr.anil },
  { name: 'anil zero head 1-shot', algorithm: 'anil', zeroHead: true, shots: 1, ...CONV_DIGITS.adapting, innerLr: CONV_DIGITS.adapting.zeroHeadInnerLr.anil },
  // The first-order algorithms whose inner loop moves the body (no PyTorch baseline here): ONNX
  // Runtime runs each task's inner step and query pass as their own forward and backward passes.
  { name: 'fomaml 1-shot', algorithm: 'fomaml', zeroHead: false, shots: 1, ...CONV_DIGITS.adapting, innerLr: CONV_DIGITS.adapting.innerLr.maml },
  { name: 'reptile 1-shot', algorithm: 'reptile', zeroHead: false, shots: 1, ...CONV_DIGITS.adapting, innerLr: CONV_DIGITS.adapting.innerLr.maml },
];
/** The algorithms bench/pytorch/digits_protonet.py runs. */
const PYTORCH_ALGORITHMS: ReadonlySet<Case['algorithm']> = new Set(['protonet', 'anil']);

function configOf(c: Case, engine: Engine): LearnerConfig {
  return { algorithm: c.algorithm, spec, inner: { steps: CONV_DIGITS.adapting.innerSteps, lr: c.innerLr }, metaLr: CONV_DIGITS.metaLr, zeroHead: c.zeroHead, engine: ENGINES[engine] };
}

/**
 * Wall and CPU ms per iteration of `iterations` meta-steps, each on a freshly sampled meta-batch (as
 * training runs), and the first steps' losses (the untimed one included).
 */
function msPerIteration(c: Case, engine: Engine, iterations: number, params: ParamArrays): { wall: number; cpu: number; losses: number[] } {
  const learner = new MetaLearner(configOf(c, engine), params);
  if (learner.engine !== engine) throw new Error(`asked for ${engine}, ${learner.engine} ran`);
  const rng = new Rng(5);
  const step = () => learner.metaStep(packEpisodes(Array.from({ length: c.metaBatchSize }, () => family.sampleEpisode(rng, 'train', { shots: c.shots, queryShots: c.queryShots, ways: CONV_DIGITS.ways }))));
  const losses = [step()]; // the first builds the sessions / compiles the kernels
  const [start, cpu] = [performance.now(), process.cpuUsage()];
  for (let i = 0; i < iterations; i++) {
    const loss = step();
    if (losses.length < FIRST_LOSSES) losses.push(loss);
  }
  const used = process.cpuUsage(cpu);
  const ms = { wall: (performance.now() - start) / iterations, cpu: (used.user + used.system) / 1000 / iterations, losses };
  learner.dispose();
  return ms;
}

async function main(): Promise<void> {
  const loadAtStart = load();
  await initBackend('wasm');
  const pytorch = await findPytorch(args.pytorch!);
  const rows: Record<string, unknown>[] = [];
  const dir = pytorch.python ? mkdtempSync(join(tmpdir(), 'fastadapt-conv-engine-')) : null;
  try {
    const tests: Record<number, EpisodeBatch> = {};
    for (const shots of [1, 5]) {
      const rng = new Rng(777 + shots);
      tests[shots] = packEpisodes(Array.from({ length: 20 }, () => family.sampleEpisode(rng, 'test', { shots, queryShots: CONV_DIGITS.testQueryShots, ways: CONV_DIGITS.ways })));
    }
    if (dir) writeDigitsData(dir, tests);
    for (const c of CASES) {
      const params = initMetaParams(configOf(c, 'onnxruntime'), new Rng(0));
      const samples: Record<string, { wall: number; cpu: number }[]> = { onnxruntime: [], 'tfjs-wasm': [], pytorch: [] };
      const withPytorch = dir !== null && PYTORCH_ALGORITHMS.has(c.algorithm);
      // Round 0's: the engine and PyTorch start from their own initialisations and episodes, so only the trend and magnitude compare.
      const firstLosses: Record<string, number[]> = {};
      for (let r = 0; r < ROUNDS; r++) {
        const ort = msPerIteration(c, 'onnxruntime', ITERATIONS, params);
        samples.onnxruntime.push(ort);
        if (r === 0) firstLosses.onnxruntime = ort.losses.map(round3);
        samples['tfjs-wasm'].push(msPerIteration(c, 'tfjs-wasm', TFJS_ITERATIONS, params));
        if (withPytorch) {
          const anil = c.algorithm === 'anil' ? { algorithm: c.algorithm, zeroHead: c.zeroHead, innerLr: c.innerLr, innerSteps: CONV_DIGITS.adapting.innerSteps, testSteps: CONV_DIGITS.adapting.testSteps } : {};
          const run = await pytorchDigitsProtonet(pytorch.python!, dir!, { body: 'conv', shots: c.shots, iterations: ITERATIONS, seed: 0, ways: CONV_DIGITS.ways, queryShots: c.queryShots, metaBatchSize: c.metaBatchSize, metaLr: CONV_DIGITS.metaLr, channels: CONV_DIGITS.channels, ...anil });
          if (r === 0) firstLosses.pytorch = run.firstTrainLosses.map(round3);
          samples.pytorch.push({ wall: run.msPerIteration, cpu: run.cpuMsPerIteration });
        }
      }
      const present = Object.entries(samples).filter(([, xs]) => xs.length > 0);
      const ms = Object.fromEntries(present.map(([k, xs]) => [k, round2(median(xs.map((x) => x.wall)))]));
      const cpuMs = Object.fromEntries(present.map(([k, xs]) => [k, round2(median(xs.map((x) => x.cpu)))]));
      const row = {
        case: c.name,
        algorithm: c.algorithm,
        zeroHead: c.zeroHead,
        shots: c.shots,
        msPerIteration: ms,
        cpuMsPerIteration: cpuMs,
        ...(ms.pytorch ? { vsPytorchOneThread: round2(ms.onnxruntime / ms.pytorch), vsPytorchOneThreadCpu: round2(cpuMs.onnxruntime / cpuMs.pytorch) } : {}),
        speedupVsTfjsWasm: round2(ms['tfjs-wasm'] / ms.onnxruntime),
        firstTrainLosses: firstLosses,
        samples: Object.fromEntries(present.map(([k, xs]) => [k, xs.map((x) => ({ wall: round2(x.wall), cpu: round2(x.cpu) }))])),
      };
      rows.push(row);
      console.log(JSON.stringify(row));
    }
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }

  // Prediction: 1 and 16 images, the task's parameters as serving holds them.
  const params = initMetaParams({ ...configOf(CASES[2], 'onnxruntime') }, new Rng(1));
  const images = family.sampleEpisode(new Rng(2), 'test', { shots: 1, queryShots: 16, ways: 5 }).query.x;
  const prediction: Record<string, unknown>[] = [];
  for (const n of [1, 16]) {
    const x = images.slice(0, n * spec.inputDim);
    const samples: Record<Engine, number[]> = { onnxruntime: [], 'tfjs-wasm': [] };
    // As serving runs them: the predict cache's prepared network (ONNX Runtime body, plain-JS head),
    // and before it the engine's tfjs predict (parameters uploaded on every call).
    const served = prepareNetwork(spec, params, 'engine');
    if (served.body !== 'engine' || !served.onnx) throw new Error('serving does not run conv bodies on ONNX Runtime here');
    const call: Record<Engine, () => unknown> = { onnxruntime: () => runNetwork(served, x), 'tfjs-wasm': () => predict(spec, params, x, 'tfjs') };
    for (const engine of Object.keys(ENGINES) as Engine[]) blockMsPerCall(call[engine], BLOCK_MS);
    for (let r = 0; r < ROUNDS * 2; r++) for (const engine of Object.keys(ENGINES) as Engine[]) samples[engine].push(blockMsPerCall(call[engine], BLOCK_MS));
    const ms = { onnxruntime: round2(median(samples.onnxruntime)), 'tfjs-wasm': round2(median(samples['tfjs-wasm'])) };
    const row = { images: n, msPerCall: ms, speedupVsTfjsWasm: round2(ms['tfjs-wasm'] / ms.onnxruntime) };
    prediction.push(row);
    console.log(JSON.stringify(row));
  }

  // Evaluation of a conv meta-model: 20 5-shot episodes, ANIL's 3 test steps.
  const evalCase = CASES[2];
  const test = packEpisodes(Array.from({ length: 20 }, () => family.sampleEpisode(new Rng(9), 'test', { shots: 5, queryShots: 15, ways: 5 })));
  const evalSamples: Record<Engine, number[]> = { onnxruntime: [], 'tfjs-wasm': [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const engine of Object.keys(ENGINES) as Engine[]) {
      const learner = new MetaLearner({ ...configOf(evalCase, engine), inner: { steps: CONV_DIGITS.adapting.testSteps, lr: evalCase.innerLr } }, params);
      const start = performance.now();
      learner.evaluate(test);
      evalSamples[engine].push(performance.now() - start);
      learner.dispose();
    }
  }
  const evalMs = { onnxruntime: round2(median(evalSamples.onnxruntime)), 'tfjs-wasm': round2(median(evalSamples['tfjs-wasm'])) };
  const evaluation = { episodes: 20, shots: 5, steps: CONV_DIGITS.adapting.testSteps, ms: evalMs, speedupVsTfjsWasm: round2(evalMs['tfjs-wasm'] / evalMs.onnxruntime) };
  console.log(JSON.stringify(evaluation));

  const result = {
    setting: {
      model: 'Conv-4 (64 channels per block: 3x3 conv, layer norm, relu, 2x2 max pool), 14x14x1 digits, 5-way (CONV_DIGITS, as bench:meta digitsConv)',
      training: `ProtoNets: one episode of 15 queries per class per iteration; ANIL, FOMAML and Reptile: 4 episodes of 5 queries per class, 1 inner step (FOMAML and Reptile: lr ${CONV_DIGITS.adapting.innerLr.maml}, no PyTorch row). ${ITERATIONS} timed iterations (ONNX Runtime, PyTorch) and ${TFJS_ITERATIONS} (tfjs-wasm) after one untimed, sampling included; ${ROUNDS} rounds, engines in turn; figures are medians over rounds`,
      pytorch: pytorch.python
        ? 'bench/pytorch/digits_protonet.py (ANIL rows: --algorithm anil [--zero-head], the same inner lr and steps, create_graph through the head\'s inner step), torch.set_num_threads(1), the same iterations on the same training classes; its msPerIteration and cpuMsPerIteration'
        : `skipped: ${pytorch.reason}`,
      prediction: `a task's prediction as serving runs it: onnxruntime, the predict cache's prepared network (runNetwork: ONNX Runtime body, plain-JS head); tfjs-wasm, adapt.ts predict with the tfjs engine (the route before); ${BLOCK_MS} ms blocks, ${ROUNDS * 2} rounds`,
      evaluation: 'MetaLearner.evaluate (adaptation of every task, then its query set) of an ANIL conv meta-model',
    },
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      node: process.version,
      onnxruntime: ortVersion(),
      ortThreads: ortThreads(),
      tfjsVersion: tf.version.tfjs,
      loadAverageAtStart: loadAtStart,
      loadAverageAtEnd: load(),
      load: 'a shared 2-core machine, busy with other work during the run: absolute figures move with the load; compare the ratios, measured in the same run',
    },
    training: rows,
    prediction,
    evaluation,
    measuredAt: new Date().toISOString(),
  };
  writeFileSync(args.out!, `${JSON.stringify(result, null, 2)}\n`);
}

await main();
