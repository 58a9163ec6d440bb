/**
 * A task's stored labelled examples, the `task_examples` table, and what appending one changes on the
 * task row: the bounded support set (oldest evicted first, with a per-class floor so no class of a
 * classification task disappears), the prequential totals (scored by the caller before the append,
 * task-live.ts), and for `readapt: auto` the one adaptation of the stored set that is queued or
 * running at a time (continueReadapt, below, continues it while newer examples exist).
 *
 * Appends to one task queue on its row lock (SELECT ... FOR UPDATE, see APPEND), so example numbers are
 * consecutive and the count, eviction and totals agree with the rows.
 */
import type { Examples, GuardPolicy } from '../../meta/index.js';
import { float32Bytes, float32sFromBytes } from '../../util/float32.js';
import { inTransaction, type Db } from '../client.js';
import { uuidv7, type SupportArrays } from './adaptations.js';
import { LIVE_RECENT } from './task-live.js';
import type { AdaptTarget } from './tasks.js';

/** The prequential scores of an append's examples (none when the task had no head to score with). */
export interface AppendScores {
  /** One score per example in order: 1 or 0 (right or wrong), or the squared error. */
  perExample: number[];
  correct: number;
  squaredError: number;
}

/** Settings of the adaptation an append starts for a `readapt: auto` task (the meta-model's defaults). */
export interface ReadaptSettings {
  steps: number;
  innerLr: number;
  guard: GuardPolicy;
}

export interface AppendResult {
  added: number;
  stored: number;
  evicted: number;
  /** The sequence number of the last example appended (examples are numbered from 1 per task). */
  lastSeq: number;
  /** The adaptation of the stored set this append started (readapt auto, none already queued or running). */
  readaptId: string | null;
  /** The task's mean score over its last scored examples after this append (null: none scored yet). */
  recentMean: number | null;
}

/**
 * How many of its newest examples each class keeps when eviction runs: half the capacity shared among
 * the classes (at least 1), so the floors together never fill the set and eviction always finds an
 * example above its floor. Regression has no floor.
 */
export function classFloor(maxExamples: number, nWay: number | null): number {
  return nWay === null ? 0 : Math.max(1, Math.floor(maxExamples / (2 * nWay)));
}

/**
 * How long after the last readapt-auto adaptation of a task ended, with none queued or running, the
 * task's `readapt_active` is taken for a chain whose worker died between storing a head and queueing
 * the next adaptation (continueReadapt runs milliseconds after the head is stored): the next append
 * then starts a chain again rather than the task never adapting by itself again.
 */
const READAPT_STALE_AFTER = '30 seconds';

/**
 * The append after the task's row lock is taken (a statement of its own before it, so this one's
 * snapshot sees everything committed by the appends that held the lock before), as one statement:
 * the lock, which the burst's other appends and the worker's head write wait for, is held for this
 * statement and the commit, not for a round trip per step:
 * - `task` locks the row (and checks the tenant); `readapt_active` counts unless stale
 *   (READAPT_STALE_AFTER);
 * - `doomed` picks the oldest examples above their class's floor (`$5`: the newest `$5` of each
 *   class stay), as many as the set would exceed `$6` by, among the stored and the incoming ones
 *   together (one snapshot: the incoming rows are not yet visible as rows, so they join by value);
 *   stored ones are deleted, incoming ones are not inserted;
 * - for readapt auto (`$11`) with none under way, the adaptation of the stored set (`$7`) is written;
 * - the task row takes the new numbering, count, prequential scores (`$12`-`$14`) and flag.
 */
