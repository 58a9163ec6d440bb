/**
 * "A task's served head changed other than by a new version, or the task is gone": the API process
 * that pins a head version (PUT /tasks/:id/head) or deletes a task publishes it on Redis channel
 * `<prefix>:task-changed`, and every API process drops what it holds of the task (its cached head,
 * its adapt facts), so the pin or the 404 holds on all of them from the next request. Like
 * `<prefix>:adapted` (adapted.ts) it is fire-and-forget: a process whose subscription dropped clears
 * its caches when it comes back, and cached heads expire anyway.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { Subscription } from './subscription.js';

export function taskChangedChannel(prefix: string): string {
  return `${prefix}:task-changed`;
}

export const TaskChangedSchema = Type.Object({
  tenantId: Type.String({ minLength: 1 }),
  taskId: Type.String({ minLength: 1 }),
  change: Type.Union([Type.Literal('pinned'), Type.Literal('deleted')]),
});
export type TaskChanged = Static<typeof TaskChangedSchema>;

const checker = Compile(TaskChangedSchema);

/** Announces the change; resolves with how many connections received it. */
export async function publishTaskChanged(redis: Redis, prefix: string, message: TaskChanged): Promise<number> {
  return redis.publish(taskChangedChannel(prefix), JSON.stringify(message));
}

/** Parses a message; null for anything that is not one. */
export function decodeTaskChanged(raw: string): TaskChanged | null {
  try {
    const value: unknown = JSON.parse(raw);
    return checker.Check(value) ? value : null;
  } catch {
    return null;
  }
}

/** One subscription to `<prefix>:task-changed` per process, decoded for its listeners. */
export class TaskChangeSubscriber {
  private constructor(private readonly subscription: Subscription) {}

  /** Subscribes on a connection duplicated from `redis`; resolves once Redis confirmed it. */
  static async start(redis: Redis, prefix: string, logger: Logger, name = 'task-changed'): Promise<TaskChangeSubscriber> {
    return new TaskChangeSubscriber(await new Subscription(redis, taskChangedChannel(prefix), logger, name).subscribed());
  }

  on(listener: (message: TaskChanged) => void): () => void {
    return this.subscription.onMessage((raw) => {
      const message = decodeTaskChanged(raw);
      if (message) listener(message);
    });
  }

  onReconnect(listener: () => void): () => void {
    return this.subscription.onReconnect(listener);
  }

  close(): Promise<void> {
    return this.subscription.close();
  }
}
