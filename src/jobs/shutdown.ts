/**
 * Graceful shutdown on SIGTERM/SIGINT: close what the process opened, last opened first (workers
 * stop taking jobs and let running ones finish or checkpoint, then HTTP, queues, Redis, Postgres),
 * then exit. A step that hangs past the deadline makes the process exit 1 rather than linger.
 */
import type { Logger } from 'pino';

export interface ShutdownOptions {
  logger: Logger;
  /** Deadline for all steps together (config.shutdownTimeoutMs). */
  timeoutMs: number;
  /** Ends the process; tests pass their own. Default process.exit. */
  exit?: (code: number) => void;
  /** Signals that start the shutdown. Default SIGTERM and SIGINT. */
  signals?: readonly NodeJS.Signals[];
}

export class Shutdown {
  private readonly steps: { name: string; close: () => Promise<unknown> }[] = [];
  private running: Promise<void> | undefined;

  constructor(private readonly options: ShutdownOptions) {}

  /** Registers a resource to close; resources close in reverse order of registration. */
  add(name: string, close: () => Promise<unknown>): void {
    this.steps.push({ name, close });
  }

  /** Starts listening for the signals. */
  listen(): this {
    for (const signal of this.options.signals ?? ['SIGTERM', 'SIGINT']) {
      process.on(signal, () => void this.run(signal));
    }
    return this;
  }

  /**
   * Closes everything once, then exits with `exitCode` (1 if a step failed); later calls (a second
   * signal) wait for the same run.
   */
  run(reason: string, exitCode = 0): Promise<void> {
    this.running ??= this.closeAll(reason, exitCode);
    return this.running;
  }

  private async closeAll(reason: string, exitCode: number): Promise<void> {
    const { logger, timeoutMs, exit = (code: number) => process.exit(code) } = this.options;
    logger.info({ reason, timeoutMs }, 'shutting down');
    const deadline = setTimeout(() => {
      logger.error({ timeoutMs }, 'shutdown deadline passed; exiting with resources still open');
      exit(1);
    }, timeoutMs);
    deadline.unref();

    const closed: string[] = [];
    let failed = false;
    for (const step of [...this.steps].reverse()) {
      try {
        await step.close();
        closed.push(step.name);
      } catch (err) {
        failed = true;
        logger.error({ err, step: step.name }, 'failed to close');
      }
    }
    clearTimeout(deadline);
    logger.info({ reason, clean: !failed, closed }, 'shutdown complete');
    exit(failed ? 1 : exitCode);
  }
}