const APPEND = `
  WITH task AS (
    SELECT t.id, t.tenant_id, t.example_seq, t.example_count,
           t.readapt_active AND EXISTS (
             SELECT 1 FROM adaptations a
             WHERE a.task_id = t.id AND a.auto_readapt AND (a.status IN ('queued', 'running') OR a.finished_at > now() - $15::interval)
           ) AS readapt_active
    FROM tasks t WHERE t.id = $1 AND t.tenant_id = $2
    FOR UPDATE OF t
  ), incoming AS (
    SELECT task.example_seq + u.o AS seq, u.x, u.y FROM task, unnest($3::bytea[], $4::real[]) WITH ORDINALITY AS u(x, y, o)
  ), doomed AS (
    SELECT seq FROM (
      SELECT seq, row_number() OVER (PARTITION BY y ORDER BY seq DESC) AS newer
      FROM (SELECT seq, y FROM task_examples WHERE task_id = $1 UNION ALL SELECT seq, y FROM incoming) every_example
    ) ranked
    WHERE newer > $5 ORDER BY seq LIMIT (SELECT greatest(0, example_count + cardinality($4::real[]) - $6) FROM task)
  ), removed AS (
    DELETE FROM task_examples e USING doomed WHERE e.task_id = $1 AND e.seq = doomed.seq RETURNING e.seq
  ), inserted AS (
    INSERT INTO task_examples (task_id, seq, x, y) SELECT $1, seq, x, y FROM incoming WHERE seq NOT IN (SELECT seq FROM doomed) RETURNING seq
  ), readapt AS (
    INSERT INTO adaptations (id, tenant_id, task_id, steps, inner_lr, guard, support_size, support_x, support_y, from_examples, auto_readapt)
    SELECT $7, task.tenant_id, task.id, $8, $9, $10::guard_policy, task.example_count + cardinality($4::real[]) - (SELECT count(*) FROM doomed), '', '', true, true
    FROM task WHERE $11 AND NOT task.readapt_active
    RETURNING id
  )
  UPDATE tasks t SET
    example_seq = task.example_seq + cardinality($4::real[]),
    example_count = task.example_count + cardinality($4::real[]) - (SELECT count(*) FROM doomed),
    readapt_active = task.readapt_active OR EXISTS (SELECT 1 FROM readapt),
    live_scored = t.live_scored + cardinality($12::float8[]), live_correct = t.live_correct + $13, live_squared_error = t.live_squared_error + $14,
    live_recent = (t.live_recent || $12::float8[])[greatest(1, cardinality(t.live_recent) + cardinality($12::float8[]) - ${LIVE_RECENT - 1}):]
  FROM task WHERE t.id = task.id
  RETURNING t.example_seq, t.example_count, (SELECT count(*) FROM doomed) AS evicted, (SELECT id FROM readapt) AS readapt_id,
            (SELECT avg(v) FROM unnest(t.live_recent) v) AS recent_mean`;

/**
 * Appends validated examples to the task, evicts beyond `maxExamples`, adds the prequential scores,
 * and for a `readapt: auto` task with no adaptation of its stored set under way writes one (queued:
 * the caller enqueues `readaptId`). One transaction. Returns null when the task is not the tenant's.
 */
export async function appendExamples(
  db: Db,
  target: AdaptTarget,
  input: { examples: SupportArrays; scores: AppendScores | null; maxExamples: number; readapt: ReadaptSettings },
): Promise<AppendResult | null> {
  const { examples, scores, maxExamples } = input;
  const d = target.inputDim;
  const xs = Array.from({ length: examples.n }, (_, i) => float32Bytes(examples.x.subarray(i * d, (i + 1) * d)));
  const { steps, innerLr, guard } = input.readapt;
  const row = await inTransaction(db, async (client) => {
    const locked = await client.query({ name: 'examples-lock', text: 'SELECT 1 FROM tasks WHERE id = $1 AND tenant_id = $2 FOR UPDATE', values: [target.taskId, target.tenantId] });
    if (locked.rowCount === 0) return null;
    const { rows } = await client.query<{ example_seq: string; example_count: number; evicted: string; readapt_id: string | null; recent_mean: number | null }>({
      name: 'examples-append',
      text: APPEND,
      values: [
        target.taskId, target.tenantId, xs, Array.from(examples.y), classFloor(maxExamples, target.nWay), maxExamples,
        uuidv7(), steps, innerLr, guard, target.readapt === 'auto',
        scores?.perExample ?? [], scores?.correct ?? 0, scores?.squaredError ?? 0, READAPT_STALE_AFTER,
      ],
    });
    return rows[0] ?? null;
  });
  if (!row) return null;
  return { added: examples.n, stored: row.example_count, evicted: Number(row.evicted), lastSeq: Number(row.example_seq), readaptId: row.readapt_id, recentMean: row.recent_mean };
}

export interface ExampleView {
  seq: number;
  x: number[];
  y: number;
  createdAt: string;
}

/**
 * A page of the task's stored examples, oldest first, after sequence number `after`; null when the
 * task is not the tenant's.
 */
