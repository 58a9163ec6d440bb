/**
 * Loads the fused kernels (kernels.wasm, built from assembly/kernels.ts by scripts/build-wasm.mjs)
 * and owns one instance per model shape: its linear memory holds the scratch the kernels use and
 * the buffers this side fills (parameters, examples, gradients), allocated once and reused.
 */

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ModelSpec } from '../model.js';

/** The WebAssembly JS API as used here (the project's TypeScript lib has no WebAssembly typings). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { exports: unknown };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** The module's exports; pointers are byte offsets into `memory`, sizes are float counts. */
interface Exports {
  memory: { buffer: ArrayBuffer };
  alloc(bytes: number): number;
  configure(widths: number, count: number, activation: number, loss: number, rows: number): number;
  lossGradient(p: number, x: number, y: number, n: number, firstLayer: number, g: number): number;
  lossOnly(p: number, x: number, y: number, n: number, firstLayer: number): number;
  lastCorrect(): number;
  embed(p: number, x: number, n: number, out: number): void;
  hessianVector(p: number, v: number, x: number, y: number, n: number, g: number, hv: number, directed: number): number;
  prototypeHead(p: number, x: number, y: number, n: number): void;
  prototypeTask(p: number, xs: number, ys: number, ns: number, xq: number, yq: number, nq: number, g: number, gHead: number): number;
  step(dst: number, a: number, s: number, b: number, len: number): void;
  stepPerParameter(dst: number, a: number, rate: number, b: number, len: number): void;
  multiply(dst: number, a: number, b: number, len: number): void;
  subtractProduct(dst: number, a: number, b: number, len: number): void;
  zero(dst: number, len: number): void;
  copy(dst: number, src: number, len: number): void;
}

const WASM_FILE = fileURLToPath(new URL('./kernels.wasm', import.meta.url));

let compiled: object | null = null;

/** Whether the kernels have been built (scripts/build-wasm.mjs; setup runs it). */
export function fusedKernelsAvailable(): boolean {
  return compiled !== null || existsSync(WASM_FILE);
}

function wasmModule(): object {
  if (!compiled) {
    if (!existsSync(WASM_FILE)) throw new Error(`fused kernels not built (${WASM_FILE} is missing): run node scripts/build-wasm.mjs`);
    compiled = new wasm.Module(readFileSync(WASM_FILE));
  }
  return compiled;
}

/** One model shape's kernels and memory. Not safe to share between concurrent callers (none exist: JS is single-threaded). */
export class FusedModel {
  readonly kernels: Exports;
  /** Parameters in one model parameter vector. */
  readonly size: number;
  /** Dense layers (hidden layers and the head). */
  readonly layers: number;
  /** The most rows (examples of one task) a pass may see. */
  readonly rows: number;
  private readonly buffers = new Map<string, { ptr: number; floats: number }>();

  constructor(
    readonly spec: ModelSpec,
    rows: number,
  ) {
    const instance = new wasm.Instance(wasmModule(), {
      env: {
        abort: () => {
          throw new Error('fused kernel aborted');
        },
      },
    });
    this.kernels = instance.exports as unknown as Exports;
    const widths = [spec.inputDim, ...spec.hidden, spec.outputDim];
    const at = this.kernels.alloc(widths.length * 4);
    new Int32Array(this.kernels.memory.buffer, at, widths.length).set(widths);
    this.rows = rows;
    this.layers = widths.length - 1;
    this.size = this.kernels.configure(at, widths.length, spec.activation === 'relu' ? 0 : 1, spec.kind === 'regression' ? 0 : 1, rows);
  }

  /**
   * A named buffer of at least `floats` floats, reused across calls (grown, never shrunk: the
   * bump allocator cannot free, so a larger request allocates anew and doubles).
   */
  buffer(name: string, floats: number): number {
    const known = this.buffers.get(name);
    if (known && known.floats >= floats) return known.ptr;
    const size = Math.max(floats, (known?.floats ?? 0) * 2, 4);
    const ptr = this.kernels.alloc(size * 4);
    this.buffers.set(name, { ptr, floats: size });
    return ptr;
  }

  /** A view of `floats` floats at `ptr` (made afresh: memory growth detaches older views). */
  view(ptr: number, floats: number): Float32Array {
    return new Float32Array(this.kernels.memory.buffer, ptr, floats);
  }

  /** Copies `data` into the named buffer; returns its pointer. */
  upload(name: string, data: Float32Array): number {
    const ptr = this.buffer(name, data.length);
    this.view(ptr, data.length).set(data);
    return ptr;
  }
}

const MAX_MODELS = 8;
const models = new Map<string, FusedModel>();

/**
 * The kernels for a model shape with room for `rows` examples per pass, from a small cache (the
 * least recently used shape is dropped beyond MAX_MODELS).
 */
export function fusedModel(spec: ModelSpec, rows: number): FusedModel {
  const key = `${spec.kind}:${spec.activation}:${[spec.inputDim, ...spec.hidden, spec.outputDim].join('-')}`;
  let model = models.get(key);
  if (model) models.delete(key);
  if (!model || model.rows < rows) model = new FusedModel(spec, Math.max(rows, model ? model.rows * 2 : 0));
  models.set(key, model);
  if (models.size > MAX_MODELS) models.delete(models.keys().next().value as string);
  return model;
}
