/**
 * A Postgres server of the test's own (never the shared one), which the test may stop and start:
 * initdb into a temporary directory with the Debian binaries, trust auth, a free port, migrated with
 * scripts/prisma-cli.mjs deploy like a real deployment. Postgres refuses to run as root, so under
 * root the server runs as the `postgres` user (setpriv execs, so signals reach the server itself).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitForPort } from './services.js';

function binDir(): string {
  const versions = readdirSync('/usr/lib/postgresql').filter((v) => existsSync(join('/usr/lib/postgresql', v, 'bin', 'initdb')));
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (!newest) throw new Error('no Postgres binaries under /usr/lib/postgresql/*/bin');
  return join('/usr/lib/postgresql', newest, 'bin');
}

const asRoot = process.getuid?.() === 0;

/** `command args` as the postgres user when we are root, else as ourselves. */
function asPostgres(command: string, args: string[]): [string, string[]] {
  return asRoot ? ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', command, ...args]] : [command, args];
}

export class PrivatePostgres {
  private readonly bin = binDir();
  private readonly dir = mkdtempSync(join(tmpdir(), 'fastadapt-pg-'));
  private server: ChildProcess | undefined;
  private output = '';

  constructor(readonly port: number) {
    if (asRoot) chownSync(this.dir, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
    const [command, args] = asPostgres(join(this.bin, 'initdb'), ['-D', this.dir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
    execFileSync(command, args, { stdio: 'pipe' });
  }

  /** The database the app uses. */
  get url(): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/fastadapt`;
  }

  async start(): Promise<void> {
    if (this.server && this.server.exitCode === null) return;
    const [command, args] = asPostgres(join(this.bin, 'postgres'), [
      '-D', this.dir, '-p', String(this.port), '-k', this.dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off',
    ]);
    this.server = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.server.stdout!.on('data', (chunk) => (this.output += chunk));
    this.server.stderr!.on('data', (chunk) => (this.output += chunk));
    await waitForPort(this.port, 20_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${this.output}`);
    });
    // Accepting TCP is not accepting queries: wait until start-up recovery is done.
    const [ready, readyArgs] = [join(this.bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres']];
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        execFileSync(ready, readyArgs, { stdio: 'ignore' });
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`Postgres on ${this.port} not ready:\n${this.output}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  /** Creates the `fastadapt` database and applies the migrations as `npm run db:migrate` does. */
  migrate(): void {
    execFileSync(join(this.bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres', 'fastadapt']);
    execFileSync(process.execPath, ['scripts/prisma-cli.mjs', 'deploy'], { env: { ...process.env, DATABASE_URL: this.url }, stdio: 'pipe' });
  }

  /** Fast shutdown (SIGINT): clients are disconnected at once, as when an operator stops the server. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server || server.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      server.once('exit', () => resolve());
      server.kill('SIGINT');
    });
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
