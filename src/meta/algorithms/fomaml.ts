/**
 * First-order MAML (Finn et al., 2017, section 5.2): adapts like MAML but ignores the second
 * derivatives: the meta-gradient is the query-loss gradient at the adapted parameters.
 */

import { adaptToSupport } from '../inner-loop.js';
import { initModelParams } from '../model.js';
import { atAdaptedParams } from './common.js';
import { TASK_KINDS } from '../types.js';
import type { EpisodicAlgorithm } from './types.js';

export const fomaml: EpisodicAlgorithm = {
  name: 'fomaml',
  kinds: TASK_KINDS,
  adaptsBody: true,
  metaTrainsHead: true,
  runsInnerSteps: true,
  trainsOn: 'episodes',
  initMetaParams: (spec, rng) => initModelParams(spec, rng),
  adapt: (spec, theta, support, inner) => adaptToSupport(spec, theta, support, { scope: 'all', ...inner }),
  metaGradient: (spec, theta, batch, inner) => atAdaptedParams(spec, theta, batch, fomaml.adapt(spec, theta, batch.support, inner)),
};
