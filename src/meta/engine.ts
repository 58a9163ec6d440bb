/**
 * Which engine runs the numbers: the fused WebAssembly SIMD kernels (src/meta/fused/, the CPU path
 * for MLP models), ONNX Runtime (src/meta/ort/, the CPU path for conv bodies) or tfjs on its backend
 * (the reference, the GPU path, and every path the others do not cover). One decision, reported by
 * name ('fused-wasm', 'onnxruntime' or 'tfjs-<backend>') wherever speed is reported, so a benchmark
 * row, a job or /readyz says which ran.
 */

import { activeBackend } from './backend.js';
import type { AlgorithmName } from './algorithms/index.js';
import type { BodyKind } from './model.js';
import { fusedKernelsAvailable, fusedSupports } from './fused/index.js';
import { ortAvailable, ortSupports, ortUnavailableReason } from './ort/index.js';

/** 'auto': fused or ONNX Runtime on CPU backends, tfjs on a GPU; or one of them explicitly. */
export type EnginePreference = 'auto' | 'fused' | 'ort' | 'tfjs';

export const ENGINE_PREFERENCES: readonly EnginePreference[] = ['auto', 'fused', 'ort', 'tfjs'];

/** What ran: 'fused-wasm', 'onnxruntime', or 'tfjs-' and the tfjs backend's name (e.g. 'tfjs-wasm', 'tfjs-tensorflow-gpu'). */
export type EngineName = 'fused-wasm' | 'onnxruntime' | `tfjs-${string}`;

/**
 * The engine for a preference (and, when given, an algorithm and a body). 'auto' takes tfjs when it
 * runs on a GPU (TFJS_BACKEND=tensorflow-gpu), where batched tensor ops win; otherwise, for an MLP,
 * the fused kernels when they are built (scripts/build-wasm.mjs) and have the algorithm; for a conv
 * body, ONNX Runtime when onnxruntime-node loads and the algorithm needs only first-order derivatives
 * of the body (ortSupports; without an algorithm, for serving, adaptation and evaluation, any). tfjs
 * takes everything else: second-order MAML and Meta-SGD through a conv body among them.
 * @throws Error when 'fused' or 'ort' is asked for and cannot run the algorithm or body here.
 */
export function chooseEngine(preference: EnginePreference = 'auto', algorithm?: AlgorithmName, body: BodyKind = 'mlp'): EngineName {
  const tfjs = `tfjs-${activeBackend() ?? 'cpu'}` as const;
  if (preference === 'tfjs') return tfjs;
  const fused = (algorithm === undefined || fusedSupports(algorithm)) && body === 'mlp';
  const ort = ortSupports(algorithm) && body === 'conv';
  if (preference === 'fused') {
    if (!fusedKernelsAvailable()) throw new Error('the fused engine was requested but its kernels are not built: run node scripts/build-wasm.mjs');
    if (!fused) throw new Error(body === 'mlp' ? `the fused engine has no version of algorithm '${algorithm}'` : `the fused engine runs MLP bodies only, not '${body}'`);
    return 'fused-wasm';
  }
  if (preference === 'ort') {
    if (!ortAvailable()) throw new Error(`the ONNX Runtime engine was requested but onnxruntime-node does not load: ${ortUnavailableReason()}`);
    if (!ort) throw new Error(body === 'conv' ? `the ONNX Runtime engine has no version of algorithm '${algorithm}' (it runs algorithms whose meta-gradient needs only first-order derivatives of the body)` : `the ONNX Runtime engine runs conv bodies only, not '${body}'`);
    return 'onnxruntime';
  }
  if (activeBackend() === 'tensorflow-gpu') return tfjs;
  if (fused && fusedKernelsAvailable()) return 'fused-wasm';
  if (ort && ortAvailable()) return 'onnxruntime';
  return tfjs;
}
