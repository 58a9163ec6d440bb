/**
 * The demo's view of a meta-training job: a progress bar drawn from the `progress` and `metrics`
 * events of GET /meta-train/:id/events (read by the client's `jobEvents`) until the final `status`.
 */

/** A one-line progress bar: redrawn in place on a terminal, printed every 10% otherwise. */
export class ProgressBar {
  private lastDecile = -1;
  private suffix = '';

  constructor(
    private readonly total: number,
    private readonly out: NodeJS.WriteStream = process.stdout,
    private readonly width = 30,
  ) {}

  /** Text shown after the bar (e.g. the latest validation loss). */
  note(text: string): void {
    this.suffix = text;
  }

  update(done: number): void {
    const fraction = Math.min(1, done / this.total);
    const filled = Math.round(fraction * this.width);
    const line = `      [${'#'.repeat(filled)}${'.'.repeat(this.width - filled)}] ${String(done).padStart(String(this.total).length)}/${this.total} ${(fraction * 100).toFixed(0).padStart(3)}%${this.suffix ? `  ${this.suffix}` : ''}`;
    if (this.out.isTTY) {
      this.out.write(`\r${line}\x1b[K`);
      return;
    }
    const decile = Math.floor(fraction * 10);
    if (decile > this.lastDecile) {
      this.lastDecile = decile;
      this.out.write(`${line}\n`);
    }
  }

  /** Ends the line on a terminal so later output starts on its own. */
  finish(): void {
    if (this.out.isTTY) this.out.write('\n');
  }
}
