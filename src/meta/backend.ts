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

export { tf };

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

type ConcretePreference = Exclude<BackendPreference, 'auto'>;

const AUTO_ORDER: readonly ConcretePreference[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

const NATIVE_PACKAGES: Record<'tensorflow-gpu' | 'tensorflow', string> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
};

let active: string | null = null;
let activePreference: ConcretePreference | null = null;
let pending: Promise<string> | null = null;
let wasmConfigured = false;

function errorText(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0];
}

async function loadNative(pref: 'tensorflow-gpu' | 'tensorflow'): Promise<string> {
  // The package registers the 'tensorflow' backend on the tfjs-core instance it shares with us.
  await import(NATIVE_PACKAGES[pref]);
  if (!(await tf.setBackend('tensorflow'))) throw new Error('the native binding failed to initialise');
  return 'tensorflow';
}

async function loadWasm(): Promise<string> {
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

async function loadCpu(): Promise<string> {
  if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend failed to initialise');
  return 'cpu';
}

async function load(pref: ConcretePreference): Promise<string> {
  if (pref === 'wasm') return loadWasm();
  if (pref === 'cpu') return loadCpu();
  return loadNative(pref);
}

async function select(preference: BackendPreference): Promise<string> {
  // tfjs prints a "install tfjs-node" banner from the cpu backend; this module logs nothing itself.
  tf.env().set('PROD', true);
  if (preference !== 'auto') {
    try {
      const name = await load(preference);
      activePreference = preference;
      return name;
    } catch (err) {
      throw new BackendUnavailableError(preference, errorText(err));
    }
  }
  const failures: string[] = [];
  for (const pref of AUTO_ORDER) {
    try {
      const name = await load(pref);
      activePreference = pref;
      return name;
    } catch (err) {
      failures.push(`${pref}: ${errorText(err)}`);
    }
  }
  throw new BackendUnavailableError('auto', failures.join('; '));
}

/**
 * Selects and initialises the backend; resolves to its name ('tensorflow', 'wasm' or 'cpu').
 * Calling it again with 'auto' or the same preference returns the backend already active; an
 * explicit different preference switches to it (benchmarks compare backends in one process).
 *
 * @param preference - defaults to 'auto'.
 * @throws BackendUnavailableError when an explicit preference (or, for 'auto', every backend) fails.
 */
export async function initBackend(preference: BackendPreference = 'auto'): Promise<string> {
  if (!BACKEND_PREFERENCES.includes(preference)) {
    throw new BackendUnavailableError(preference, `unknown backend; expected one of ${BACKEND_PREFERENCES.join(', ')}`);
  }
  // Concurrent callers share one selection so the backend is never initialised twice at once.
  while (pending) await pending.catch(() => undefined);
  if (active !== null && (preference === 'auto' || preference === activePreference)) return active;
  pending = select(preference);
  try {
    active = await pending;
    return active;
  } finally {
    pending = null;
  }
}

/** The name of the initialised backend, or null before initBackend resolved (for /readyz). */
export function activeBackend(): string | null {
  return active;
}

/** The concrete preference that loaded ('tensorflow-gpu' and 'tensorflow' share the name 'tensorflow'), or null. */
export function activeBackendPreference(): BackendPreference | null {
  return activePreference;
}
