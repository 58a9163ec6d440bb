/**
 * scripts/docker-prune.mjs (the Dockerfile's production-tree pruning) on a synthetic install: a
 * lockfile plus the node_modules folders it describes, in a temporary directory.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

const SCRIPT = join(import.meta.dirname, '..', '..', 'scripts', 'docker-prune.mjs');

type Entry = Record<string, unknown>;

/** The shape of this project: prod deps, a Prisma-like optional peer CLI, two optional bindings. */
const PACKAGES: Record<string, Entry> = {
  '': {
    dependencies: { app: '1' },
    optionalDependencies: { 'bind-cpu': '1', 'bind-gpu': '1' },
    devDependencies: { cli: '1', devtool: '1' },
  },
  'node_modules/app': {
    dependencies: { shared: '1', old: '^1' },
    peerDependencies: { needed: '*', cli: '*' },
    peerDependenciesMeta: { cli: { optional: true } },
  },
  'node_modules/app/node_modules/old': { version: '1.0.0' }, // app's own copy
  'node_modules/old': { version: '2.0.0', devOptional: true }, // the hoisted copy only devtool uses
  'node_modules/shared': { optionalDependencies: { 'shared-native': '1' } },
  'node_modules/needed': {},
  'node_modules/cli': { devOptional: true, dependencies: { 'cli-ui': '1' } },
  'node_modules/cli-ui': { devOptional: true },
  'node_modules/devtool': { dev: true, dependencies: { old: '2' } },
  'node_modules/bind-cpu': { optional: true, dependencies: { protobuf: '1', shared: '1' } },
  'node_modules/protobuf': { optional: true },
  'node_modules/bind-gpu': { optional: true, dependencies: { 'gpu-only': '1' } },
  'node_modules/gpu-only': { optional: true },
};

/** Every platform's binaries, this machine's among them. */
const HERE = `${process.platform}/${process.arch}`;
const BINARIES = [...new Set([HERE, 'linux/x64', 'linux/arm64', 'darwin/arm64', 'win32/x64'])];

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** Lays out the install (every package but `missing`) and runs the script there. */
function prune(args: string[], missing: string[] = []) {
  dir = mkdtempSync(join(tmpdir(), 'docker-prune-'));
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify({ lockfileVersion: 3, packages: PACKAGES }));
  for (const path of Object.keys(PACKAGES)) {
    if (path === '' || missing.includes(path)) continue;
    mkdirSync(join(dir, path), { recursive: true });
    writeFileSync(join(dir, path, 'package.json'), '{}');
  }
  // `app` ships prebuilt binaries the way onnxruntime-node does: bin/napi-v6/<platform>/<arch>/.
  for (const target of BINARIES) {
    mkdirSync(join(dir, 'node_modules/app/bin/napi-v6', target), { recursive: true });
    writeFileSync(join(dir, 'node_modules/app/bin/napi-v6', target, 'binding.node'), '');
  }
  const result = spawnSync(process.execPath, [SCRIPT, ...args], { cwd: dir, encoding: 'utf8' });
  const present = Object.keys(PACKAGES).filter((path) => path !== '' && existsSync(join(dir!, path)));
  return { ...result, present };
}

describe('docker-prune', () => {
  it('keeps the production closure plus the named binding, removes dev, optional-peer and the other binding', () => {
    const { status, stdout, present } = prune(['bind-cpu']);
    expect(status).toBe(0);
    expect(present.sort()).toEqual(
      [
        'node_modules/app',
        'node_modules/app/node_modules/old',
        'node_modules/shared',
        'node_modules/needed',
        'node_modules/bind-cpu',
        'node_modules/protobuf',
      ].sort(),
    );
    expect(stdout).toMatch(/kept 6 packages, removed 6/);
  });

  it("keeps only this platform's and architecture's prebuilt binaries of a kept package", () => {
    const { status, stdout } = prune(['bind-cpu']);
    expect(status).toBe(0);
    const left = BINARIES.filter((target) => existsSync(join(dir!, 'node_modules/app/bin/napi-v6', target)));
    expect(left).toEqual([HERE]);
    expect(existsSync(join(dir!, 'node_modules/app/bin/napi-v6', HERE, 'binding.node'))).toBe(true);
    expect(stdout).toMatch(new RegExp(`removed ${BINARIES.length - 1} other platforms`));
  });

  it('keeps the GPU binding instead when asked', () => {
    const { status, present } = prune(['bind-gpu']);
    expect(status).toBe(0);
    expect(present).toEqual(expect.arrayContaining(['node_modules/bind-gpu', 'node_modules/gpu-only']));
    expect(present).not.toContain('node_modules/bind-cpu');
    expect(present).not.toContain('node_modules/protobuf');
  });

  it('skips an optional dependency that is not installed, but fails on a missing required one', () => {
    expect(prune([], ['node_modules/bind-cpu', 'node_modules/bind-gpu']).status).toBe(0);
    const missing = prune([], ['node_modules/needed']);
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toMatch(/needed \(needed by node_modules\/app\) is not installed/);
    // Nothing is removed when the tree is inconsistent.
    expect(missing.present).toContain('node_modules/cli');
  });

  it('refuses a package that is not an optional dependency of the project', () => {
    const result = prune(['devtool']);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/devtool is not an optionalDependency/);
  });
});
