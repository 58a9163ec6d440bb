/**
 * ONNX Runtime (onnxruntime-node) as the engine's runner of conv-body graphs: loading it, one
 * session per graph (built for one set of shapes and cached), and synchronous runs.
 *
 * Why the native binding directly. The engine's steps are synchronous (a meta-step is one call that
 * returns the loss, as on tfjs and the fused kernels), and onnxruntime-node's public
 * `InferenceSession.run` is only that binding's synchronous `run` wrapped in a setImmediate promise
 * (dist/backend.js). The binding is pinned with the package (1.30.0); if its layout ever differs,
 * loading fails and chooseEngine falls back to tfjs.
 *
 * Threads: one intra-op thread per session by default (a worker is one process per core, as the
 * fused kernels and tfjs-wasm assume); ORT_THREADS sets another number.
 */

import { createRequire } from 'node:module';
import { firstLine } from '../../util/error-reason.js';
import { Lru } from '../../util/lru.js';

/** The tensor class onnxruntime-node's binding reads feeds as and answers outputs in. */
export interface OrtTensor {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: Float32Array | BigInt64Array;
}

interface OrtTensorConstructor {
  new (type: 'float32', data: Float32Array, dims: readonly number[]): OrtTensor;
  new (type: 'int64', data: BigInt64Array, dims: readonly number[]): OrtTensor;
}

/** The binding's session (onnxruntime-node's src/inference_session_wrap.cc). */
interface NativeSession {
  loadModel(buffer: ArrayBufferLike, byteOffset: number, byteLength: number, options: Record<string, unknown>): void;
  run(feeds: Record<string, OrtTensor>, fetches: Record<string, OrtTensor | null>, options: Record<string, unknown>): Record<string, OrtTensor>;
  dispose(): void;
}

interface Runtime {
  Tensor: OrtTensorConstructor;
  Session: new () => NativeSession;
  version: string;
}

let runtime: Runtime | null | undefined;
let loadError = '';

/** Loads onnxruntime-node once; null (with the reason in ortUnavailableReason) when it does not load here. */
function load(): Runtime | null {
  if (runtime !== undefined) return runtime;
  try {
    const require = createRequire(import.meta.url);
    const ort = require('onnxruntime-node') as { Tensor: OrtTensorConstructor; env: { versions?: { common?: string } } };
    const native = require('onnxruntime-node/dist/binding.js') as { binding: { InferenceSession: new () => NativeSession }; initOrt: () => void };
    native.initOrt();
    runtime = { Tensor: ort.Tensor, Session: native.binding.InferenceSession, version: ort.env.versions?.common ?? 'unknown' };
  } catch (err) {
    loadError = firstLine(err);
    runtime = null;
  }
  return runtime;
}

/** Whether onnxruntime-node loads in this process (chooseEngine asks). */
export function ortAvailable(): boolean {
  return load() !== null;
}

/** Why onnxruntime-node did not load ('' when it did). */
export function ortUnavailableReason(): string {
  load();
  return loadError;
}

/** The onnxruntime version in use, or null when it does not load. */
export function ortVersion(): string | null {
  return load()?.version ?? null;
}

/**
 * Intra-op threads per session: ORT_THREADS (a positive integer), else 1.
 * @throws RangeError for an ORT_THREADS that is not a positive integer.
 */
export function ortThreads(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.ORT_THREADS;
  if (raw === undefined || raw === '') return 1;
  const threads = Number(raw);
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`ORT_THREADS must be a positive integer, got '${raw}'`);
  return threads;
}

/** A float32 tensor for feeds. */
export function floatInput(data: Float32Array, dims: readonly number[]): OrtTensor {
  return new (need().Tensor)('float32', data, dims);
}

function need(): Runtime {
  const rt = load();
  if (!rt) throw new Error(`onnxruntime-node is not available: ${loadError}`);
  return rt;
}

/** A loaded graph: run it on named inputs, asking only for the outputs needed. */
export class OrtGraph {
  private readonly session: NativeSession;

  constructor(model: Uint8Array) {
    const rt = need();
    this.session = new rt.Session();
    this.session.loadModel(model.buffer, model.byteOffset, model.byteLength, {
      intraOpNumThreads: ortThreads(),
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
  }

  /** Runs the graph; answers the outputs named in `outputs`, their data owned by the caller. */
  run(feeds: Record<string, OrtTensor>, outputs: readonly string[]): Record<string, OrtTensor> {
    return this.session.run(feeds, Object.fromEntries(outputs.map((name) => [name, null])), {});
  }

  dispose(): void {
    this.session.dispose();
  }
}

/**
 * Sessions by graph key (the body's architecture, the batch size, forward or backward). A worker
 * sees a handful of (model, batch size) pairs; an evicted session's native memory is freed when it
 * is collected (the binding's finalizer), so eviction needs no dispose.
 */
const sessions = new Lru<string, OrtGraph>({ maxEntries: 32 });

/** The session for `key`, built by `build` the first time it is asked for. */
export function cachedGraph(key: string, build: () => Uint8Array): OrtGraph {
  let graph = sessions.get(key);
  if (!graph) {
    graph = new OrtGraph(build());
    sessions.set(key, graph);
  }
  return graph;
}
