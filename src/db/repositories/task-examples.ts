/**
 * A task's stored labelled examples, the `task_examples` table, and what appending one changes on the
 * task row: the bounded support set (oldest evicted first, with a per-class floor so no class of a
 * classification task disappears), the prequential totals (scored by the caller before the append,
 * task-live.ts), and for `readapt: auto` the one adaptation of the stored set that is queued or
 * running at a time (readapt.ts continues it while newer examples exist).
 *
 * Appends to one task queue on its row lock (SELECT ... FOR UPDATE), so example numbers are
 * consecutive and the count, eviction and totals agree with the rows.
 */
import type pg from 'pg';
import type { Examples, GuardPolicy } from '../../meta/index.js';
import { float32Bytes, float32sFromBytes } from '../../util/float32.js';
import type { Db } from '../client.js';
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

/** The task row, locked; `readapt_active` as it stands unless it is stale (see READAPT_STALE_AFTER). */
const LOCK_TASK = `
  SELECT t.example_seq, t.example_count,
         t.readapt_active AND EXISTS (
           SELECT 1 FROM adaptations a
           WHERE a.task_id = t.id AND a.auto_readapt AND (a.status IN ('queued', 'running') OR a.finished_at > now() - $3::interval)
         ) AS readapt_active
  FROM tasks t WHERE t.id = $1 AND t.tenant_id = $2
  FOR UPDATE OF t`;

const INSERT_EXAMPLES = `
  INSERT INTO task_examples (task_id, seq, x, y)
  SELECT $1, $2::bigint + u.o, u.x, u.y FROM unnest($3::bytea[], $4::real[]) WITH ORDINALITY AS u(x, y, o)`;

/** The oldest examples above their class's floor (the newest `floor` of each class stay), `$3` of them. */
const EVICT = `
  DELETE FROM task_examples e USING (
    SELECT seq FROM (
      SELECT seq, row_number() OVER (PARTITION BY y ORDER BY seq DESC) AS newer FROM task_examples WHERE task_id = $1
    ) ranked
    WHERE newer > $2 ORDER BY seq LIMIT $3
  ) old
  WHERE e.task_id = $1 AND e.seq = old.seq`;

const INSERT_STORED_SET_ADAPTATION = `
  INSERT INTO adaptations (id, tenant_id, task_id, steps, inner_lr, guard, support_size, support_x, support_y, from_examples, auto_readapt)
  VALUES ($1, $2, $3, $4, $5, $6::guard_policy, $7, '', '', true, true)`;

const UPDATE_TASK = `
  UPDATE tasks SET example_seq = $2, example_count = $3, readapt_active = readapt_active OR $4,
    live_scored = live_scored + cardinality($5::float8[]), live_correct = live_correct + $6, live_squared_error = live_squared_error + $7,
    live_recent = (live_recent || $5::float8[])[greatest(1, cardinality(live_recent) + cardinality($5::float8[]) - ${LIVE_RECENT - 1}):]
  WHERE id = $1
  RETURNING (SELECT avg(v) FROM unnest(live_recent) v) AS recent_mean`;

/** Runs `work` in one transaction on one pooled connection. */
async function transaction<T>(db: Db, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await db.sql.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

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
  return transaction(db, async (client) => {
    const { rows } = await client.query<{ example_seq: string; example_count: number; readapt_active: boolean }>({
      name: 'examples-lock-task',
      text: LOCK_TASK,
      values: [target.taskId, target.tenantId, READAPT_STALE_AFTER],
    });
    const task = rows[0];
    if (!task) return null;
    const firstSeq = Number(task.example_seq);
    const xs = Array.from({ length: examples.n }, (_, i) => float32Bytes(examples.x.subarray(i * d, (i + 1) * d)));
    await client.query({ name: 'examples-insert', text: INSERT_EXAMPLES, values: [target.taskId, firstSeq, xs, Array.from(examples.y)] });
    const excess = task.example_count + examples.n - maxExamples;
    const evicted = excess > 0 ? (await client.query({ name: 'examples-evict', text: EVICT, values: [target.taskId, classFloor(maxExamples, target.nWay), excess] })).rowCount ?? 0 : 0;
    const stored = task.example_count + examples.n - evicted;
    let readaptId: string | null = null;
    if (target.readapt === 'auto' && !task.readapt_active) {
      readaptId = uuidv7();
      const { steps, innerLr, guard } = input.readapt;
      await client.query({ name: 'examples-readapt', text: INSERT_STORED_SET_ADAPTATION, values: [readaptId, target.tenantId, target.taskId, steps, innerLr, guard, stored] });
    }
    const lastSeq = firstSeq + examples.n;
    const updated = await client.query<{ recent_mean: number | null }>({
      name: 'examples-update-task',
      text: UPDATE_TASK,
      values: [target.taskId, lastSeq, stored, readaptId !== null, scores?.perExample ?? [], scores?.correct ?? 0, scores?.squaredError ?? 0],
    });
    return { added: examples.n, stored, evicted, lastSeq, readaptId, recentMean: updated.rows[0]?.recent_mean ?? null };
  });
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
  return transaction(db, async (client) => {
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
