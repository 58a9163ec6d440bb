/**
 * bench:meta's side of the PyTorch baselines in this folder: finding a Python with torch, the
 * long-lived timing server (meta_baseline.py --serve, every PyTorch form) whose blocks bench:meta
 * interleaves with the engine's, its gradient check (--check), and the MAML meta-training run of the quality comparison
 * (maml_sine.py).
 */

import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { ParamArrays } from '../../src/meta/index.js';

const BASELINE_SCRIPT = new URL('./meta_baseline.py', import.meta.url).pathname;
const MAML_SINE_SCRIPT = new URL('./maml_sine.py', import.meta.url).pathname;

/** Runs a command to completion; its stdout, or an error carrying its stderr. */
export function run(command: string, argv: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, argv, { maxBuffer: 64 << 20 }, (error, stdout, stderr) => (error ? reject(new Error(`${command} ${argv.join(' ')}: ${stderr || error.message}`)) : resolve(stdout)));
  });
}

/** A Python that imports torch, or null (with why) when there is none or the choice is 'off'. */
export async function findPytorch(choice: string): Promise<{ python: string | null; reason?: string }> {
  if (choice === 'off') return { python: null, reason: '--pytorch off' };
  const candidates = choice === 'auto' ? ['/usr/bin/python3', 'python3'] : [choice];
  for (const python of candidates) {
    try {
      await run(python, ['-c', 'import torch']);
      return { python };
    } catch {
      // next candidate
    }
  }
  return { python: null, reason: `no Python with torch among ${candidates.join(', ')} (Debian: apt-get install python3-torch)` };
}

/** The PyTorch settings as meta_baseline.py describes them (its SETTINGS). */
export interface PytorchSetting {
  kind: 'regression' | 'classification';
  /** Layer widths, input to output. */
  sizes: number[];
  ways: number;
  meta_batch: number;
  /** Support / query examples per task. */
  support: number;
  query: number;
  steps: number;
  inner_lr: number;
  meta_lr: number;
}

export interface GradientCheck {
  algorithm: string;
  setting: string;
  /** The form compared with the per-task loop: 'batched' or 'functorch'. */
  form: string;
  maxAbsDiff: number;
  maxAbsGradient: number;
  lossDiff: number;
}

/** meta_baseline.py --check: the batched and the functorch meta-gradient against the per-task loop's, of every algorithm and setting. */
export async function gradientCheck(python: string, dtype: 'float32' | 'float64' = 'float32'): Promise<{ torch: string; dtype: string; checks: GradientCheck[] }> {
  return JSON.parse(await run(python, [BASELINE_SCRIPT, '--check', '--dtype', dtype])) as { torch: string; dtype: string; checks: GradientCheck[] };
}

/**
 * meta_baseline.py --serve: one request at a time, each answered by one JSON line. bench:meta awaits
 * each block, so PyTorch and the engine never run at the same time.
 */
export class PytorchServer {
  /** The torch version and thread count the server reported on start. */
  torch = '';
  threads = 0;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly lines: AsyncIterator<string>,
    private readonly stderr: string[],
  ) {}

  static async start(python: string): Promise<PytorchServer> {
    const child = spawn(python, [BASELINE_SCRIPT, '--serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const stderr: string[] = [];
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const server = new PytorchServer(child, lines, stderr);
    ({ torch: server.torch, threads: server.threads } = await server.nextReply<{ torch: string; threads: number }>());
    return server;
  }

  private async nextReply<T>(): Promise<T> {
    const line = await this.lines.next();
    if (line.done) throw new Error(`the PyTorch baseline exited: ${this.stderr.join('').trim() || `code ${this.child.exitCode}`}`);
    const reply = JSON.parse(line.value) as T & { error?: string };
    if (reply.error !== undefined) throw new Error(`the PyTorch baseline failed: ${reply.error}`);
    return reply;
  }

  /** Sends one request and waits for its reply; throws what the server reported on failure. */
  request<T>(request: Record<string, unknown>): Promise<T> {
    this.child.stdin.write(`${JSON.stringify(request)}\n`);
    return this.nextReply<T>();
  }

  /** Ends the server (closing its stdin ends its request loop) and waits for it to exit. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin.end();
    await exited;
  }
}

export interface MamlSineRun {
  torch: string;
  threads: number;
  trainSeconds: number;
  params: ParamArrays;
}

/** maml_sine.py: MAML meta-trained on sinusoids in PyTorch; its parameters in the engine's layout. */
export async function mamlSineRun(python: string, iterations: number, seed: number): Promise<MamlSineRun> {
  const out = JSON.parse(await run(python, [MAML_SINE_SCRIPT, '--iterations', String(iterations), '--seed', String(seed)])) as Omit<MamlSineRun, 'params'> & {
    params: Record<string, { shape: number[]; data: number[] }>;
  };
  const params = Object.fromEntries(Object.entries(out.params).map(([name, { shape, data }]) => [name, { shape, data: Float32Array.from(data) }]));
  return { ...out, params };
}
