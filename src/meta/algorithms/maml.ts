/**
 * MAML (Finn et al., 2017): the meta-gradient is taken through the inner loop's gradient steps
 * (second order), so the initialisation is learned for what a few steps of adaptation make of it.
 */

import { adaptToSupport } from '../inner-loop.js';
import { initModelParams } from '../model.js';
import { throughAdaptation } from './common.js';
import { TASK_KINDS } from '../types.js';
import type { EpisodicAlgorithm } from './types.js';

export const maml: EpisodicAlgorithm = {
  name: 'maml',
  kinds: TASK_KINDS,
  adaptsBody: true,
  metaTrainsHead: true,
  runsInnerSteps: true,
  trainsOn: 'episodes',
  initMetaParams: (spec, rng) => initModelParams(spec, rng),
  adapt: (spec, theta, support, inner) => adaptToSupport(spec, theta, support, { scope: 'all', ...inner }),
  metaGradient: (spec, theta, batch, inner) =>
    throughAdaptation(spec, theta, batch, (th) => maml.adapt(spec, th, batch.support, inner)),
};
