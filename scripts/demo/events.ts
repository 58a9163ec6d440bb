/**
 * The demo's view of a meta-training job: reads GET /meta-train/:id/events (Server-Sent Events) and
 * draws a progress bar from its `progress` and `metrics` events until the final `status` arrives.
 */

export interface JobEvent {
  id?: string;
  event: string;
  data: Record<string, unknown>;
}

/**
 * Yields the events of an SSE response body as they arrive; ends when the server closes the stream.
 */
export async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<JobEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    const frames = buffer.split('\n\n');
    buffer = frames.pop() ?? '';
    for (const frame of frames) {
      const fields: Record<string, string> = {};
      for (const line of frame.split('\n')) {
        const match = /^(id|event|data): ?(.*)$/.exec(line);
        if (match) fields[match[1]] = match[2];
      }
      if (fields.event && fields.data) yield { ...(fields.id ? { id: fields.id } : {}), event: fields.event, data: JSON.parse(fields.data) as Record<string, unknown> };
    }
  }
}

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
