/**
 * The layering rule, enforced: every import in src/ (static `import`/`export ... from`, and
 * `import('...')` with a literal path) goes down the layers or stays within its own.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * What each layer (a folder of src/, or a top-level file by its name) may import besides itself.
 * The order is main -> http -> jobs -> metrics -> db -> meta -> util: a layer imports only layers
 * below it. metrics sits under jobs and http (the worker and the API both report through it) and
 * over db, and imports neither jobs nor http. export (model files for other runtimes) sits on the
 * engine and serves http alone. config.ts (the environment, read once at start-up)
 * serves main and http and reads only the engine's names. generated (the Prisma client) is db's
 * alone: nothing else touches Prisma. A new folder under src/ fails the test until it is placed here.
 */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  main: ['config', 'http', 'jobs', 'metrics', 'db', 'export', 'meta', 'util'],
  http: ['config', 'jobs', 'metrics', 'db', 'export', 'meta', 'util'],
  jobs: ['metrics', 'db', 'meta', 'util'],
  metrics: ['db', 'meta', 'util'],
  db: ['generated', 'meta', 'util'],
  config: ['meta', 'util'],
  export: ['meta', 'util'],
  meta: ['util'],
  util: [],
  generated: [],
};

/** One import that breaks the rule but is allowed for now: `from` (a file) imports `to` (a resolved path). */
interface Exception {
  from: string;
  to: string;
  why: string;
}

/**
 * Imports against the rule that are tolerated until their fix lands. Each names its fix; an entry
 * that no longer matches any import fails the test, so the list only shrinks.
 */
const EXCEPTIONS: readonly Exception[] = [];

/** A module of src/ and the specifiers it imports, as written. */
interface ModuleImports {
  /** Path from the repository root, with '/' separators: 'src/http/app.ts'. */
  file: string;
  imports: readonly string[];
}

/** The layer a path under src/ belongs to: its first folder, or a top-level file's name without extension. */
function layerOf(path: string): string | null {
  const parts = path.split('/');
  if (parts[0] !== 'src' || parts.length < 2) return null;
  return parts.length === 2 ? parts[1].replace(/\.[^.]+$/, '') : parts[1];
}

/**
 * The imports that break the rule, one line each, and the exceptions no import used any more.
 * Package imports (not starting with '.') are not checked: layers are about src/ only.
 */
function checkLayering(modules: readonly ModuleImports[], exceptions: readonly Exception[] = []): { violations: string[]; unusedExceptions: Exception[] } {
  const violations: string[] = [];
  const used = new Set<Exception>();
  for (const { file, imports } of modules) {
    const from = layerOf(file);
    for (const specifier of imports) {
      if (!specifier.startsWith('.')) continue;
      const target = posix.normalize(posix.join(posix.dirname(file), specifier));
      const to = layerOf(target);
      if (from !== null && from === to) continue;
      const allowed = from === null ? undefined : MAY_IMPORT[from];
      if (allowed !== undefined && to !== null && allowed.includes(to)) continue;
      const exception = exceptions.find((e) => e.from === file && e.to === target);
      if (exception) {
        used.add(exception);
        continue;
      }
      const rule = allowed === undefined
        ? `layer '${from ?? file}' is not in the layer table`
        : allowed.length === 0 ? `${from} may import nothing outside itself` : `${from} may import only ${allowed.join(', ')}`;
      violations.push(`${file} imports ${specifier} (${to ?? 'outside src/'}): ${rule}`);
    }
  }
  return { violations, unusedExceptions: exceptions.filter((e) => !used.has(e)) };
}

/** The module specifiers a source file imports: static imports and re-exports, and `import()` of a literal. */
function importsOf(fileName: string, source: string): string[] {
  const sourceFile = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, false);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [argument] = node.arguments;
      if (argument && ts.isStringLiteralLike(argument)) found.push(argument.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) && ts.isStringLiteral(node.moduleReference.expression)) {
      found.push(node.moduleReference.expression.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(sourceFile);
  return found;
}

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.[cm]?[jt]s$/.test(entry.name) ? [path] : [];
  });
}

