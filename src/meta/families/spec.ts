/**
 * Builds a task family from its API description (POST /task-families). The HTTP layer calls this to
 * validate a family before storing it and the worker calls it again to rebuild the family, so one
 * function owns every rule about what makes a family valid.
 */

import { imageShapeError } from '../conv.js';
import type { TaskFamily, TaskKind } from '../types.js';
import { dataset, type PackedDataset, type StoredTask } from './dataset.js';
import { digits, DIGIT_SPLITS, DIGITS_INPUT_DIM, DIGITS_INPUT_SHAPE } from './digits.js';
import { gaussianBlobs } from './gaussian-blobs.js';
import { linear } from './linear.js';
import { checkNumber, FamilySpecError, isRecord } from './params.js';
import { polynomial } from './polynomial.js';
import { sinusoid } from './sinusoid.js';

export const GENERATOR_TYPES = ['sinusoid', 'linear', 'polynomial', 'gaussian-blobs', 'digits'] as const;
export type GeneratorType = (typeof GENERATOR_TYPES)[number];

/** A family as the API describes it: exactly one of `generator` and `tasks` (or, uploaded, `rows`). */
export interface FamilySpec {
  name: string;
  kind: TaskKind;
  inputDim: number;
  /** Classification only: the number of classes per episode (N-way). */
  nWay?: number;
  /**
   * Inputs are images: [height, width, channels], flattened row-major into inputDim values. A family
   * of stored or uploaded tasks may declare it; a generator's is its own (digits: [14, 14, 1]).
   */
  inputShape?: number[];
  generator?: { type: GeneratorType; params?: Record<string, unknown> };
  tasks?: StoredTask[];
  /** An uploaded family's rows, as the worker loads them (never part of a request body). */
  rows?: PackedDataset;
}

/** Largest accepted inputDim (a family's inputs are the model's first layer). */
export const MAX_INPUT_DIM = 4096;

type ImageShape = readonly [number, number, number];

/**
 * What each generator produces; inputDim is null where the generator works in any dimension,
 * inputShape is there for generators of images.
 */
const GENERATORS: Record<GeneratorType, { kind: TaskKind; inputDim: number | null; maxWays?: number; inputShape?: ImageShape }> = {
  sinusoid: { kind: 'regression', inputDim: 1 },
  linear: { kind: 'regression', inputDim: null },
  polynomial: { kind: 'regression', inputDim: 1 },
  'gaussian-blobs': { kind: 'classification', inputDim: null },
  digits: { kind: 'classification', inputDim: DIGITS_INPUT_DIM, maxWays: DIGIT_SPLITS.val.length, inputShape: DIGITS_INPUT_SHAPE },
};

/** The image shape a generator's inputs have, or undefined where they are not images (or the type is unknown). */
export function generatorInputShape(type: unknown): ImageShape | undefined {
  return typeof type === 'string' && Object.hasOwn(GENERATORS, type) ? GENERATORS[type as GeneratorType].inputShape : undefined;
}

/**
 * Checks a declared image shape: three positive integers [height, width, channels] whose product is
 * the family's inputDim (inputs are those images flattened row-major).
 * @throws FamilySpecError at `path`.
 */
export function checkInputShape(value: unknown, inputDim: number, path = 'inputShape'): ImageShape {
  const error = imageShapeError(value, inputDim);
  if (error) throw new FamilySpecError(path, error);
  const [h, w, c] = value as number[];
  return [h, w, c];
}

function build(type: GeneratorType, params: unknown, name: string, inputDim: number, ways: number | undefined): TaskFamily {
  const options = { name, path: 'generator.params' };
  switch (type) {
    case 'sinusoid':
      return sinusoid(params as never, options);
    case 'linear':
      return linear(params as never, { ...options, inputDim });
    case 'polynomial':
      return polynomial(params as never, options);
    case 'gaussian-blobs':
      return gaussianBlobs(params as never, { ...options, inputDim, ways });
    case 'digits':
      return digits(params as never, { ...options, ways });
  }
}

/**
 * Validates `spec` (typically parsed JSON) and builds its family.
 * @throws FamilySpecError naming the offending field, e.g. `generator.params.amplitude` or `tasks[3].x[0]`.
 */
export function createFamily(spec: unknown): TaskFamily {
  if (!isRecord(spec)) throw new FamilySpecError('', 'a task family must be an object');
  const { name, kind, generator, tasks } = spec;
  if (typeof name !== 'string' || name.trim() === '' || name.length > 200) {
    throw new FamilySpecError('name', 'must be a non-empty string of at most 200 characters');
  }
  if (kind !== 'regression' && kind !== 'classification') throw new FamilySpecError('kind', "must be 'regression' or 'classification'");
  const inputDim = checkNumber(spec.inputDim, 'inputDim', { min: 1, max: MAX_INPUT_DIM, integer: true });
  let nWay: number | undefined;
  if (kind === 'classification') {
    if (spec.nWay === undefined) throw new FamilySpecError('nWay', 'is required for classification families');
    nWay = checkNumber(spec.nWay, 'nWay', { min: 2, max: 1000, integer: true });
  } else if (spec.nWay !== undefined) {
    throw new FamilySpecError('nWay', 'applies only to classification families');
  }
  const inputShape = spec.inputShape === undefined ? undefined : checkInputShape(spec.inputShape, inputDim);
  if (spec.rows !== undefined) {
    if (generator !== undefined || tasks !== undefined) throw new FamilySpecError('rows', 'an uploaded family has neither generator nor tasks');
    return dataset(spec.rows, { kind, inputDim, ways: nWay, name, path: 'rows', inputShape });
  }
  if ((generator === undefined) === (tasks === undefined)) {
    throw new FamilySpecError(generator === undefined ? 'generator' : 'tasks', 'exactly one of generator and tasks must be given');
  }
  if (tasks !== undefined) return dataset(tasks, { kind, inputDim, ways: nWay, name, path: 'tasks', inputShape });

  if (!isRecord(generator)) throw new FamilySpecError('generator', 'must be an object with a type');
  for (const key of Object.keys(generator)) {
    if (key !== 'type' && key !== 'params') throw new FamilySpecError(`generator.${key}`, 'unknown field; expected type and params');
  }
  const type = generator.type;
  if (typeof type !== 'string' || !(GENERATOR_TYPES as readonly string[]).includes(type)) {
    throw new FamilySpecError('generator.type', `must be one of ${GENERATOR_TYPES.join(', ')}`);
  }
  const rules = GENERATORS[type as GeneratorType];
  if (rules.kind !== kind) throw new FamilySpecError('kind', `generator '${type}' produces ${rules.kind} tasks`);
  if (rules.inputDim !== null && rules.inputDim !== inputDim) {
    throw new FamilySpecError('inputDim', `generator '${type}' has inputDim ${rules.inputDim}`);
  }
  // A generator's inputs have the shape it makes: restating it is harmless, another one is wrong.
  if (inputShape !== undefined && inputShape.join('x') !== rules.inputShape?.join('x')) {
    throw new FamilySpecError('inputShape', rules.inputShape
      ? `generator '${type}' makes [${rules.inputShape.join(', ')}] images; leave inputShape out`
      : `generator '${type}' does not make images; inputShape is for digits or for stored and uploaded image tasks`);
  }
  if (rules.maxWays !== undefined && nWay !== undefined && nWay > rules.maxWays) {
    throw new FamilySpecError('nWay', `generator '${type}' supports at most ${rules.maxWays} ways`);
  }
  return build(type as GeneratorType, generator.params, name, inputDim, nWay);
}
