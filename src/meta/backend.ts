/**
 * Picks the TensorFlow.js backend once per process and re-exports the one `tf` namespace every
 * engine module must use (two tfjs instances would each keep their own backend and tensor registry).
 *
 * Order for 'auto': tfjs-node-gpu > tfjs-node > wasm (SIMD, single thread) > cpu. The native
 * bindings are optionalDependencies that often fail to install, so they are loaded with a dynamic
 * `import()` and their absence is expected, not an error.
 */

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { firstLine } from '../util/error-reason.js';

export { tf };

/**
 * The values of the tensor `build` makes in a tidy scope, read after the scope rather than returned
 * from it: tf.tidy walks whatever the scope returns for tensors to keep (getTensorsInContainer), and
 * a typed array it walks entry by entry, 3.8 ms for ProtoNets' 5,121-value conv head gradient and
 * more for a whole network's.
 */
export function tidyValues(build: () => tf.Tensor): Float32Array {
  const values = tf.tidy(build);
  try {
    return values.dataSync() as Float32Array;
  } finally {
    values.dispose();
  }
}

/** A backend the engine can run on; 'auto' takes the fastest that loads here. */
export type BackendPreference = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

/** Every accepted preference, for validating configuration (TFJS_BACKEND). */
export const BACKEND_PREFERENCES: readonly BackendPreference[] = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

/** An explicitly requested backend could not be loaded (nothing is silently substituted). */
export class BackendUnavailableError extends Error {
  constructor(
    readonly preference: BackendPreference,
    readonly reason: string,
  ) {
    super(`TensorFlow.js backend '${preference}' is not available: ${reason}`);
    this.name = 'BackendUnavailableError';
  }
}

/** A backend that runs: what 'auto' resolves to, and the name initBackend reports. */
export type BackendName = Exclude<BackendPreference, 'auto'>;

const AUTO_ORDER: readonly BackendName[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

const NATIVE_PACKAGES: Record<'tensorflow-gpu' | 'tensorflow', string> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
};

let active: BackendName | null = null;
let pending: Promise<BackendName> | null = null;
let wasmConfigured = false;

/**
 * Proves that a loaded 'tensorflow' backend runs on a GPU. libtensorflow falls back to the CPU with
 * only a log line when CUDA, cuDNN or the device is missing, so 'tensorflow-gpu' is checked rather
 * than assumed: tfjs-node's NodeJSKernelBackend records which package registered it
 * (`isGPUPackage`) and whether the binding found a GPU device at context creation (TF_DeviceList),
 * the device it then places every op on (`isUsingGpuDevice`).
 *
 * @param backend - the backend instance: `tf.backend()` once 'tensorflow' is set.
 * @throws BackendUnavailableError('tensorflow-gpu') saying why it is not on a GPU.
 */
export function assertGpuBackend(backend: unknown): void {
  const report = backend as { isGPUPackage?: unknown; isUsingGpuDevice?: unknown } | null;
  let reason: string | null = null;
  if (typeof report?.isGPUPackage !== 'boolean' || typeof report.isUsingGpuDevice !== 'boolean') {
    reason = "the backend does not report its device (it is not tfjs-node's NodeJSKernelBackend)";
  } else if (!report.isGPUPackage) {
    reason = `the 'tensorflow' backend was registered by ${NATIVE_PACKAGES.tensorflow}, the CPU build`;
  } else if (!report.isUsingGpuDevice) {
    reason = 'TensorFlow found no GPU device (driver, CUDA or cuDNN missing?) and would run on the CPU';
  }
  if (reason !== null) throw new BackendUnavailableError('tensorflow-gpu', reason);
}

async function loadNative(pref: 'tensorflow-gpu' | 'tensorflow'): Promise<BackendName> {
  // The package registers the 'tensorflow' backend on the tfjs-core instance it shares with us.
  await import(NATIVE_PACKAGES[pref]);
  const previous = tf.engine().backendName;
  if (!(await tf.setBackend('tensorflow'))) throw new Error('the native binding failed to initialise');
  if (pref === 'tensorflow-gpu') {
    try {
      assertGpuBackend(tf.backend());
    } catch (err) {
      // Leave the process on the backend it had: the caller decides (auto tries the next one).
      if (previous) await tf.setBackend(previous);
      throw err;
    }
  }
  return pref;
}

