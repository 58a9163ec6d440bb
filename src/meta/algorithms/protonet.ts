/**
 * Prototypical networks (Snell et al., 2017): a class is the mean of its support examples' body
 * embeddings (its prototype) and a query is classified by squared distance to the prototypes. Only
 * the body is meta-learned. Since -|e - mu_c|^2 = 2 e.mu_c - |mu_c|^2 - |e|^2 and the last term is the
 * same for every class, the adapted task is an ordinary linear head (w_c = 2 mu_c, b_c = -|mu_c|^2),
 * so prediction is the same as for every other algorithm. The inner settings are not used.
 */

import { tf } from '../backend.js';
import { embed, HEAD_BIAS, HEAD_WEIGHT, initModelParams, bodyShapes } from '../model.js';
import { throughAdaptation } from './common.js';
import type { EpisodicAlgorithm } from './types.js';

export const protonet: EpisodicAlgorithm = {
  name: 'protonet',
  kinds: ['classification'],
  adaptsBody: false,
  metaTrainsHead: false,
  runsInnerSteps: false,
  trainsOn: 'episodes',
  initMetaParams: (spec, rng) =>
    initModelParams(
      spec,
      rng,
      bodyShapes(spec).map(([name]) => name),
    ),
  adapt(spec, theta, support) {
    const embeddings = embed(spec, theta, support.x); // [T, n, D]
    const counts = tf.maximum(tf.sum(support.y, 1), 1); // [T, C]; every class has >= 1 shot in an episode
    const prototypes = tf.div(tf.matMul(support.y, embeddings, true, false), tf.expandDims(counts, 2)); // [T, C, D]
    const body = Object.fromEntries(Object.entries(theta).filter(([n]) => n.startsWith('body.')));
    return {
      ...body,
      [HEAD_WEIGHT]: tf.mul(tf.transpose(prototypes, [0, 2, 1]), 2),
      [HEAD_BIAS]: tf.expandDims(tf.neg(tf.sum(tf.square(prototypes), 2)), 1),
    };
  },
  metaGradient: (spec, theta, batch, inner) =>
    throughAdaptation(spec, theta, batch, (th) => protonet.adapt(spec, th, batch.support, inner)),
};
