/**
 * Meta-SGD (Li et al., 2017): like MAML, but every parameter has its own inner-loop step size,
 * stored as the meta-parameter `lr.<name>` (same shape, initialised to the configured inner lr) and
 * meta-learned with the initialisation. Adaptation uses the learned rates, not a configured one.
 */

import { adaptToSupport } from '../inner-loop.js';
import { initModelParams, type NamedTensors, type ParamArrays } from '../model.js';
import { modelPart, throughAdaptation } from './common.js';
import { TASK_KINDS } from '../types.js';
import type { EpisodicAlgorithm } from './types.js';

/** The meta-parameter holding a parameter's learned inner step size. */
export const LR_PREFIX = 'lr.';

function learnedRates(theta: NamedTensors): NamedTensors {
  const rates: NamedTensors = {};
  for (const [name, t] of Object.entries(theta)) if (name.startsWith(LR_PREFIX)) rates[name.slice(LR_PREFIX.length)] = t;
  return rates;
}

export const metasgd: EpisodicAlgorithm = {
  name: 'metasgd',
  kinds: TASK_KINDS,
  adaptsBody: true,
  metaTrainsHead: true,
  runsInnerSteps: true,
  trainsOn: 'episodes',
  initMetaParams(spec, rng, inner) {
    const params = initModelParams(spec, rng);
    const rates: ParamArrays = {};
    for (const [name, { shape, data }] of Object.entries(params)) {
      rates[LR_PREFIX + name] = { shape: [...shape], data: new Float32Array(data.length).fill(inner.lr) };
    }
    return { ...params, ...rates };
  },
  adapt: (spec, theta, support, inner) =>
    adaptToSupport(spec, modelPart(theta), support, { scope: 'all', steps: inner.steps, lr: learnedRates(theta), monitor: inner.monitor }),
  metaGradient: (spec, theta, batch, inner) =>
    throughAdaptation(spec, theta, batch, (th) => metasgd.adapt(spec, th, batch.support, inner)),
};
