/** The algorithms by name: one typed table, so an unknown name fails in one place. */

import { anil } from './anil.js';
import { fomaml } from './fomaml.js';
import { maml } from './maml.js';
import { metasgd } from './metasgd.js';
import { protonet } from './protonet.js';
import { reptile } from './reptile.js';
import { ALGORITHM_NAMES, type AlgorithmName, type MetaAlgorithm } from './types.js';

export { ALGORITHM_NAMES, type AlgorithmName, type InnerSettings, type MetaAlgorithm, type MetaGradient } from './types.js';
export { LR_PREFIX } from './metasgd.js';

export const ALGORITHMS: Readonly<Record<AlgorithmName, MetaAlgorithm>> = { maml, fomaml, reptile, anil, metasgd, protonet };

/** The algorithm called `name`; throws a RangeError naming the valid ones otherwise. */
export function getAlgorithm(name: string): MetaAlgorithm {
  if (!(ALGORITHM_NAMES as readonly string[]).includes(name)) {
    throw new RangeError(`unknown algorithm '${name}'; expected one of ${ALGORITHM_NAMES.join(', ')}`);
  }
  return ALGORITHMS[name as AlgorithmName];
}
