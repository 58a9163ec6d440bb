/**
 * Multi-task meta-learning: a family that draws each episode's family by weight. The members must
 * agree on what a model sees and predicts (kind, inputDim and, for classification, ways), because
 * one meta-model serves them all.
 */

import type { Rng } from '../rng.js';
import type { Episode, EpisodeShape, Split, TaskFamily, TaskPool } from '../types.js';

/** The families given to mix() cannot be combined; `index` names the offending entry. */
export class FamilyMixError extends Error {
  constructor(
    readonly index: number,
    message: string,
  ) {
    super(message);
    this.name = 'FamilyMixError';
  }
}

export interface WeightedFamily {
  family: TaskFamily;
  /** Relative probability of drawing this family (> 0). */
  weight: number;
}

/**
 * A family drawing each episode from one of `entries`, chosen with probability proportional to its
 * weight. Throws FamilyMixError when members disagree on kind, inputDim or ways, or a weight is bad.
 */
export function mix(entries: readonly WeightedFamily[], name?: string): TaskFamily {
  if (entries.length === 0) throw new FamilyMixError(0, 'mix needs at least one family');
  const first = entries[0].family;
  entries.forEach(({ family, weight }, i) => {
    if (!Number.isFinite(weight) || weight <= 0) {
      throw new FamilyMixError(i, `family '${family.name}' has weight ${weight}; weights must be finite and > 0`);
    }
    if (family.kind !== first.kind) {
      throw new FamilyMixError(i, `family '${family.name}' is ${family.kind} but '${first.name}' is ${first.kind}; mixed families must share a kind`);
    }
    if (family.inputDim !== first.inputDim) {
      throw new FamilyMixError(i, `family '${family.name}' has inputDim ${family.inputDim} but '${first.name}' has ${first.inputDim}; mixed families must share inputDim`);
    }
    if (family.ways !== first.ways) {
      throw new FamilyMixError(i, `family '${family.name}' has ${family.ways} ways but '${first.name}' has ${first.ways}; mixed classification families must share ways`);
    }
  });
  const total = entries.reduce((sum, e) => sum + e.weight, 0);
  const mixed: TaskFamily = {
    name: name ?? `mix(${entries.map((e) => e.family.name).join(', ')})`,
    kind: first.kind,
    inputDim: first.inputDim,
    sampleEpisode(rng: Rng, split: Split, shape: EpisodeShape): Episode {
      let u = rng.next() * total;
      for (const entry of entries) {
        u -= entry.weight;
        if (u < 0) return entry.family.sampleEpisode(rng, split, shape);
      }
      // Rounding can leave u at a hair above zero after the last entry.
      return entries[entries.length - 1].family.sampleEpisode(rng, split, shape);
    },
  };
  if (entries.every((e) => e.family.trainingPool)) mixed.trainingPool = (rng, size) => concatPools(entries.map((e) => e.family.trainingPool!(rng, Math.max(1, Math.round((size * e.weight) / total)))));
  // Images only where every member has the same shape (an MLP may mix inputs of other shapes).
  const shape = first.inputShape;
  const sameShape = shape !== undefined && entries.every((e) => e.family.inputShape?.join('x') === shape.join('x'));
  return { ...mixed, ...(first.ways === undefined ? {} : { ways: first.ways }), ...(sameShape ? { inputShape: shape } : {}) };
}

/** The members' pools one after another (a generator's share of the size follows its weight). */
function concatPools(pools: TaskPool[]): TaskPool {
  const owner: Array<[TaskPool, number]> = pools.flatMap((pool) => pool.outputs.map((_, t): [TaskPool, number] => [pool, t]));
  return {
    outputs: pools.flatMap((pool) => pool.outputs),
    examples: (t, rng, n) => owner[t][0].examples(owner[t][1], rng, n),
  };
}
