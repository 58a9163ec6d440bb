/**
 * Serving a conv body: ms per prediction call of the plain-JS forward pass (src/meta/predict-arrays.ts)
 * against the engine's tfjs `predict` on the wasm backend (what 'auto' picks without the native
 * bindings) and on the cpu backend, for Conv-4 (64 channels) on 14x14x1 digits,
 * 5-way, with 1 and 16 inputs per call. Both paths get the task's parameters as serving holds them
 * (ParamArrays): the engine uploads them on every call, as serving through it would; plain JS
 * prepares them once per task, as the predict cache does. Writes bench/results/predict-conv.json;
 * convServing in src/meta/predict-arrays.ts quotes it and decides by it.
 *
 * npx tsx bench/predict-conv.ts [--rounds 7] [--ms 400]
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { predict, type Prediction } from '../src/meta/adapt.js';
import { initBackend, tf, type BackendName } from '../src/meta/backend.js';
import { digits } from '../src/meta/families/index.js';
import { initModelParams, modelSpec } from '../src/meta/model.js';
import { prepareConv, runConv } from '../src/meta/predict-arrays.js';
import { Rng } from '../src/meta/rng.js';
import { blockMsPerCall, median } from './meta-timing.js';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, ms: { type: 'string', default: '400' } } });
const rounds = Number(args.rounds);
const blockMs = Number(args.ms);
const BATCHES = [1, 16];
const LOAD_AT_START = Math.round(loadavg()[0] * 100) / 100;

async function main(): Promise<void> {
  await initBackend('wasm');
  const family = digits({}, { ways: 5 });
  const spec = modelSpec('classification', family.inputDim, { body: 'conv', inputShape: [14, 14, 1] }, 5);
  const params = initModelParams(spec, new Rng(1));
  const episode = family.sampleEpisode(new Rng(2), 'test', { shots: 1, queryShots: 16 });
  const images = episode.query.x;
  const inputs = Object.fromEntries(BATCHES.map((n) => [n, images.slice(0, n * spec.inputDim)]));
  const net = prepareConv(spec, params);
  const paths: Record<string, (x: Float32Array) => Prediction> = {
    'plain-js': (x) => runConv(net, x),
    // The tfjs engine explicitly: 'auto' now runs conv bodies on ONNX Runtime (bench:conv-engine compares the two).
    'tfjs-wasm': (x) => predict(spec, params, x, 'tfjs'),
    'tfjs-cpu': (x) => predict(spec, params, x, 'tfjs'),
  };
  /** The tfjs backend a path runs on (plain JS runs on none; the active one stays). */
  const backendOf = (name: string): BackendName | null => (name === 'plain-js' ? null : (name.slice('tfjs-'.length) as BackendName));
  const use = async (name: string) => {
    const backend = backendOf(name);
    if (backend) await initBackend(backend);
  };
  // The two agree (the unit tests check this closely); a bench comparing different answers would be void.
  for (const n of BATCHES) {
    const answers: Prediction[] = [];
    for (const name of Object.keys(paths)) {
      await use(name);
      answers.push(paths[name](inputs[n]));
    }
    const [a, ...others] = answers;
    for (const b of others) {
      if (a.kind !== 'classification' || b.kind !== 'classification') throw new Error('wrong kind');
      const gap = Math.max(...a.probabilities.flatMap((p, i) => p.map((v, j) => Math.abs(v - b.probabilities[i][j]))));
      if (gap > 1e-4) throw new Error(`paths disagree by ${gap}`);
    }
  }
  for (const name of Object.keys(paths)) {
    await use(name);
    for (const n of BATCHES) blockMsPerCall(() => paths[name](inputs[n]), blockMs);
  }
  const samples: Record<string, Record<number, number[]>> = Object.fromEntries(Object.keys(paths).map((name) => [name, Object.fromEntries(BATCHES.map((n) => [n, [] as number[]]))]));
  for (let r = 0; r < rounds; r++) {
    for (const name of Object.keys(paths)) {
      await use(name);
      for (const n of BATCHES) samples[name][n].push(blockMsPerCall(() => paths[name](inputs[n]), blockMs));
    }
  }
  const msPerCall = Object.fromEntries(Object.entries(samples).map(([name, byN]) => [name, Object.fromEntries(Object.entries(byN).map(([n, xs]) => [n, Number(median(xs).toFixed(3))]))]));
  const result = {
    setting: {
      model: 'Conv-4: 4 blocks of 64 channels (3x3 conv, layer norm, relu, 2x2 max pool), 14x14x1 digits, 5-way head on the 1x1x64 embedding',
      call: 'one prediction call: inputs in, class probabilities out (plain JS: runConv on parameters prepared once by prepareConv; tfjs: adapt.ts predict, which uploads the parameters and downloads the output)',
      timing: `each path and batch size warmed up for ${blockMs} ms, then ${rounds} interleaved rounds of ${blockMs} ms blocks; a figure is the median over rounds`,
    },
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      node: process.version,
      tfjsVersion: tf.version.tfjs,
      threads: 'one: plain JS and the cpu backend run on the event loop; the wasm backend runs single-threaded (WASM_HAS_MULTITHREAD_SUPPORT false under Node, see backend.ts)',
      wasmSimd: await (async () => {
        await initBackend('wasm');
        return tf.env().getBool('WASM_HAS_SIMD_SUPPORT');
      })(),
      loadAverageAtStart: LOAD_AT_START,
      load: 'figures move with the machine\'s load (recorded at the start); the ratios are what decide',
    },
    msPerCall,
    measuredAt: new Date().toISOString(),
  };
  writeFileSync(new URL('./results/predict-conv.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(msPerCall));
}

await main();
