/**
 * Which engine runs the numbers: the fused WebAssembly SIMD kernels (src/meta/fused/, the CPU path
 * for MLP models) or tfjs on its backend (the reference, and the GPU path). One decision, reported
 * by name ('fused-wasm' or 'tfjs-<backend>') wherever speed is reported, so a benchmark row or
 * /readyz says which ran.
 */

import { activeBackend } from './backend.js';
import type { AlgorithmName } from './algorithms/index.js';
import type { BodyKind } from './model.js';
import { fusedKernelsAvailable, fusedSupports } from './fused/index.js';

/** 'auto': fused on CPU backends, tfjs on a GPU; or one of them explicitly. */
export type EnginePreference = 'auto' | 'fused' | 'tfjs';

export const ENGINE_PREFERENCES: readonly EnginePreference[] = ['auto', 'fused', 'tfjs'];

/** What ran: 'fused-wasm', or 'tfjs-' and the tfjs backend's name (e.g. 'tfjs-wasm', 'tfjs-tensorflow-gpu'). */
export type EngineName = 'fused-wasm' | `tfjs-${string}`;

/**
 * The engine for a preference (and, when given, an algorithm and a body). 'auto' takes the fused path
 * for an MLP unless tfjs runs on a GPU (TFJS_BACKEND=tensorflow-gpu), where batched tensor ops win,
 * the kernels were not built (scripts/build-wasm.mjs), or the algorithm has no fused version. A conv
 * body always runs on tfjs: the fused kernels are MLP kernels, and convolutions are large enough ops
 * that tfjs' per-kernel dispatch, which the fused path exists to avoid, does not dominate.
 * @throws Error when 'fused' is asked for and the kernels are not built or lack the algorithm or body.
 */
export function chooseEngine(preference: EnginePreference = 'auto', algorithm?: AlgorithmName, body: BodyKind = 'mlp'): EngineName {
  const tfjs = `tfjs-${activeBackend() ?? 'cpu'}` as const;
  if (preference === 'tfjs') return tfjs;
  const supported = (algorithm === undefined || fusedSupports(algorithm)) && body === 'mlp';
  if (preference === 'fused') {
    if (!fusedKernelsAvailable()) throw new Error('the fused engine was requested but its kernels are not built: run node scripts/build-wasm.mjs');
    if (!supported) throw new Error(body === 'mlp' ? `the fused engine has no version of algorithm '${algorithm}'` : `the fused engine runs MLP bodies only, not '${body}'`);
    return 'fused-wasm';
  }
  return activeBackend() === 'tensorflow-gpu' || !fusedKernelsAvailable() || !supported ? tfjs : 'fused-wasm';
}
