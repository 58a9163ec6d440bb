/**
 * Static checks of the deployment files. There is no Docker engine here, so nothing is built or run:
 * docker-compose.yml is resolved by the real `docker-compose config` (Debian package docker-compose,
 * installed by scripts/setup.mjs --test; without it those checks skip saying why, and fail under
 * CI=true), and the Dockerfile is parsed and checked against the repository (stages, users, health
 * checks, base-image tags, every COPY source present in the build context).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { describeNeeding, requirement } from '../support/requirements.js';

const ROOT = join(import.meta.dirname, '..', '..');
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

// ---- Dockerfile parsing ---------------------------------------------------------------------------

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

interface Stage {
  readonly base: string;
  readonly name: string | null;
  readonly instructions: Instruction[];
}

/** Splits a Dockerfile into stages of instructions (comments dropped, `\` continuations joined). */
function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let current = '';
  for (const line of text.split('\n')) {
    if (/^\s*#/.test(line) && current === '') continue;
    if (/^\s*#/.test(line)) continue; // a comment inside a continued instruction
    const continued = /\\\s*$/.test(line);
    current += (current ? ' ' : '') + line.replace(/\\\s*$/, '').trim();
    if (!continued) {
      if (current.trim()) logical.push(current.trim());
      current = '';
    }
  }
  const stages: Stage[] = [];
  for (const entry of logical) {
    const match = /^(\w+)\s+(.*)$/s.exec(entry);
    if (!match) throw new Error(`unparsable Dockerfile line: ${entry}`);
    const keyword = match[1].toUpperCase();
    const args = match[2];
    if (keyword === 'FROM') {
      const from = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!from) throw new Error(`unparsable FROM: ${args}`);
      stages.push({ base: from[1], name: from[2] ?? null, instructions: [] });
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`${keyword} before the first FROM`);
      stage.instructions.push({ keyword, args });
    }
  }
  return stages;
}

/** A COPY's flags (`--from=x`, `--chown=...`) and its source paths (the last word is the target). */
function parseCopy(args: string): { flags: Record<string, string>; sources: string[] } {
  const words = args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/);
  const flags: Record<string, string> = {};
  while (words[0]?.startsWith('--')) {
    const [name, value = ''] = words.shift()!.slice(2).split('=');
    flags[name] = value;
  }
  return { flags, sources: words.slice(0, -1) };
}

/**
 * The instructions a target really runs: its own plus those of the stages it is built FROM, so a
 * USER or HEALTHCHECK inherited from a parent stage counts.
 */
function effective(stages: Stage[], name: string): Instruction[] {
  const stage = stages.find((s) => s.name === name);
  if (!stage) throw new Error(`no stage ${name}`);
  const parent = stages.find((s) => s.name === stage.base);
  return [...(parent ? effective(stages, stage.base) : []), ...stage.instructions];
}

function last(instructions: Instruction[], keyword: string): string | undefined {
  return instructions.filter((i) => i.keyword === keyword).at(-1)?.args;
}

