/**
 * Child processes of the benchmarks: the service (or a bare comparison server) started under tsx,
 * waited for until it answers, and stopped gracefully. One place, so every benchmark starts and stops
 * what it measures the same way.
 */
import { spawn, type ChildProcess } from 'node:child_process';

/** Resolves once `port`'s /readyz answers 200 (the service's own readiness). */
export function readyz(port: number): () => Promise<boolean> {
  return async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok;
}

/**
 * Starts `args` (a script and its arguments) under tsx with `env` added to this process's, and
 * resolves once `ready` answers true (start-up polling only, off the measured path).
 * @param nodeFlags - extra Node flags, e.g. --cpu-prof.
 */
export async function startProcess(name: string, args: string[], env: Record<string, string>, ready: () => Promise<boolean>, nodeFlags: readonly string[] = []): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] });
  const deadline = Date.now() + 60_000;
  while (!(await ready().catch(() => false))) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode} during start-up`);
    if (Date.now() > deadline) throw new Error(`${name} did not start within 60 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return child;
}

/** SIGTERM (the service's graceful shutdown), then SIGKILL after 10 s. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('exit', () => (clearTimeout(timer), resolve()));
    child.kill('SIGTERM');
  });
}
