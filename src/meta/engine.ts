/**
 * Which engine runs the numbers: the fused WebAssembly SIMD kernels (src/meta/fused/, the CPU path
 * for MLP models) or tfjs on its backend (the reference, and the GPU path). One decision, reported
 * by name ('fused-wasm' or 'tfjs-<backend>') wherever speed is reported, so a benchmark row or
 * /readyz says which ran.
 */

import { activeBackend } from './backend.js';
import { fusedKernelsAvailable } from './fused/index.js';

/** 'auto': fused on CPU backends, tfjs on a GPU; or one of them explicitly. */
export type EnginePreference = 'auto' | 'fused' | 'tfjs';

export const ENGINE_PREFERENCES: readonly EnginePreference[] = ['auto', 'fused', 'tfjs'];

/** What ran: 'fused-wasm', or 'tfjs-' and the tfjs backend's name (e.g. 'tfjs-wasm', 'tfjs-tensorflow-gpu'). */
export type EngineName = 'fused-wasm' | `tfjs-${string}`;

/**
 * The engine for a preference. Every model is an MLP, so 'auto' takes the fused path unless tfjs
 * runs on a GPU (TFJS_BACKEND=tensorflow-gpu, or 'auto' found one), where batched tensor ops win,
 * or the kernels were not built (scripts/build-wasm.mjs).
 * @throws Error when 'fused' is asked for and the kernels are not built.
 */
export function chooseEngine(preference: EnginePreference = 'auto'): EngineName {
  const tfjs = `tfjs-${activeBackend() ?? 'cpu'}` as const;
  if (preference === 'tfjs') return tfjs;
  if (preference === 'fused') {
    if (!fusedKernelsAvailable()) throw new Error('the fused engine was requested but its kernels are not built: run node scripts/build-wasm.mjs');
    return 'fused-wasm';
  }
  return activeBackend() === 'tensorflow-gpu' || !fusedKernelsAvailable() ? tfjs : 'fused-wasm';
}
