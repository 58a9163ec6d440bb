/**
 * Few-shot classification of real handwritten digits, augmented as Omniglot usually is: each digit
 * under each of 4 rotations (0/90/180/270 degrees) is its own class, 40 classes, split class-disjoint
 * into 24 meta-training, 8 validation and 8 test classes, fixed for every run.
 *
 * Some rotated classes are near-copies of others: 0, 1 and 8 look alike turned by 180 degrees, and a
 * 6 turned by 180 degrees is a 9. Such pairs stay in the training split (a test class must be new,
 * not a copy of a trained one) and an episode never draws both members of a pair (it must be
 * solvable). Validation and test classes are rotations of 2, 3, 4, 5 and 7.
 */

import { Rng } from '../rng.js';
import type { Episode, EpisodeShape, Examples, Split, TaskFamily, TaskPool } from '../types.js';
import { checkShape, classificationEpisode, resolveWays, sampleDistinct } from './episode.js';
import { DIGIT_PIXELS, DIGIT_SIZE, loadDigits, writeDigit } from './digits-data.js';
import type { FamilyOptions } from './generated.js';
import { checkNumber, readParams } from './params.js';

/** A class: a digit under a rotation (quarter turns clockwise). Class id = turns * 10 + digit. */
export interface DigitClass {
  id: number;
  digit: number;
  turns: number;
}

const classOf = (digit: number, turns: number): DigitClass => ({ id: turns * 10 + digit, digit, turns });

/** Near-duplicate classes, as groups an episode draws at most one class from. */
function confusionGroups(): DigitClass[][] {
  const groups: DigitClass[][] = [];
  for (const d of [0, 1, 8]) {
    groups.push([classOf(d, 0), classOf(d, 2)], [classOf(d, 1), classOf(d, 3)]);
  }
  for (let turns = 0; turns < 4; turns++) groups.push([classOf(6, turns), classOf(9, (turns + 2) % 4)]);
  return groups;
}

/** Seed of the fixed permutation that assigns the distinct classes to splits. */
const SPLIT_SEED = 2017;

/** The fixed class splits, as groups of mutually confusable classes (most groups hold one class). */
export const DIGIT_SPLITS: Readonly<Record<Split, readonly DigitClass[][]>> = (() => {
  const singles = [2, 3, 4, 5, 7].flatMap((d) => [0, 1, 2, 3].map((t) => [classOf(d, t)]));
  new Rng(SPLIT_SEED).shuffle(singles);
  return { train: [...confusionGroups(), ...singles.slice(0, 4)], val: singles.slice(4, 12), test: singles.slice(12, 20) };
})();

/** The class ids of a split. */
export function digitClassIds(split: Split): number[] {
  return DIGIT_SPLITS[split].flat().map((c) => c.id);
}

export const DIGITS_INPUT_DIM = DIGIT_PIXELS;
/** One grey 14x14 image an input: what a conv body over digits convolves. */
export const DIGITS_INPUT_SHAPE: readonly [number, number, number] = [DIGIT_SIZE, DIGIT_SIZE, 1];

/** The digits family: inputDim 196 (14x14x1 images, intensities in [0, 1]); N-way (default 5) episodes. */
export function digits(params: Record<string, never> = {}, options: FamilyOptions & { ways?: number } = {}): TaskFamily {
  readParams(params, options.path ?? 'params', []);
  const defaultWays = checkNumber(options.ways ?? 5, 'nWay', { min: 2, max: DIGIT_SPLITS.val.length, integer: true });
  const family: TaskFamily = {
    name: options.name ?? 'digits',
    kind: 'classification',
    inputDim: DIGIT_PIXELS,
    inputShape: DIGITS_INPUT_SHAPE,
    ways: defaultWays,
    sampleEpisode(rng: Rng, split: Split, shape: EpisodeShape): Episode {
      const { shots, queryShots } = checkShape(shape);
      const groups = DIGIT_SPLITS[split];
      const ways = resolveWays(family, shape, groups.length);
      const data = loadDigits();
      const per = shots + queryShots;
      // One class from each of `ways` distinct groups; their order is the episode's labelling.
      const classes = sampleDistinct(rng, groups.length, ways).map((g) => groups[g][rng.int(groups[g].length)]);
      const picks = classes.map((c) => sampleDistinct(rng, data.counts[c.digit], per));
      return classificationEpisode(DIGIT_PIXELS, ways, shots, queryShots, (way, j, out, offset) => {
        const c = classes[way];
        writeDigit(data, c.digit, c.turns, picks[way][j], out, offset);
      });
    },
    // The classes keep their identity across episodes: one task over all training classes (one
    // softmax over the 24), whatever the pool size asked for.
    trainingPool(): TaskPool {
      const classes = DIGIT_SPLITS.train.flat();
      return {
        outputs: [classes.length],
        examples(_t: number, rng: Rng, n: number): Examples {
          const data = loadDigits();
          const x = new Float32Array(n * DIGIT_PIXELS);
          const y = new Float32Array(n);
          for (let i = 0; i < n; i++) {
            const label = rng.int(classes.length);
            const c = classes[label];
            writeDigit(data, c.digit, c.turns, rng.int(data.counts[c.digit]), x, i * DIGIT_PIXELS);
            y[i] = label;
          }
          return { x, y, n };
        },
      };
    },
  };
  return family;
}