/** Whether .dockerignore excludes a context path (its patterns here: plain paths and `*` globs). */
function ignoredBy(patterns: string[], path: string): boolean {
  const parts = path.replace(/^\.\//, '').replace(/\/$/, '').split('/');
  return patterns.some((pattern) => {
    const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
    return parts.some((_, i) => regex.test(parts.slice(0, i + 1).join('/')));
  });
}

// ---- Compose ------------------------------------------------------------------------------------

function composeAvailable(): boolean {
  try {
    execFileSync('docker-compose', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

interface Service {
  image?: string;
  build?: { context: string; target?: string };
  command?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  ports?: { published: number | string; target: number }[];
  profiles?: string[];
  deploy?: {
    replicas?: number;
    resources?: { reservations?: { devices?: { driver: string; count?: number | string; capabilities: string[] }[] } };
  };
  volumes?: string[];
}

/** The file as Compose resolves it (interpolation, anchors, defaults) for the given extra env. */
function composeConfig(args: string[] = [], env: Record<string, string> = {}): Record<string, Service> {
  const out = execFileSync('docker-compose', [...args, '-f', 'docker-compose.yml', 'config'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  return (parseYaml(out) as { services: Record<string, Service> }).services;
}

const dockerfile = parseDockerfile(read('Dockerfile'));
const stageNames = dockerfile.map((s) => s.name);
const hasCompose = composeAvailable();

describe('Dockerfile', () => {
  it('has the deps, build, migrate and the CPU and GPU runtime targets', () => {
    for (const name of ['deps', 'build', 'prod-deps', 'native-cpu', 'native-gpu', 'migrate', 'runtime', 'runtime-gpu']) {
      expect(stageNames, name).toContain(name);
    }
    // `docker build .` gives the CPU runtime: the last stage.
    expect(dockerfile.at(-1)?.name).toBe('runtime');
  });

  it('pins every base image to a tag other than latest', () => {
    const external = dockerfile.filter((s, i) => !stageNames.slice(0, i).includes(s.base));
    expect(external.length).toBeGreaterThanOrEqual(2);
    for (const { base } of external) {
      const tag = /:([^/:@]+)$/.exec(base)?.[1];
      expect(tag, base).toBeDefined();
      expect(tag, base).not.toBe('latest');
    }
  });

  it('generates the Prisma client without downloading an engine and never runs install scripts blindly', () => {
    // The image uses the project's own offline route (scripts/prisma-cli.mjs), which must keep
    // pointing Prisma 7's CLI at a no-op schema engine.
    const deps = effective(dockerfile, 'deps').filter((i) => i.keyword === 'RUN').map((i) => i.args);
    expect(deps).toContain('node scripts/prisma-cli.mjs generate');
    expect(read('scripts/prisma-cli.mjs')).toMatch(/PRISMA_SCHEMA_ENGINE_BINARY: '\/bin\/true'/);
    for (const name of ['deps', 'prod-deps']) {
      const installs = effective(dockerfile, name).filter((i) => i.keyword === 'RUN' && /npm ci/.test(i.args));
      expect(installs.length, name).toBeGreaterThan(0);
      for (const { args } of installs) expect(args, name).toMatch(/--ignore-scripts/);
    }
    expect(effective(dockerfile, 'prod-deps').some((i) => /npm ci --omit=dev/.test(i.args))).toBe(true);
  });

  // The CPU image's default role is api (HTTP: /healthz); the GPU image runs workers, which serve no
  // HTTP, so a /healthz check there would only ever report unhealthy.
  for (const [target, role, binding, other] of [
    ['runtime', 'api', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'],
    ['runtime-gpu', 'worker', '@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'],
  ] as const) {
    it(`${target}: non-root, tini as PID 1, --role ${role}, compiled main, only the ${binding} binding`, () => {
      const steps = effective(dockerfile, target);
      const user = last(steps, 'USER');
      expect(user).toBeDefined();
      expect(['root', '0']).not.toContain(user!.split(':')[0]);
      if (role === 'api') expect(last(steps, 'HEALTHCHECK')).toMatch(/^--interval=.* CMD \[.*\/healthz/);
      else expect(last(steps, 'HEALTHCHECK')).toBe('NONE');
      const entrypoint = JSON.parse(last(steps, 'ENTRYPOINT')!) as string[];
      expect(entrypoint.slice(0, 2)).toEqual(['/usr/bin/tini', '--']);
      expect(entrypoint.slice(2)).toEqual(['node', 'dist/src/main.js']);
      // tsc maps src/main.ts to dist/src/main.js (rootDir "."), so the entry must exist as source.
      const tsconfig = JSON.parse(read('tsconfig.json')) as { compilerOptions: { rootDir: string; outDir: string } };
      expect([tsconfig.compilerOptions.rootDir, tsconfig.compilerOptions.outDir]).toEqual(['.', 'dist']);
      expect(existsSync(join(ROOT, 'src/main.ts'))).toBe(true);
      expect(JSON.parse(last(steps, 'CMD')!)).toEqual(['--role', role]);
      // The native stage this runtime copies node_modules from builds one binding and prunes the
      // tree to the production closure plus that binding (test/unit/docker-prune.test.ts).
      const nodeModules = steps.find((i) => i.keyword === 'COPY' && / \/app\/node_modules /.test(i.args));
      const from = parseCopy(nodeModules!.args).flags.from;
      const native = effective(dockerfile, from).map((i) => i.args).join('\n');
      expect(native).toContain(`npm rebuild ${binding} && node scripts/docker-prune.mjs ${binding}`);
      expect(native.split(/\s+/)).not.toContain(other);
    });
  }

  it('runs the GPU worker on CUDA 11 + cuDNN 8, which the libtensorflow of tfjs-node-gpu 4.x needs', () => {
    const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { version: string }> };
    // tfjs-node-gpu 4.x bundles libtensorflow 2.9.1 (CUDA 11.2 / cuDNN 8.1 sonames); revisit the base
    // image when this major changes.
    expect(lock.packages['node_modules/@tensorflow/tfjs-node-gpu'].version).toMatch(/^4\./);
    const gpu = dockerfile.find((s) => s.name === 'runtime-gpu')!;
    expect(gpu.base).toMatch(/^nvidia\/cuda:11\.\d+\.\d+-cudnn8-runtime-ubuntu22\.04$/);
    expect(last(gpu.instructions, 'ENV')).toMatch(/TFJS_BACKEND=tensorflow-gpu/);
    // Node comes from the same Node 20 image as the CPU runtime.
    const node = gpu.instructions.find((i) => i.keyword === 'COPY' && i.args.includes('/usr/local/bin/node'));
    expect(parseCopy(node!.args).flags.from).toBe('node-base');
    expect(dockerfile.find((s) => s.name === 'node-base')!.base).toMatch(/^node:20-bookworm-slim$/);
  });

  it('copies only what exists in the build context, and only from earlier stages', () => {
    const ignore = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    let copies = 0;
    dockerfile.forEach((stage, index) => {
      for (const { keyword, args } of stage.instructions) {
        if (keyword === 'ADD') throw new Error('use COPY, not ADD');
        if (keyword !== 'COPY') continue;
        const { flags, sources } = parseCopy(args);
        if (flags.from !== undefined) {
          expect(stageNames.slice(0, index), `COPY --from=${flags.from}`).toContain(flags.from);
          continue;
        }
        for (const source of sources) {
          copies++;
          expect(existsSync(join(ROOT, source)), `${source} exists`).toBe(true);
          expect(ignoredBy(ignore, source), `${source} is not in .dockerignore`).toBe(false);
        }
      }
    });
    expect(copies).toBeGreaterThanOrEqual(6);
    // What must never reach the context: local installs, build output, secrets, the generated client.
    for (const path of ['node_modules', 'dist', '.env', 'src/generated', '.git']) expect(ignoredBy(ignore, path), path).toBe(true);
  });

  it('the migrate target applies the committed migrations with the offline Prisma 6 route', () => {
    const steps = effective(dockerfile, 'migrate');
    expect(JSON.parse(last(steps, 'CMD')!)).toEqual(['node', 'scripts/prisma-cli.mjs', 'deploy']);
    // Every file the migrate command needs is in the image: the Prisma 6 config, schema, migrations.
    const copied = steps.filter((i) => i.keyword === 'COPY').flatMap((i) => parseCopy(i.args).sources);
    expect(copied).toEqual(expect.arrayContaining(['prisma', 'prisma6.config.ts', 'scripts/prisma-cli.mjs']));
    // ...and every file of scripts/ that the CLI wrapper loads (imports, preloads).
    const cli = read('scripts/prisma-cli.mjs');
    const helpers = [
      ...[...cli.matchAll(/join\(ROOT, 'scripts', '([^']+)'\)/g)].map((m) => `scripts/${m[1]}`),
      ...[...cli.matchAll(/from '\.\/([^']+)'/g)].map((m) => `scripts/${m[1]}`),
    ];
    for (const helper of helpers) expect(copied, helper).toContain(helper);
    expect(existsSync(join(ROOT, 'prisma/migrations'))).toBe(true);
    expect(['root', '0']).not.toContain(last(steps, 'USER'));
  });
});

const compose = requirement('docker-compose', hasCompose ? undefined : '`docker-compose version` did not run');

describeNeeding(compose, 'docker-compose.yml (resolved by `docker-compose config`)', () => {
  const services = hasCompose ? composeConfig() : {};

  it('defines postgres, redis, migrate, api, worker and the gpu-profile worker', () => {
    expect(Object.keys(services).sort()).toEqual(['api', 'migrate', 'postgres', 'redis', 'worker', 'worker-gpu']);
    expect(services['worker-gpu'].profiles).toEqual(['gpu']);
    for (const name of ['postgres', 'redis', 'migrate', 'api', 'worker']) expect(services[name].profiles, name).toBeUndefined();
  });

  it('pins Postgres 16 and Redis 7, with health checks, Redis never evicting BullMQ keys', () => {
    expect(services.postgres.image).toMatch(/^postgres:16[.-]/);
    expect(services.postgres.healthcheck?.test.join(' ')).toMatch(/pg_isready/);
    expect(services.postgres.volumes?.some((v) => v.endsWith(':/var/lib/postgresql/data:rw'))).toBe(true);
    expect(services.redis.image).toMatch(/^redis:7[.-]/);
    expect(services.redis.healthcheck?.test.join(' ')).toMatch(/redis-cli ping/);
    const command = services.redis.command!;
    expect(command[command.indexOf('--maxmemory-policy') + 1]).toBe('noeviction');
    for (const service of Object.values(services)) expect(service.image).not.toMatch(/:latest$|^[^:]+$/);
  });

  it('orders start-up: migrate after a healthy postgres; api and workers after migrate succeeded', () => {
    expect(services.migrate.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    expect(services.migrate.build?.target).toBe('migrate');
    for (const name of ['api', 'worker', 'worker-gpu']) {
      expect(services[name].depends_on, name).toEqual({
        migrate: { condition: 'service_completed_successfully' },
        redis: { condition: 'service_healthy' },
      });
    }
  });

  it('runs the api on port 3000 with a /healthz check and the workers in their role', () => {
    const api = services.api;
    expect(api.build?.target).toBe('runtime');
    expect(api.command).toEqual(['--role', 'api']);
    expect(api.ports).toEqual([{ published: 3000, target: 3000 }]);
    expect(api.healthcheck?.test.join(' ')).toMatch(/127\.0\.0\.1:3000\/healthz/);
    expect(services.worker.command).toEqual(['--role', 'worker']);
    expect(services.worker.image).toBe(api.image);
    expect(services['worker-gpu'].build?.target).toBe('runtime-gpu');
    expect(services['worker-gpu'].environment?.TFJS_BACKEND).toBe('tensorflow-gpu');
    // Every Compose build target is a Dockerfile stage.
    for (const service of Object.values(services)) {
      if (service.build?.target) expect(stageNames).toContain(service.build.target);
    }
  });

  it('passes the service only variables src/config.ts reads, pointing at the compose hosts', () => {
    const config = read('src/config.ts');
    for (const name of ['api', 'worker', 'worker-gpu', 'migrate']) {
      for (const variable of Object.keys(services[name].environment ?? {})) {
        expect(config, `${name}: ${variable}`).toContain(`'${variable}'`);
      }
    }
    expect(services.api.environment?.DATABASE_URL).toMatch(/^postgresql:\/\/postgres:[^@]+@postgres:5432\/fastadapt$/);
    expect(services.api.environment?.REDIS_URL).toBe('redis://redis:6379');
    expect(services.migrate.environment?.DATABASE_URL).toBe(services.api.environment?.DATABASE_URL);
  });

  it('scales workers with WORKER_REPLICAS (default 2)', () => {
    expect(services.worker.deploy?.replicas).toBe(2);
    expect(composeConfig([], { WORKER_REPLICAS: '5' }).worker.deploy?.replicas).toBe(5);
  });

  it('reserves an NVIDIA GPU for the gpu profile worker', () => {
    const gpu = composeConfig(['--profile', 'gpu'])['worker-gpu'];
    expect(gpu.deploy?.resources?.reservations?.devices).toEqual([{ driver: 'nvidia', count: 1, capabilities: ['gpu'] }]);
    expect(gpu.command).toEqual(['--role', 'worker']);
  });

  it('rejects a broken file (the check itself can fail)', () => {
    expect(() =>
      execFileSync('docker-compose', ['-f', '-', 'config'], {
        cwd: ROOT,
        input: 'services:\n  api:\n    image: x:1\n    depends_on:\n      nope:\n        condition: service_healthy\n',
        stdio: ['pipe', 'ignore', 'pipe'],
      }),
    ).toThrow();
  });
});
