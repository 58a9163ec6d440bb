/**
 * A task's head versions: listed newest first with what each was adapted on, and the pin that makes
 * one of them serve instead of the latest. The pin is its own field (`pinned_version`) beside the
 * latest (`head_version`, which numbers the next version), so rolling back never moves that counter.
 */
import type { Db } from '../client.js';

export interface HeadView {
  version: number;
  supportSize: number | null;
  examplesThrough: number | null;
  supportLoss: { before: number; after: number };
  diverged: boolean;
  adaptationId: string | null;
  createdAt: string;
}

/**
 * The task's pin and latest with its newest heads, in one statement so they come from one snapshot: a
 * head committed between two reads would list a version that `latest` does not name yet.
 */
const LIST_HEADS = `
  SELECT t.pinned_version, t.head_version, h.version, h.support_loss_before, h.support_loss_after, h.diverged, h.created_at, h.adaptation_id, h.support_size, h.examples_through
  FROM tasks t
  LEFT JOIN LATERAL (
    SELECT h.version, h.support_loss_before, h.support_loss_after, h.diverged, h.created_at, a.id AS adaptation_id, a.support_size, a.examples_through
    FROM adapted_heads h
    LEFT JOIN adaptations a ON a.task_id = h.task_id AND a.head_version = h.version
    WHERE h.task_id = t.id
    ORDER BY h.version DESC
    LIMIT $3
  ) h ON true
  WHERE t.id = $1 AND t.tenant_id = $2`;

/** The task's newest `limit` head versions, its pin and latest; null when the task is not the tenant's. */
export async function listHeads(db: Db, tenantId: string, taskId: string, limit: number): Promise<{ items: HeadView[]; pinned: number | null; latest: number | null } | null> {
  const { rows } = await db.sql.query<{
    pinned_version: number | null; head_version: number | null;
    version: number | null; support_loss_before: number; support_loss_after: number; diverged: boolean; created_at: Date;
    adaptation_id: string | null; support_size: number | null; examples_through: string | null;
  }>({ name: 'heads-list', text: LIST_HEADS, values: [taskId, tenantId, limit] });
  if (rows.length === 0) return null;
  return {
    items: rows
      .filter((row) => row.version !== null)
      .map((row) => ({
        version: row.version!,
        supportSize: row.support_size,
        examplesThrough: row.examples_through === null ? null : Number(row.examples_through),
        supportLoss: { before: row.support_loss_before, after: row.support_loss_after },
        diverged: row.diverged,
        adaptationId: row.adaptation_id,
        createdAt: row.created_at.toISOString(),
      })),
    pinned: rows[0].pinned_version,
    latest: rows[0].head_version,
  };
}

export type PinOutcome = { status: 'missing' } | { status: 'no-version' } | { status: 'pinned'; pinned: number | null };

/**
 * Serves head `version` of the task from now on (null: the latest again). A version the task does
 * not have is refused. One statement: the version is checked where it is set.
 */
export async function pinHead(db: Db, tenantId: string, taskId: string, version: number | null): Promise<PinOutcome> {
  const { rows } = await db.sql.query<{ pinned_version: number | null }>({
    name: 'heads-pin',
    text: `UPDATE tasks t SET pinned_version = $3
           WHERE t.id = $1 AND t.tenant_id = $2 AND ($3::int IS NULL OR EXISTS (SELECT 1 FROM adapted_heads h WHERE h.task_id = t.id AND h.version = $3))
           RETURNING t.pinned_version`,
    values: [taskId, tenantId, version],
  });
  if (rows[0]) return { status: 'pinned', pinned: rows[0].pinned_version };
  const exists = await db.prisma.task.findFirst({ where: { id: taskId, tenantId }, select: { id: true } });
  return exists ? { status: 'no-version' } : { status: 'missing' };
}
