/**
 * Runs fastadapt as a child process, exactly as an operator would (`src/main.ts --role all`), so the
 * demo exercises the real start-up, readiness and graceful shutdown instead of an in-process app.
 * The child's logs go to a file; the demo's console stays readable and the file's tail is shown on
 * failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { errorMessage } from '../../src/util/error-reason.js';

const ROOT = join(import.meta.dirname, '..', '..');

/** A started service: its base URL, log file and process. */
export interface Service {
  readonly baseUrl: string;
  readonly logFile: string;
  readonly child: ChildProcess;
  /** Exit code once the process ended (null while it runs or when a signal killed it). */
  exitCode(): number | null;
}

/** A port nobody listens on right now (the OS picks it), so the demo never collides with `npm start`. */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('could not find a free port');
  return address.port;
}

/** The last `lines` lines of the service log, for error messages. */
export function logTail(service: Service, lines = 15): string {
  try {
    return readFileSync(service.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Spawns `node --import tsx src/main.ts --role <role>` on a free port of 127.0.0.1. Running node
 * directly (not npx) means SIGTERM reaches the service itself.
 *
 * @param role - defaults to 'all' (api and worker in one process).
 * @param env - extra environment for the service, over the demo's own.
 */
export async function startService(role: 'api' | 'worker' | 'all' = 'all', env: Record<string, string> = {}): Promise<Service> {
  const port = await freePort();
  const logFile = join(tmpdir(), `fastadapt-demo-${process.pid}.log`);
  const log = createWriteStream(logFile);
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--role', role], {
    cwd: ROOT,
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  return { baseUrl: `http://127.0.0.1:${port}`, logFile, child, exitCode: () => child.exitCode };
}

function exited(service: Service): boolean {
  return service.child.exitCode !== null || service.child.signalCode !== null;
}

/**
 * Polls GET /readyz until it answers 200, and returns its body.
 *
 * @param timeoutMs - defaults to 60 s (the first start loads TensorFlow.js and connects everything).
 * @throws when the process exits first or the time runs out; the message carries the last answer.
 */
export async function waitUntilReady(service: Service, timeoutMs = 60_000): Promise<unknown> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (exited(service)) {
      throw new Error(`the service exited with code ${service.exitCode()} before it was ready:\n${logTail(service)}`);
    }
    try {
      const response = await fetch(`${service.baseUrl}/readyz`, { signal: AbortSignal.timeout(2_000) });
      const body: unknown = await response.json();
      if (response.ok) return body;
      last = `${response.status} ${JSON.stringify(body)}`;
    } catch (error) {
      last = errorMessage(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`not ready after ${timeoutMs} ms (last answer: ${last})\n${logTail(service)}`);
}

/**
 * Sends SIGTERM and waits for the process to end, as Docker or Kubernetes would.
 *
 * @param graceMs - after this the process is killed (SIGKILL) and this throws; defaults to 30 s.
 * @returns the exit code.
 * @throws when the process needs SIGKILL or exits with a code other than 0.
 */
export async function stopService(service: Service, graceMs = 30_000): Promise<number> {
  if (!exited(service)) {
    const done = once(service.child, 'exit');
    service.child.kill('SIGTERM');
    const timer = setTimeout(() => service.child.kill('SIGKILL'), graceMs);
    await done;
    clearTimeout(timer);
  }
  const code = service.exitCode();
  if (code !== 0) {
    const how = code === null ? `was killed (${service.child.signalCode})` : `exited with code ${code}`;
    throw new Error(`the service ${how} after SIGTERM:\n${logTail(service)}`);
  }
  return code;
}
