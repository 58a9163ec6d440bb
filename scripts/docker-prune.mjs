#!/usr/bin/env node
// Used by the Dockerfile: removes from ./node_modules every package that the production dependencies
// (plus the optional packages named on the command line) do not reach, following package-lock.json.
//
// Why: `npm ci --omit=dev` keeps packages that are dev AND optional ("devOptional"). The Prisma CLI is
// one: a devDependency here and an optional peer of @prisma/client, so ~250 MB of CLI, Studio and
// their dependencies would ship in every runtime image. `--omit=optional` would drop them, but also
// the tfjs native binding each runtime needs. Walking the lockfile keeps exactly what the service can
// load, at the locked versions.
//
// It also removes, in every package kept, prebuilt binaries for other platforms and architectures
// (bin/napi-v<N>/<platform>/<arch>: onnxruntime-node's layout).
//
// Usage: node scripts/docker-prune.mjs [optional-package ...]   e.g. @tensorflow/tfjs-node
// Plain Node, no dependencies.
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';

const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
const packages = lock.packages;
const root = packages[''];

/** Node's lookup: `name` in the requester's own node_modules, then in each ancestor's. */
function resolve(from, name) {
  let base = from;
  for (;;) {
    const candidate = `${base ? `${base}/` : ''}node_modules/${name}`;
    if (packages[candidate]) return candidate;
    if (!base) return null;
    const cut = base.lastIndexOf('/node_modules/');
    base = cut === -1 ? '' : base.slice(0, cut);
  }
}

/** Dependencies a package needs at run time: required, optional if installed, non-optional peers. */
function edges(entry) {
  const optionalPeers = entry.peerDependenciesMeta ?? {};
  return [
    ...Object.keys(entry.dependencies ?? {}).map((name) => ({ name, required: true })),
    ...Object.keys(entry.optionalDependencies ?? {}).map((name) => ({ name, required: false })),
    ...Object.keys(entry.peerDependencies ?? {})
      .filter((name) => !optionalPeers[name]?.optional)
      .map((name) => ({ name, required: true })),
  ];
}

const extras = process.argv.slice(2);
for (const name of extras) {
  if (!root.optionalDependencies?.[name]) throw new Error(`${name} is not an optionalDependency of the project`);
}

const keep = new Set();
const queue = [
  ...Object.keys(root.dependencies ?? {}).map((name) => ({ from: '', name, required: true })),
  ...extras.map((name) => ({ from: '', name, required: true })),
];
while (queue.length > 0) {
  const { from, name, required } = queue.pop();
  const path = resolve(from, name);
  if (path === null || !existsSync(path)) {
    if (required) throw new Error(`${name} (needed by ${from || 'the project'}) is not installed`);
    continue;
  }
  if (keep.has(path)) continue;
  keep.add(path);
  for (const edge of edges(packages[path])) queue.push({ from: path, ...edge });
}

let removed = 0;
for (const path of Object.keys(packages)) {
  if (path === '' || keep.has(path) || !existsSync(path)) continue;
  rmSync(path, { recursive: true, force: true });
  removed++;
}
// Prebuilt native binaries for other platforms: onnxruntime-node ships every platform's
// (bin/napi-v<N>/<platform>/<arch>/, 290 MB in 1.30.0, 45 MB of it linux x64) and loads only its own.
let platforms = 0;
for (const path of keep) {
  const bin = `${path}/bin`;
  if (!existsSync(bin)) continue;
  for (const napi of readdirSync(bin).filter((name) => /^napi-v\d+$/.test(name))) {
    for (const platform of readdirSync(`${bin}/${napi}`)) {
      const dir = `${bin}/${napi}/${platform}`;
      if (platform !== process.platform) {
        rmSync(dir, { recursive: true, force: true });
        platforms++;
        continue;
      }
      for (const arch of readdirSync(dir).filter((name) => name !== process.arch)) {
        rmSync(`${dir}/${arch}`, { recursive: true, force: true });
        platforms++;
      }
    }
  }
}
console.log(`docker-prune: kept ${keep.size} packages, removed ${removed}; removed ${platforms} other platforms' native binaries`);
