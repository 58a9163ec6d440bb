/**
 * bench:meta's side of the PyTorch ProtoNets baseline on `digits` (digits_protonet.py): exporting the
 * engine's training classes and its test episodes for it, and running it. The script also trains ANIL
 * (bench:conv-engine's PyTorch ANIL rows).
 *
 * The data go through files, not through the script's own copy of the digits, so that PyTorch trains
 * on exactly the engine's rotated training classes (written with loadDigits/writeDigit, grouped as
 * DIGIT_SPLITS.train groups them) and is scored on exactly the test episodes the engine is scored on.
 *
 * Layout of `dir` (DIGITS_DATA_FORMAT): `digits.json`, the header (DigitsDataHeader), and raw
 * little-endian float32 files: `train.f32`, every training class's images one after another, row-major
 * [images, 196]; and per shot count S `test-S-shot.{support,query}.{x,y}.f32`, the packed EpisodeBatch's
 * arrays as they are (x [tasks, n, 196], y [tasks, n] episode labels 0..ways-1).
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { DIGIT_PIXELS, DIGIT_SIZE, loadDigits, writeDigit } from '../../src/meta/families/digits-data.js';
import { DIGIT_SPLITS } from '../../src/meta/families/digits.js';
import type { EpisodeBatch } from '../../src/meta/types.js';
import { run } from './baseline.js';

const SCRIPT = new URL('./digits_protonet.py', import.meta.url).pathname;

/** What digits_protonet.py checks that it reads (its FORMAT). */
export const DIGITS_DATA_FORMAT = 'fastadapt-digits/1';

/** One training class in `train.f32`: rows offset .. offset + count - 1. */
export interface DigitsDataClass {
  id: number;
  digit: number;
  turns: number;
  offset: number;
  count: number;
}

/** The test episodes of one shot count. */
export interface DigitsDataEpisodes {
  tasks: number;
  ways: number;
  shots: number;
  queryShots: number;
  supportSize: number;
  querySize: number;
  files: { supportX: string; supportY: string; queryX: string; queryY: string };
}

/** `digits.json`. */
export interface DigitsDataHeader {
  format: typeof DIGITS_DATA_FORMAT;
  imageSize: number;
  inputDim: number;
  train: { file: string; images: number; groups: DigitsDataClass[][] };
  /** Keyed by shots. */
  test: Record<string, DigitsDataEpisodes>;
}