export async function listExamples(db: Db, tenantId: string, taskId: string, page: { limit: number; after: number }): Promise<{ items: ExampleView[]; nextAfter: number | null } | null> {
  const task = await db.prisma.task.findFirst({ where: { id: taskId, tenantId }, select: { id: true } });
  if (!task) return null;
  const rows = await db.prisma.taskExample.findMany({ where: { taskId, seq: { gt: BigInt(page.after) } }, orderBy: { seq: 'asc' }, take: page.limit + 1 });
  const kept = rows.slice(0, page.limit);
  return {
    items: kept.map((row) => ({ seq: Number(row.seq), x: Array.from(float32sFromBytes(row.x)), y: row.y, createdAt: row.createdAt.toISOString() })),
    nextAfter: rows.length > page.limit ? Number(kept[kept.length - 1].seq) : null,
  };
}

/**
 * Deletes every stored example of the task (numbering goes on from where it was, so a head's
 * `examplesThrough` keeps its meaning). Returns how many, or null when the task is not the tenant's.
 */
export async function clearExamples(db: Db, tenantId: string, taskId: string): Promise<number | null> {
  return inTransaction(db, async (client) => {
    const { rowCount } = await client.query('UPDATE tasks SET example_count = 0 WHERE id = $1 AND tenant_id = $2', [taskId, tenantId]);
    if (rowCount === 0) return null;
    return (await client.query('DELETE FROM task_examples WHERE task_id = $1', [taskId])).rowCount ?? 0;
  });
}

/** How many examples the task stores now (0 for a task that does not exist). */
export async function storedExampleCount(db: Db, taskId: string): Promise<number> {
  const { rows } = await db.sql.query<{ example_count: number }>({ name: 'examples-count', text: 'SELECT example_count FROM tasks WHERE id = $1', values: [taskId] });
  return rows[0]?.example_count ?? 0;
}

/** The task's stored examples as a support set, and the newest one's number (0: none). */
export async function loadStoredSet(db: Db, taskId: string, inputDim: number): Promise<{ support: Examples; through: number }> {
  const { rows } = await db.sql.query<{ seq: string; x: Buffer; y: number }>({
    name: 'examples-load',
    text: 'SELECT seq, x, y FROM task_examples WHERE task_id = $1 ORDER BY seq',
    values: [taskId],
  });
  const n = rows.length;
  const x = new Float32Array(n * inputDim);
  const y = new Float32Array(n);
  rows.forEach((row, i) => {
    x.set(float32sFromBytes(row.x).subarray(0, inputDim), i * inputDim);
    y[i] = row.y;
  });
  return { support: { n, x, y }, through: n === 0 ? 0 : Number(rows[n - 1].seq) };
}

const CONTINUE_READAPT = `
  WITH task AS (
    SELECT id, tenant_id, example_seq, example_count FROM tasks WHERE id = $1 FOR UPDATE
  ), more AS (
    SELECT * FROM task WHERE example_seq > $2 AND example_count > 0
  ), next AS (
    INSERT INTO adaptations (id, tenant_id, task_id, steps, inner_lr, guard, support_size, support_x, support_y, from_examples, auto_readapt)
    SELECT $3, tenant_id, id, $4, $5, $6::guard_policy, example_count, '', '', true, true FROM more
    RETURNING id
  )
  UPDATE tasks t SET readapt_active = EXISTS (SELECT 1 FROM next) FROM task WHERE t.id = task.id
  RETURNING t.readapt_active`;

/**
 * readapt auto: an adaptation of the stored set ended (stored a head or failed) having seen the
 * examples through `through`. If newer ones were stored meanwhile, writes the next adaptation of the
 * stored set (queued: the caller enqueues it), so the last adaptation of a burst always includes its
 * newest example; otherwise the task has none under way again and the next append starts one. One
 * statement under the task's row lock, which appends take too: an append either committed before
 * (and is seen here) or sees `readapt_active` false after (and starts its own), never neither.
 * @returns the next adaptation's id, or null.
 */
export async function continueReadapt(db: Db, taskId: string, through: number, settings: ReadaptSettings): Promise<string | null> {
  const id = uuidv7();
  const { rows } = await db.sql.query<{ readapt_active: boolean }>({
    name: 'examples-continue-readapt',
    text: CONTINUE_READAPT,
    values: [taskId, through, id, settings.steps, settings.innerLr, settings.guard],
  });
  return rows[0]?.readapt_active ? id : null;
}
