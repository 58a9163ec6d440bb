/**
 * A real service process: `node --import tsx src/main.ts --role worker` (what `npm start` runs after setup; not
 * through npx or the tsx CLI, which do not pass signals on reliably), or `--role api` for an API
 * process (give it PORT), detached into its own process group so a test can SIGKILL it whole. Its
 * JSON log is kept for assertions.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface LogLine {
  msg: string;
  [field: string]: unknown;
}

export class WorkerProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private stdout = '';
  private stderr = '';

  constructor(env: Record<string, string>, role: 'worker' | 'api' = 'worker') {
    this.child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--role', role], {
      detached: true,
      env: { ...process.env, TFJS_BACKEND: 'cpu', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (chunk) => (this.stdout += chunk));
    this.child.stderr!.on('data', (chunk) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Everything it printed (for failure messages). */
  output(): string {
    return `${this.stdout}\n${this.stderr}`;
  }

  /** Its JSON log lines, optionally only those with message `msg`. */
  logs(msg?: string): LogLine[] {
    return this.stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as LogLine];
        } catch {
          return [];
        }
      })
      .filter((line) => msg === undefined || line.msg === msg);
  }

  /** Resolves with the first log line with message `msg` (and matching `where`). */
  async waitForLog(msg: string, where: (line: LogLine) => boolean = () => true, timeoutMs = 60_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.logs(msg).find(where);
      if (line) return line;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`worker exited before logging "${msg}":\n${this.output()}`);
      if (Date.now() > deadline) throw new Error(`worker did not log "${msg}" within ${timeoutMs} ms:\n${this.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Sends `signal` to the whole process group (SIGKILL leaves nothing behind). */
  kill(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.child.pid!, signal);
    } catch {
      // already gone
    }
  }
}
