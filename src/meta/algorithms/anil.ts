/**
 * ANIL, Almost No Inner Loop (Raghu et al., 2020): the inner loop adapts only the head; the body is
 * meta-learned as a shared representation. Second order through the head's inner steps.
 */

import { adaptToSupport } from '../inner-loop.js';
import { initModelParams } from '../model.js';
import { throughAdaptation } from './common.js';
import { TASK_KINDS } from '../types.js';
import type { EpisodicAlgorithm } from './types.js';

export const anil: EpisodicAlgorithm = {
  name: 'anil',
  kinds: TASK_KINDS,
  adaptsBody: false,
  metaTrainsHead: true,
  runsInnerSteps: true,
  trainsOn: 'episodes',
  initMetaParams: (spec, rng) => initModelParams(spec, rng),
  adapt: (spec, theta, support, inner) => adaptToSupport(spec, theta, support, { scope: 'head', ...inner }),
  metaGradient: (spec, theta, batch, inner) =>
    throughAdaptation(spec, theta, batch, (th) => anil.adapt(spec, th, batch.support, inner)),
};