function writeFloats(path: string, data: Float32Array): void {
  writeFileSync(path, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

/** Shape of a packed batch of `shots`-shot episodes, checked against its labels. */
function episodesOf(shots: number, batch: EpisodeBatch): Omit<DigitsDataEpisodes, 'files'> {
  const { tasks, inputDim, supportSize, querySize } = batch;
  const what = `${shots}-shot test episodes`;
  if (!Number.isInteger(shots) || shots < 1) throw new Error(`test episodes keyed by ${shots}: expected a positive shot count`);
  if (inputDim !== DIGIT_PIXELS) throw new Error(`${what}: inputDim ${inputDim}, expected ${DIGIT_PIXELS}`);
  const ways = supportSize / shots;
  if (!Number.isInteger(ways) || ways < 2) throw new Error(`${what}: support size ${supportSize} is not ways x ${shots} shots`);
  const queryShots = querySize / ways;
  if (!Number.isInteger(queryShots)) throw new Error(`${what}: query size ${querySize} is not a multiple of ${ways} ways`);
  for (const y of [batch.support.y, batch.query.y]) {
    if (y.some((label) => !Number.isInteger(label) || label < 0 || label >= ways)) throw new Error(`${what}: labels outside 0..${ways - 1}`);
  }
  return { tasks, ways, shots, queryShots, supportSize, querySize };
}

/**
 * Writes the training classes and the given test episodes (keyed by shot count) into `dir` (created
 * if missing) for digits_protonet.py; returns the header it wrote. About 19 MB of training images
 * plus 600 x 80 x 196 x 4 bytes (38 MB) for 600 5-way 1-shot episodes of 15 queries per class.
 */
export function writeDigitsData(dir: string, test: Record<number, EpisodeBatch>): DigitsDataHeader {
  // The files are Float32Arrays' bytes as they lie in memory.
  if (endianness() !== 'LE') throw new Error('writeDigitsData writes little-endian float32: this machine is big-endian');
  // Checked before anything is written, so a bad batch leaves no half-written directory.
  const shapes = Object.entries(test).map(([key, batch]) => ({ batch, shape: episodesOf(Number(key), batch) }));
  mkdirSync(dir, { recursive: true });
  const data = loadDigits();
  let images = 0;
  const groups = DIGIT_SPLITS.train.map((group) =>
    group.map(({ id, digit, turns }) => {
      const entry = { id, digit, turns, offset: images, count: data.counts[digit] };
      images += entry.count;
      return entry;
    }),
  );
  const train = new Float32Array(images * DIGIT_PIXELS);
  for (const { digit, turns, offset, count } of groups.flat()) {
    for (let i = 0; i < count; i++) writeDigit(data, digit, turns, i, train, (offset + i) * DIGIT_PIXELS);
  }
  const header: DigitsDataHeader = {
    format: DIGITS_DATA_FORMAT,
    imageSize: DIGIT_SIZE,
    inputDim: DIGIT_PIXELS,
    train: { file: 'train.f32', images, groups },
    test: {},
  };
  writeFloats(join(dir, header.train.file), train);
  for (const { batch, shape } of shapes) {
    const stem = `test-${shape.shots}-shot`;
    const files = { supportX: `${stem}.support.x.f32`, supportY: `${stem}.support.y.f32`, queryX: `${stem}.query.x.f32`, queryY: `${stem}.query.y.f32` };
    writeFloats(join(dir, files.supportX), batch.support.x);
    writeFloats(join(dir, files.supportY), batch.support.y);
    writeFloats(join(dir, files.queryX), batch.query.x);
    writeFloats(join(dir, files.queryY), batch.query.y);
    header.test[String(shape.shots)] = { ...shape, files };
  }
  writeFileSync(join(dir, 'digits.json'), `${JSON.stringify(header, null, 2)}\n`);
  return header;
}

export interface DigitsProtonetOptions {
  body: 'conv' | 'mlp';
  /** Support images per class, in training episodes and in the test episodes scored. */
  shots: number;
  iterations: number;
  seed: number;
  ways: number;
  /** Query images per class in training episodes (the test episodes have their own). */
  queryShots: number;
  metaBatchSize: number;
  metaLr: number;
  /** Conv-4 widths (default 64,64,64,64). */
  channels?: number[];
  /** MLP widths after the 196 inputs (default 128,64). */
  hidden?: number[];
  /** 'protonet' (default) or ANIL: a linear head adapted by `innerSteps` steps of `innerLr` per task. */
  algorithm?: 'protonet' | 'anil';
  /** ANIL: every task's head starts at zero and only the body is meta-learned (the engine's zeroHead). */
  zeroHead?: boolean;
  /** ANIL's inner step size and steps in training, and its head steps per test episode. */
  innerLr?: number;
  innerSteps?: number;
  testSteps?: number;
}

/** The JSON line digits_protonet.py prints. */
export interface DigitsProtonetRun {
  algorithm: 'protonet' | 'anil';
  zeroHead: boolean;
  /** ANIL's inner settings; null for ProtoNets. */
  innerLr: number | null;
  innerSteps: number | null;
  testSteps: number | null;
  body: 'conv' | 'mlp';
  /** The channels (conv) or hidden widths (mlp) trained. */
  widths: number[];
  parameters: number;
  shots: number;
  ways: number;
  queryShots: number;
  iterations: number;
  metaBatch: number;
  metaLr: number;
  seed: number;
  /** Mean test-episode accuracy, and 1.96 standard errors of it (sample variance, as meanCi). */
  accuracy: number;
  ci95: number;
  testEpisodes: number;
  testQueryShots: number;
  /** Training wall time per iteration, episode sampling included. */
  msPerIteration: number;
  /** Forward, backward and Adam per iteration (no sampling). */
  stepMsPerIteration: number;
  /** The process's CPU time per training iteration (sampling included). */
  cpuMsPerIteration: number;
  trainSeconds: number;
  /** Mean training loss over the last tenth of the iterations; null after 0 iterations. */
  finalTrainLoss: number | null;
  /** The first (up to) 10 iterations' training losses. */
  firstTrainLosses: number[];
  /** Nearest class mean on raw pixels over the same test episodes, no training. */
  rawPixel: { euclidean: number; cosine: number };
  threads: number;
  torch: string;
}

/**
 * Runs digits_protonet.py on data that writeDigitsData wrote to `dir` (it must hold the test episodes
 * of `options.shots` shots): ProtoNets (or ANIL) meta-trained in PyTorch, one thread, scored on those episodes.
 */
export async function pytorchDigitsProtonet(python: string, dir: string, options: DigitsProtonetOptions): Promise<DigitsProtonetRun> {
  const argv = [
    SCRIPT,
    '--data', dir,
    '--body', options.body,
    '--shots', String(options.shots),
    '--iterations', String(options.iterations),
    '--seed', String(options.seed),
    '--ways', String(options.ways),
    '--query-shots', String(options.queryShots),
    '--meta-batch', String(options.metaBatchSize),
    '--meta-lr', String(options.metaLr),
  ];
  if (options.channels) argv.push('--channels', options.channels.join(','));
  if (options.hidden) argv.push('--hidden', options.hidden.join(','));
  if (options.algorithm) argv.push('--algorithm', options.algorithm);
  if (options.zeroHead) argv.push('--zero-head');
  if (options.innerLr !== undefined) argv.push('--inner-lr', String(options.innerLr));
  if (options.innerSteps !== undefined) argv.push('--inner-steps', String(options.innerSteps));
  if (options.testSteps !== undefined) argv.push('--test-steps', String(options.testSteps));
  const lines = (await run(python, argv)).trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as DigitsProtonetRun;
}
