#!/usr/bin/env node
// Compiles the fused engine's AssemblyScript kernels (src/meta/fused/assembly/) to
// src/meta/fused/kernels.wasm (gitignored), with the assemblyscript compiler from node_modules: no
// download. Skips the build when the .wasm is newer than every source; `--force` rebuilds.
// Exported as a function too: scripts/setup.mjs runs it, so a fresh clone builds it on `npm test`.
//
// Environment: ASC (optional) names an asc executable to use instead of node_modules/.bin/asc.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = join(import.meta.dirname, '..');
export const SOURCE_DIR = join(ROOT, 'src', 'meta', 'fused', 'assembly');
export const ENTRY = join(SOURCE_DIR, 'kernels.ts');
export const OUTPUT = join(ROOT, 'src', 'meta', 'fused', 'kernels.wasm');

/** Whether the .wasm is missing or older than one of its sources (or this script). */
export function wasmIsStale() {
  if (!existsSync(OUTPUT)) return true;
  const built = statSync(OUTPUT).mtimeMs;
  const sources = [...readdirSync(SOURCE_DIR).map((name) => join(SOURCE_DIR, name)), import.meta.filename];
  return sources.some((file) => statSync(file).mtimeMs > built);
}

function compiler() {
  if (process.env.ASC) return process.env.ASC;
  const local = join(ROOT, 'node_modules', '.bin', 'asc');
  if (existsSync(local)) return local;
  throw new Error('the AssemblyScript compiler is not installed (node_modules/.bin/asc): run npm ci');
}

/**
 * Builds the kernels when stale (or always with `force`). Returns true when it compiled.
 * Flags: -O3 and no runtime checks (the JS wrapper validates every size before calling), the stub
 * runtime (a bump allocator: the kernels allocate once at set-up and never free), SIMD on.
 */
export function buildWasm({ force = false } = {}) {
  if (!force && !wasmIsStale()) return false;
  const args = [ENTRY, '-O3', '--noAssert', '--runtime', 'stub', '--enable', 'simd', '--outFile', OUTPUT];
  // Its output goes to stderr: setup's callers keep stdout for their own (see setup.mjs).
  const result = spawnSync(compiler(), args, { cwd: ROOT, stdio: ['ignore', 2, 'inherit'] });
  if (result.error) throw new Error(`asc could not start: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`asc exited with ${result.status}`);
  return true;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    const built = buildWasm({ force: process.argv.includes('--force') });
    console.log(built ? `build-wasm: wrote ${OUTPUT}` : 'build-wasm: kernels.wasm is current');
  } catch (error) {
    console.error(`build-wasm: FAILED ${error.message}`);
    process.exitCode = 1;
  }
}