describe('layering rule (checker)', () => {
  const check = (modules: ModuleImports[]) => checkLayering(modules).violations;

  it('passes imports down the layers and within a layer', () => {
    expect(check([
      { file: 'src/main.ts', imports: ['./http/app.js', './config.js', './jobs/worker.js', 'fastify'] },
      { file: 'src/http/routes/tasks.ts', imports: ['../../db/repositories/tasks.js', '../schemas/common.js', '../../util/lru.js'] },
      { file: 'src/jobs/worker.ts', imports: ['../metrics/worker.js', '../db/client.js'] },
      { file: 'src/db/client.ts', imports: ['../generated/prisma/client.js', '../meta/index.js'] },
      { file: 'src/meta/adapt.ts', imports: ['./tensors.js', '../util/numbers.js'] },
      { file: 'src/generated/prisma/client.ts', imports: ['./internal/class.js'] },
    ])).toEqual([]);
  });

  it('fails an import up the layers, naming the file, the import and the rule', () => {
    const violations = check([
      { file: 'src/meta/adapt.ts', imports: ['../db/client.js'] },
      { file: 'src/db/repositories/jobs.ts', imports: ['../../jobs/queues.js'] },
      { file: 'src/util/lru.ts', imports: ['../meta/index.js'] },
      { file: 'src/jobs/queues.ts', imports: ['../http/app.js'] },
    ]);
    expect(violations).toHaveLength(4);
    expect(violations[0]).toBe('src/meta/adapt.ts imports ../db/client.js (db): meta may import only util');
    expect(violations[2]).toMatch(/^src\/util\/lru\.ts .*util may import nothing outside itself$/);
  });

  it('fails metrics importing jobs, and anything but db importing the generated Prisma client', () => {
    expect(check([
      { file: 'src/metrics/api.ts', imports: ['../jobs/queues.js'] },
      { file: 'src/http/routes/tasks.ts', imports: ['../../generated/prisma/client.js'] },
      { file: 'src/meta/model.ts', imports: ['../generated/prisma/enums.js'] },
    ])).toHaveLength(3);
  });

  it('fails a folder missing from the layer table and an import out of src/', () => {
    const violations = check([
      { file: 'src/plugins/x.ts', imports: ['../util/lru.js'] },
      { file: 'src/http/app.ts', imports: ['../../clients/typescript/src/index.js'] },
    ]);
    expect(violations).toEqual([
      "src/plugins/x.ts imports ../util/lru.js (util): layer 'plugins' is not in the layer table",
      'src/http/app.ts imports ../../clients/typescript/src/index.js (outside src/): http may import only config, jobs, metrics, db, export, meta, util',
    ]);
  });

  it('tolerates only the listed exception, and reports an exception no import uses', () => {
    const exceptions: Exception[] = [
      { from: 'src/metrics/api.ts', to: 'src/jobs/queues.js', why: 'test' },
      { from: 'src/metrics/api.ts', to: 'src/jobs/events.js', why: 'test' },
    ];
    const result = checkLayering([{ file: 'src/metrics/api.ts', imports: ['../jobs/queues.js', '../jobs/redis.js'] }], exceptions);
    expect(result.violations).toEqual(['src/metrics/api.ts imports ../jobs/redis.js (jobs): metrics may import only db, meta, util']);
    expect(result.unusedExceptions).toEqual([exceptions[1]]);
  });

  it('reads static imports, type imports, re-exports and literal dynamic imports, not comments or computed paths', () => {
    const source = [
      "import a from './a.js';",
      "import type { B } from '../b.js';",
      "import './side-effect.js';",
      "export * from './c.js';",
      "export { d } from './d.js';",
      'const e = await import(\'./e.js\');',
      'const f = await import(`./f.js`);',
      'const g = await import(NAMES[pref]);',
      "// import h from './h.js';",
      "const text = \"import i from './i.js'\";",
      "export const j = 1;",
    ].join('\n');
    expect(importsOf('x.ts', source)).toEqual(['./a.js', '../b.js', './side-effect.js', './c.js', './d.js', './e.js', './f.js']);
  });
});

describe('layering rule (src/)', () => {
  const files = sourceFiles(join(repoRoot, 'src'));
  const modules = files.map((path) => ({
    file: relative(repoRoot, path).split('\\').join('/'),
    imports: importsOf(path, readFileSync(path, 'utf8')),
  }));

  it('every import in src/ follows the layer table', () => {
    // The scan really read the tree: a parser that found nothing would pass vacuously.
    expect(modules.find((m) => m.file === 'src/http/app.ts')?.imports).toContain('./routes/tasks.js');
    const { violations, unusedExceptions } = checkLayering(modules, EXCEPTIONS);
    expect(violations).toEqual([]);
    expect(unusedExceptions, 'an exception whose import is gone: delete it from EXCEPTIONS').toEqual([]);
  });
});
