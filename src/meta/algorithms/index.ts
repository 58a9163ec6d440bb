/** The algorithms by name: one typed table, so an unknown name fails in one place. */

import { anil } from './anil.js';
import { fomaml } from './fomaml.js';
import { maml } from './maml.js';
import { metasgd } from './metasgd.js';
import { multitask } from './multitask.js';
import { protonet } from './protonet.js';
import { reptile } from './reptile.js';
import { ALGORITHM_NAMES, type AlgorithmName, type MetaAlgorithm } from './types.js';

export { ALGORITHM_NAMES, POOL_PREFIX, type AlgorithmName, type EpisodicAlgorithm, type InnerSettings, type MetaAlgorithm, type MetaGradient, type PoolAlgorithm } from './types.js';
export { LR_PREFIX } from './metasgd.js';

/** Each entry keeps its own type (EpisodicAlgorithm or PoolAlgorithm), so `ALGORITHMS.maml.metaGradient` type-checks. */
export const ALGORITHMS = { maml, fomaml, reptile, anil, metasgd, protonet, multitask } as const satisfies Readonly<Record<AlgorithmName, MetaAlgorithm>>;

/** The algorithm called `name`; throws a RangeError naming the valid ones otherwise. */
export function getAlgorithm(name: string): MetaAlgorithm {
  if (!(ALGORITHM_NAMES as readonly string[]).includes(name)) {
    throw new RangeError(`unknown algorithm '${name}'; expected one of ${ALGORITHM_NAMES.join(', ')}`);
  }
  return ALGORITHMS[name as AlgorithmName] as MetaAlgorithm;
}
