/**
 * A pass that runs now and then again an interval after each one ends (never two at once in one
 * process), until stopped: the reconciler's and the study scheduler's loop. A failed pass is handed
 * to `onError` and the next one runs on time.
 */
export class PeriodicPass {
  private timer: NodeJS.Timeout | undefined;
  private pass: Promise<unknown> = Promise.resolve();
  private halted = false;

  constructor(
    private readonly run: () => Promise<unknown>,
    private readonly intervalMs: number,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** stop() was called: a pass in progress should end early where it can. */
  get stopped(): boolean {
    return this.halted;
  }

  start(): void {
    const tick = () => {
      this.pass = this.run()
        .catch(this.onError)
        .finally(() => {
          if (!this.halted) this.timer = setTimeout(tick, this.intervalMs);
        });
    };
    tick();
  }

  /** Stops the timer and waits for a pass in progress. */
  async stop(): Promise<void> {
    this.halted = true;
    clearTimeout(this.timer);
    await this.pass;
  }
}