async function loadWasm(): Promise<BackendName> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  if (!wasmConfigured) {
    // Under Node the emscripten loader guesses the .wasm location from its own file, which breaks
    // once a bundler or test runner moves the JS; point it at the binaries the package ships.
    const require = createRequire(import.meta.url);
    const dist = dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
    wasm.setWasmPaths(join(dist, '/'));
    // Threaded wasm needs browser-style workers and fails under Node.
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    wasmConfigured = true;
  }
  // The emscripten runtime installs process-wide handlers that rethrow every uncaught exception and
  // unhandled rejection from inside its minified bundle, so Node prints that whole file instead of
  // the error. Take them out again: the process keeps Node's own handling.
  const before = { uncaughtException: process.listeners('uncaughtException'), unhandledRejection: process.listeners('unhandledRejection') };
  try {
    if (!(await tf.setBackend('wasm'))) throw new Error('the wasm module failed to initialise');
  } finally {
    for (const listener of process.listeners('uncaughtException')) {
      if (!before.uncaughtException.includes(listener)) process.removeListener('uncaughtException', listener);
    }
    for (const listener of process.listeners('unhandledRejection')) {
      if (!before.unhandledRejection.includes(listener)) process.removeListener('unhandledRejection', listener);
    }
  }
  return 'wasm';
}

async function loadCpu(): Promise<BackendName> {
  if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend failed to initialise');
  return 'cpu';
}

async function load(pref: BackendName): Promise<BackendName> {
  if (pref === 'wasm') return loadWasm();
  if (pref === 'cpu') return loadCpu();
  return loadNative(pref);
}

async function select(preference: BackendPreference): Promise<BackendName> {
  // tfjs prints a "install tfjs-node" banner from the cpu backend; this module logs nothing itself.
  tf.env().set('PROD', true);
  if (preference !== 'auto') {
    try {
      return await load(preference);
    } catch (err) {
      throw err instanceof BackendUnavailableError ? err : new BackendUnavailableError(preference, firstLine(err));
    }
  }
  const failures: string[] = [];
  for (const pref of AUTO_ORDER) {
    try {
      return await load(pref);
    } catch (err) {
      failures.push(`${pref}: ${err instanceof BackendUnavailableError ? err.reason : firstLine(err)}`);
    }
  }
  throw new BackendUnavailableError('auto', failures.join('; '));
}

/**
 * Selects and initialises the backend; resolves to its name: the preference it satisfied
 * ('tensorflow-gpu', 'tensorflow', 'wasm' or 'cpu'; both native ones are tfjs's 'tensorflow').
 * Calling it again with 'auto' or the same preference returns the backend already active; an
 * explicit different preference switches to it (benchmarks compare backends in one process).
 *
 * @param preference - defaults to 'auto'.
 * @throws BackendUnavailableError when an explicit preference (or, for 'auto', every backend) fails.
 */
export async function initBackend(preference: BackendPreference = 'auto'): Promise<BackendName> {
  if (!BACKEND_PREFERENCES.includes(preference)) {
    throw new BackendUnavailableError(preference, `unknown backend; expected one of ${BACKEND_PREFERENCES.join(', ')}`);
  }
  // Concurrent callers share one selection so the backend is never initialised twice at once.
  while (pending) await pending.catch(() => undefined);
  if (active !== null && (preference === 'auto' || preference === active)) return active;
  pending = select(preference);
  try {
    active = await pending;
    return active;
  } finally {
    pending = null;
  }
}

/** The name of the initialised backend, or null before initBackend resolved (for /readyz). */
export function activeBackend(): BackendName | null {
  return active;
}

/**
 * The WebAssembly runtime (tfjs-wasm's, or the fused kernels') trapped or aborted: out of memory,
 * an out-of-bounds access, `Aborted(...)`. Its memory is then in an unknown state and every later
 * computation in this process may fail or, worse, be wrong (a worker whose runtime aborted failed
 * its next jobs with 'memory access out of bounds' and 'divide by zero'), so the process must not
 * compute again: the worker hands its job back and exits (see src/jobs/worker.ts).
 */
export function runtimeAborted(error: unknown): boolean {
  return error instanceof WASM_RUNTIME_ERROR;
}

// The project compiles without the DOM library, where TypeScript declares WebAssembly's values.
const WASM_RUNTIME_ERROR = (globalThis as unknown as { WebAssembly: { RuntimeError: abstract new () => Error } }).WebAssembly.RuntimeError;
