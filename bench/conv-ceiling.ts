/**
 * How fast can a Conv-4 iteration be on the wasm backend? The convolutions set a floor. For each 3x3
 * convolution of a Conv-4 ProtoNets iteration on digits (1-shot: 5 + 75 images; 5-shot: 25 + 75), ms
 * per forward call of tfjs-wasm's own conv2d kernel (XNNPACK, its fastest route) and of PyTorch's on
 * one thread; and one forward and backward pass of the whole body on those images, the engine's (the
 * conv ops of src/meta/conv.ts) against PyTorch's (bench/pytorch/conv_ceiling.py). A backward pass
 * runs two more convolutions of each forward one's size (the input's and the filter's gradients), so
 * `wasmFloorMs`, three times the forward convolutions' time, is what the wasm body can at best take,
 * if every convolution ran at the forward kernel's rate and nothing else cost anything. Writes
 * bench/results/conv-ceiling.json (or --out).
 *
 * npm run bench:conv-ceiling -- [--rounds 7] [--ms 400] [--pytorch auto|off|PYTHON] [--out PATH]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend, tf } from '../src/meta/backend.js';
import { blockSides, convEmbed } from '../src/meta/conv.js';
import { initModelParams, modelSpec } from '../src/meta/model.js';
import { Rng } from '../src/meta/rng.js';
import { findPytorch, run } from './pytorch/baseline.js';
import { blockMsPerCall, median, round } from './meta-timing.js';

const { values: args } = parseArgs({
  options: { rounds: { type: 'string', default: '7' }, ms: { type: 'string', default: '400' }, pytorch: { type: 'string', default: 'auto' }, out: { type: 'string', default: 'bench/results/conv-ceiling.json' } },
});
const rounds = Number(args.rounds);
const blockMs = Number(args.ms);
const LOAD_AT_START = round(loadavg()[0], 2);
const INPUT_SHAPE: [number, number, number] = [14, 14, 1];
const CHANNELS = [64, 64, 64, 64];
/** Images in a ProtoNets iteration: support plus 15 queries, for each of 5 classes. */
const IMAGES = { '1-shot': 5 * (1 + 15), '5-shot': 5 * (5 + 15) };

/** After one warm-up call, the median over rounds of the mean ms per call in a block of about `blockMs`. */
function medianMsPerCall(call: () => void): number {
  call();
  return median(Array.from({ length: rounds }, () => blockMsPerCall(call, blockMs)));
}

/** [n, h, w, cin, cout] of each block's convolution on n images. */
function blockConvolutions(n: number): number[][] {
  // A block convolves the map the block before it pooled, at full resolution.
  const sides = [[INPUT_SHAPE[0], INPUT_SHAPE[1]], ...blockSides(INPUT_SHAPE, CHANNELS.length)];
  return CHANNELS.map((cout, i) => [n, ...sides[i], i === 0 ? INPUT_SHAPE[2] : CHANNELS[i - 1], cout]);
}

const flops = ([n, h, w, cin, cout]: number[]) => 2 * n * h * w * cin * cout * 9;

async function main(): Promise<void> {
  const backend = await initBackend('wasm');
  const spec = modelSpec('classification', INPUT_SHAPE[0] * INPUT_SHAPE[1] * INPUT_SHAPE[2], { body: 'conv', inputShape: INPUT_SHAPE, channels: CHANNELS }, 5);
  const params = Object.fromEntries(
    Object.entries(initModelParams(spec, new Rng(1)))
      .filter(([name]) => name.startsWith('body.'))
      .map(([name, { shape, data }]) => [name, tf.variable(tf.tensor(data, shape))]),
  );
  const pytorch = await findPytorch(args.pytorch);
  const settings: Record<string, unknown>[] = [];
  for (const [setting, n] of Object.entries(IMAGES)) {
    const shapes = blockConvolutions(n);
    const conv = shapes.map((shape) => {
      const [, h, w, cin, cout] = shape;
      const x = tf.randomNormal([n, h, w, cin]) as tf.Tensor4D;
      const k = tf.randomNormal([3, 3, cin, cout]) as tf.Tensor4D;
      const ms = medianMsPerCall(() => tf.tidy(() => void tf.conv2d(x, k, 1, 'same').dataSync()));
      tf.dispose([x, k]);
      return { shape, mflop: round(flops(shape) / 1e6, 2), wasmMs: round(ms, 3), wasmGflops: round(flops(shape) / ms / 1e6, 2) };
    });
    const images = tf.randomUniform([n, spec.inputDim]);
    const bodyMs = medianMsPerCall(() =>
      tf.tidy(() => {
        const grads = tf.grads((...p: tf.Tensor[]) => tf.sum(convEmbed(INPUT_SHAPE, CHANNELS, 'relu', Object.fromEntries(Object.keys(params).map((name, i) => [name, p[i]])), images)))(Object.values(params));
        grads.forEach((g) => g.dataSync());
      }),
    );
    images.dispose();
    // Three convolutions of each forward one's size, all at the forward kernel's rate.
    const floorMs = 3 * conv.reduce((a, c) => a + c.wasmMs, 0);
    const row: Record<string, unknown> = {
      setting,
      images: n,
      conv,
      gflopPerPass: round((3 * shapes.reduce((a, s) => a + flops(s), 0)) / 1e9, 3),
      wasmFloorMs: round(floorMs, 2),
      engineBodyMs: round(bodyMs, 2),
    };
    if (pytorch.python) {
      const out = JSON.parse(await run(pytorch.python, [new URL('./pytorch/conv_ceiling.py', import.meta.url).pathname, '--shapes', JSON.stringify(shapes), '--images', String(n), '--ms', String(blockMs), '--rounds', String(rounds), '--channels', CHANNELS.join(',')])) as {
        torch: string;
        threads: number;
        conv: { ms: number }[];
        body: { ms: number }[];
      };
      conv.forEach((c, i) => Object.assign(c, { pytorchMs: round(out.conv[i].ms, 3), pytorchGflops: round(flops(c.shape) / out.conv[i].ms / 1e6, 2) }));
      Object.assign(row, {
        pytorchBodyMs: round(out.body[0].ms, 2),
        engineVsPytorch: round(bodyMs / out.body[0].ms, 2),
        floorVsPytorch: round(floorMs / out.body[0].ms, 2),
        pytorch: { torch: out.torch, threads: out.threads },
      });
    }
    settings.push(row);
    console.log(JSON.stringify(row));
  }
  const result = {
    backend,
    body: 'Conv-4 (64-64-64-64) on 14x14x1, the engine`s conv ops (src/meta/conv.ts) and digits_protonet.py`s Conv4',
    method: `per case the median over ${rounds} rounds of about ${blockMs} ms of the mean ms per call; wasm conv2d is tf.conv2d 'same' NHWC, PyTorch F.conv2d padding 1 NCHW, one thread; a body pass is forward and backward (gradients of every parameter) of the sum of the embeddings`,
    pytorch: pytorch.python ? undefined : pytorch.reason,
    settings,
    machine: { cpu: cpus()[0]?.model, cores: cpus().length, loadAtStart: LOAD_AT_START },
    date: new Date().toISOString().slice(0, 10),
  };
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(args.out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`wrote ${args.out}`);
}

await main();
