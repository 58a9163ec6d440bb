/** The cases the fused-path tests iterate: every algorithm, kind, activation, 1 and 3 inner steps. */

import { ALGORITHM_NAMES, ALGORITHMS, type AlgorithmName, type InnerSettings } from '../../../../src/meta/algorithms/index.js';
import { fusedSupports } from '../../../../src/meta/fused/index.js';
import { initMetaParams } from '../../../../src/meta/learner.js';
import { ACTIVATIONS, type Activation, type ModelSpec, type ParamArrays } from '../../../../src/meta/model.js';
import { Rng } from '../../../../src/meta/rng.js';
import type { EpisodeBatch, TaskKind } from '../../../../src/meta/types.js';
import { classificationProblem, regressionProblem } from '../helpers.js';

export interface FusedCase {
  algorithm: AlgorithmName;
  kind: TaskKind;
  activation: Activation;
  steps: number;
}

/** Every algorithm, each kind it supports, both activations, 1 and 3 inner steps. */
export const CASES: FusedCase[] = ALGORITHM_NAMES.filter(fusedSupports).flatMap((algorithm) =>
  ALGORITHMS[algorithm].kinds.flatMap((kind) => ACTIVATIONS.flatMap((activation) => [1, 3].map((steps) => ({ algorithm, kind, activation, steps })))),
);

export interface Problem {
  spec: ModelSpec;
  batch: EpisodeBatch;
  inner: InnerSettings;
  params: ParamArrays;
}

/** A small problem of a case's kind, with meta-parameters drawn from the algorithm's own initialisation. */
export function problem(c: FusedCase, seed = 3, hidden: number[] = [8, 6]): Problem {
  const config = { hidden, activation: c.activation };
  const { spec, batch } = c.kind === 'regression' ? regressionProblem(seed, config) : classificationProblem(seed, config);
  const inner = { steps: c.steps, lr: c.kind === 'regression' ? 0.05 : 0.4 };
  const params = initMetaParams({ algorithm: c.algorithm, spec, inner, metaLr: 0.001 }, new Rng(seed + 100));
  return { spec, batch, inner, params };
}

export const label = (c: FusedCase): string => `${c.algorithm} ${c.kind} ${c.activation} ${c.steps} step${c.steps > 1 ? 's' : ''}`;
