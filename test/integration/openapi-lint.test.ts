/**
 * An independent check of the committed contract: Redocly's linter (`@redocly/cli lint`, the
 * recommended-strict rules plus openapi/redocly.yaml) validates it against the OpenAPI 3.1 schema
 * and lints it, examples against their schemas included. A damaged copy must fail, so the check is
 * known to bite.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SPEC_PATH } from '../../scripts/openapi/render.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'node_modules', '@redocly', 'cli', 'bin', 'cli.js');
const CONFIG = join(ROOT, 'openapi', 'redocly.yaml');

function lint(file: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'lint', '--config', CONFIG, '--format', 'stylish', file], { cwd: ROOT, env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}\n${stderr}` });
    });
  });
}

const scratch = mkdtempSync(join(tmpdir(), 'fastadapt-openapi-lint-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('redocly lint', () => {
  it('passes openapi/openapi.json with no error or warning', async () => {
    const { code, output } = await lint(SPEC_PATH);
    expect(code, output).toBe(0);
    expect(output).toMatch(/Your API description is valid/);
    expect(output).not.toMatch(/\d+ warnings?\b/);
  }, 30_000);

  it('fails a copy with a missing operationId and an example that contradicts its schema', async () => {
    const doc = JSON.parse(readFileSync(SPEC_PATH, 'utf8'));
    delete doc.paths['/meta-train/{id}'].get.operationId;
    doc.paths['/task-families'].post.requestBody.content['application/json'].examples.example1.value.inputDim = 'one';
    const damaged = join(scratch, 'openapi.json');
    writeFileSync(damaged, JSON.stringify(doc));
    const { code, output } = await lint(damaged);
    expect(code).not.toBe(0);
    expect(output).toMatch(/operation-operationId/);
    expect(output).toMatch(/no-invalid-media-type-examples/);
  }, 30_000);
});
