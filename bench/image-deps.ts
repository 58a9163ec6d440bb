/**
 * What the runtime images' node_modules hold, measured without a Docker engine: the Dockerfile's
 * prod-deps and prune steps run in a scratch folder (`npm ci --omit=dev --ignore-scripts`, then
 * scripts/docker-prune.mjs with no tfjs binding named), and the folder is sized before and after the
 * prune, package by package. onnxruntime-node ships every platform's native binaries; the prune keeps
 * this machine's only (the image's, when the image is built for it).
 *
 * This is not an image size: the base image, the compiled service (dist/) and the one tfjs binding
 * each runtime adds (tfjs-node or tfjs-node-gpu with its libtensorflow, fetched at build time) are
 * not here. It says what the production dependencies, onnxruntime-node among them, cost an image.
 * Needs the npm registry. Writes bench/results/image-deps.json.
 *
 * npx tsx bench/image-deps.ts [--out PATH] [--keep]
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { arch, platform, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: new URL('./results/image-deps.json', import.meta.url).pathname },
    keep: { type: 'boolean', default: false },
  },
});

const ROOT = new URL('..', import.meta.url).pathname;
const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

/** Bytes on disk under `path` (du's allocated size, as an image layer stores whole files). */
function bytesUnder(path: string): number {
  return Number(execFileSync('du', ['-sb', path], { encoding: 'utf8' }).split('\t')[0]);
}

/** Each top-level package (a scope's packages one by one) with its bytes, largest first. */
function packages(modules: string): Array<{ name: string; mib: number }> {
  const names = readdirSync(modules)
    .filter((name) => !name.startsWith('.'))
    .flatMap((name) => (name.startsWith('@') ? readdirSync(join(modules, name)).map((sub) => `${name}/${sub}`) : [name]));
  return names.map((name) => ({ name, mib: mib(bytesUnder(join(modules, name))) })).sort((a, b) => b.mib - a.mib);
}

function main(): void {
  const dir = mkdtempSync(join(tmpdir(), 'fastadapt-image-deps-'));
  try {
    for (const file of ['package.json', 'package-lock.json', '.npmrc']) copyFileSync(join(ROOT, file), join(dir, file));
    mkdirSync(join(dir, 'scripts'));
    copyFileSync(join(ROOT, 'scripts/docker-prune.mjs'), join(dir, 'scripts/docker-prune.mjs'));
    // The Dockerfile's prod-deps stage, then its prune (as the runtime stages run it, less their tfjs binding).
    execFileSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir, stdio: 'ignore' });
    const modules = join(dir, 'node_modules');
    const ort = join(modules, 'onnxruntime-node');
    const before = { nodeModulesMiB: mib(bytesUnder(modules)), onnxruntimeNodeMiB: mib(bytesUnder(ort)) };
    const pruned = execFileSync(process.execPath, ['scripts/docker-prune.mjs'], { cwd: dir, encoding: 'utf8' }).trim();
    const after = { nodeModulesMiB: mib(bytesUnder(modules)), onnxruntimeNodeMiB: mib(bytesUnder(ort)) };
    const result = {
      setting: {
        what: "the runtime images' node_modules without their tfjs binding: `npm ci --omit=dev --ignore-scripts` (the Dockerfile's prod-deps stage), sized, then scripts/docker-prune.mjs (its prune), sized again; du -sb, MiB",
        notAnImageSize: 'the base image, dist/ and the tfjs binding each runtime adds (tfjs-node or tfjs-node-gpu and its libtensorflow) are not included; no Docker engine runs here',
        platform: `${platform()}-${arch()}`,
      },
      beforePrune: before,
      afterPrune: { ...after, largestPackages: packages(modules).slice(0, 12) },
      onnxruntimeNodeKeptFraction: Math.round((after.onnxruntimeNodeMiB / before.onnxruntimeNodeMiB) * 1000) / 1000,
      prune: pruned,
      at: new Date().toISOString(),
    };
    writeFileSync(args.out!, `${JSON.stringify(result, null, 2)}\n`);
    console.log(JSON.stringify({ beforePrune: before, afterPrune: after }));
  } finally {
    if (args.keep) console.log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

main();
