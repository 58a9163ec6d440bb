import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { activeBackend, assertGpuBackend, BackendUnavailableError, initBackend, tf } from '../../../src/meta/backend.js';

function resolvable(pkg: string): boolean {
  try {
    createRequire(import.meta.url).resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

const nativeInstalled = resolvable('@tensorflow/tfjs-node') || resolvable('@tensorflow/tfjs-node-gpu');

// One file, one process: the tests run in order and share the selected backend, as the service does.
describe('initBackend', () => {
  it('has no backend before initialisation', () => {
    expect(activeBackend()).toBeNull();
  });

  it.skipIf(nativeInstalled)('auto picks wasm when tfjs-node is absent, and computes on it', async () => {
    const listeners = () => [process.listenerCount('uncaughtException'), process.listenerCount('unhandledRejection')];
    const before = listeners();
    await expect(initBackend()).resolves.toBe('wasm');
    // The emscripten runtime's rethrowing process handlers are removed: errors keep Node's handling.
    expect(listeners()).toEqual(before);
    expect(activeBackend()).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    const y = tf.tidy(() => tf.tensor2d([[1, 2], [3, 4]]).matMul(tf.tensor2d([[1], [1]])));
    expect(Array.from(await y.data())).toEqual([3, 7]);
    y.dispose();
  });

  it('is idempotent: a second auto call keeps the same backend', async () => {
    const first = await initBackend('auto');
    const [a, b] = await Promise.all([initBackend(), initBackend('auto')]);
    expect([a, b]).toEqual([first, first]);
    expect(tf.getBackend()).toBe(first);
  });

  it('honours an explicit override and reports it', async () => {
    await expect(initBackend('cpu')).resolves.toBe('cpu');
    expect(activeBackend()).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    // 'auto' after an override keeps what was chosen rather than re-selecting.
    await expect(initBackend()).resolves.toBe('cpu');
    await expect(initBackend('wasm')).resolves.toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });

  it.skipIf(nativeInstalled)('fails clearly on an unavailable backend instead of falling back', async () => {
    const err = await initBackend('tensorflow').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as BackendUnavailableError).message).toMatch(/'tensorflow' is not available: .*tfjs-node/);
    expect(activeBackend()).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
  });

  it('rejects an unknown preference by name', async () => {
    // Configuration arrives as a string; a typo must not be taken for 'auto'.
    await expect(initBackend('webgpu' as never)).rejects.toThrow(/'webgpu' is not available: unknown backend/);
  });
});

// tfjs-node-gpu is not installed here, so the check runs on backends shaped like what it registers:
// tfjs-node's NodeJSKernelBackend carries `isGPUPackage` and `isUsingGpuDevice`.
describe('assertGpuBackend', () => {
  const reasonOf = (backend: unknown): string | null => {
    try {
      assertGpuBackend(backend);
      return null;
    } catch (err) {
      expect(err).toBeInstanceOf(BackendUnavailableError);
      expect((err as BackendUnavailableError).preference).toBe('tensorflow-gpu');
      return (err as BackendUnavailableError).reason;
    }
  };

  it('accepts the GPU build when TensorFlow found a GPU device', () => {
    expect(reasonOf({ isGPUPackage: true, isUsingGpuDevice: true })).toBeNull();
  });

  it('refuses the GPU build that fell back to the CPU, saying so', () => {
    expect(reasonOf({ isGPUPackage: true, isUsingGpuDevice: false })).toMatch(/no GPU device/);
  });

  it("refuses tfjs-node's CPU build even where a GPU exists", () => {
    expect(reasonOf({ isGPUPackage: false, isUsingGpuDevice: false })).toMatch(/@tensorflow\/tfjs-node, the CPU build/);
  });

  it('refuses a backend that does not report its device', async () => {
    await initBackend('cpu');
    expect(reasonOf(tf.backend())).toMatch(/does not report its device/);
    expect(reasonOf(null)).toMatch(/does not report its device/);
  });
});
