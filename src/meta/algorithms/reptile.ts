/**
 * Reptile (Nichol et al., 2018): adapt each task with the inner loop, then move the initialisation
 * towards the adapted parameters. The outer optimiser receives theta - mean(phi) as its gradient.
 * The reported loss is the post-adaptation query loss, as for the other algorithms.
 */

import { tf } from '../backend.js';
import { adaptToSupport, lossOn } from '../inner-loop.js';
import { initModelParams } from '../model.js';
import { TASK_KINDS } from '../types.js';
import type { EpisodicAlgorithm } from './types.js';

export const reptile: EpisodicAlgorithm = {
  name: 'reptile',
  kinds: TASK_KINDS,
  adaptsBody: true,
  metaTrainsHead: true,
  runsInnerSteps: true,
  trainsOn: 'episodes',
  initMetaParams: (spec, rng) => initModelParams(spec, rng),
  adapt: (spec, theta, support, inner) => adaptToSupport(spec, theta, support, { scope: 'all', ...inner }),
  metaGradient(spec, theta, batch, inner) {
    const adapted = reptile.adapt(spec, theta, batch.support, inner);
    const grads = Object.fromEntries(
      Object.entries(theta).map(([name, p]) => [name, tf.sub(p, tf.reshape(tf.mean(adapted[name], 0), p.shape))]),
    );
    return { loss: tf.mean(lossOn(spec, adapted, batch.query)), grads };
  },
};
