/**
 * The entry point as a real process: `--role all` serves /healthz and runs the workers, and SIGTERM
 * closes everything and exits 0; bad configuration stops it with the variable named.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createPrivateDatabase } from './support/private-database.js';
import { SHARED_REDIS_URL, TEST_DATABASE_URL, freePort, removePrefix, uniquePrefix } from './support/services.js';

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node --import tsx src/main.ts` (what `npm start` runs after setup), so the signal reaches the service
 * itself. Not through npx: npm exec dies on SIGTERM without passing it on, orphaning the service.
 * Not through the tsx CLI either: it relays a signal only if the child acknowledges it within 30 ms
 * and otherwise SIGKILLs it, which happens on a busy machine. Detached, so a failing test can kill
 * the whole process group.
 */
function startMain(env: Record<string, string>, args: string[] = []) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
    detached: true,
    env: { ...process.env, DATABASE_URL: TEST_DATABASE_URL, REDIS_URL: SHARED_REDIS_URL, TFJS_BACKEND: 'cpu', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
  const killGroup = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  return { child, exited, killGroup, output: () => stdout + stderr };
}

/** JSON log lines with the given msg. */
function logLines(stdout: string, msg: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.msg === msg);
}

async function waitForHealth(port: number, output: () => string, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no /healthz on ${port} within ${timeoutMs} ms; output:\n${output()}`);
}

describe('src/main.ts', () => {
  it('--role all: serves, then on SIGTERM closes workers, HTTP, Redis and Postgres and exits 0', async () => {
    const port = await freePort();
    const prefix = uniquePrefix('main');
    onTestFinished(() => removePrefix(SHARED_REDIS_URL, prefix));
    // Its worker runs the reconciler, which would take up other tests' unfinished jobs in a shared database.
    const database = await createPrivateDatabase('main');
    onTestFinished(() => database.drop());
    const main = startMain({ PORT: String(port), QUEUE_PREFIX: prefix, LOG_LEVEL: 'info', DATABASE_URL: database.url }, ['--role', 'all']);
    try {
      await waitForHealth(port, main.output);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(await ready.json()).toMatchObject({ backend: 'cpu' });
    } catch (error) {
      main.killGroup();
      throw error;
    }

    main.child.kill('SIGTERM');
    const { code, stdout } = await main.exited;
    main.killGroup();
    expect(code).toBe(0);
    expect(logLines(stdout, 'workers started')).toHaveLength(1);
    expect(logLines(stdout, 'shutting down')[0]).toMatchObject({ reason: 'SIGTERM' });
    // Workers stop taking jobs (and running ones finish or hand back) before anything else closes.
    expect(logLines(stdout, 'shutdown complete')[0]).toMatchObject({
      clean: true,
      closed: ['workers', 'http', 'redis probe', 'queues', 'redis', 'postgres'],
    });
  });

  it('stops at start-up with exit 1 and the bad variable named', async () => {
    const main = startMain({ PORT: 'abc' });
    const { code, stderr } = await main.exited;
    expect(code).toBe(1);
    expect(stderr).toContain('PORT must be an integer 1-65535, got "abc"');
  });
});
