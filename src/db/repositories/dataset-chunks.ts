/**
 * `dataset_chunks`: an uploaded family's rows, as float32 runs per group (a task, or a class of a class
 * pool) and part. Statements here run on a node-postgres client the caller holds (inside its
 * transaction: task-families.ts owns the family row and the transaction), except loading a committed
 * family for sampling, which reads on its own.
 */
import type pg from 'pg';
import type { PackedDataset, Split } from '../../meta/index.js';
import { float32Bytes, readFloat32LEInto } from '../../util/float32.js';

/** A run of rows of one group as a part stores it. */
export interface ChunkRows {
  groupKey: string;
  split: Split | null;
  examples: number;
  x: Float32Array;
  y: Float32Array;
}

/** A group of a family: its key, the splits its rows name (empty when none does), its rows. */
export interface ChunkGroup {
  groupKey: string;
  splits: (Split | null)[];
  examples: number;
}

/**
 * Per INSERT statement: at most this many bytes of rows (or one chunk) and this many chunks (6
 * parameters each, far below Postgres's 65535): few round trips, no huge statement.
 */
const INSERT_BYTES = 8 * 1024 * 1024;
const INSERT_CHUNKS = 1000;

/** Little-endian float32 bytes as a Buffer (what node-postgres sends as bytea). */
function bytea(values: Float32Array): Buffer {
  const bytes = float32Bytes(values);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Rows of the family's parts other than `part`. */
export async function rowsOutsidePart(client: pg.ClientBase, familyId: string, part: number): Promise<number> {
  const { rows } = await client.query<{ n: string }>('SELECT COALESCE(SUM(examples), 0) AS n FROM dataset_chunks WHERE family_id = $1 AND part <> $2', [familyId, part]);
  return Number(rows[0].n);
}

/** Replaces part `part` of the family with `chunks` (a retried part replaces itself). */
export async function replacePartChunks(client: pg.ClientBase, familyId: string, part: number, chunks: readonly ChunkRows[]): Promise<void> {
  await client.query('DELETE FROM dataset_chunks WHERE family_id = $1 AND part = $2', [familyId, part]);
  for (let from = 0; from < chunks.length;) {
    let to = from + 1;
    for (let bytes = chunks[from].x.byteLength; to < chunks.length && to - from < INSERT_CHUNKS && bytes + chunks[to].x.byteLength <= INSERT_BYTES; to++) {
      bytes += chunks[to].x.byteLength;
    }
    const batch = chunks.slice(from, to);
    const values: unknown[] = [familyId, part];
    const tuples = batch.map((chunk, i) => {
      const at = values.length;
      values.push(from + i, chunk.groupKey, chunk.split, chunk.examples, bytea(chunk.x), bytea(chunk.y));
      return `($1, $2, $${at + 1}, $${at + 2}, $${at + 3}, $${at + 4}, $${at + 5}, $${at + 6})`;
    });
    await client.query(`INSERT INTO dataset_chunks (family_id, part, seq, group_key, split, examples, x, y) VALUES ${tuples.join(', ')}`, values);
    from = to;
  }
}

/** The family's groups, by key. */
export async function chunkGroups(client: pg.ClientBase, familyId: string): Promise<ChunkGroup[]> {
  const { rows } = await client.query<{ group_key: string; splits: (Split | null)[]; examples: string }>(
    `SELECT group_key, array_agg(DISTINCT split) AS splits, SUM(examples) AS examples
       FROM dataset_chunks WHERE family_id = $1 GROUP BY group_key ORDER BY group_key`,
    [familyId],
  );
  return rows.map((r) => ({ groupKey: r.group_key, splits: r.splits, examples: Number(r.examples) }));
}

/** Sets each group's split (the commit's seeded split, for rows without a split column). */
export async function setGroupSplits(client: pg.ClientBase, familyId: string, splits: ReadonlyMap<string, Split>): Promise<void> {
  await client.query(
    `UPDATE dataset_chunks AS c SET split = s.split
       FROM unnest($2::text[], $3::text[]) AS s(group_key, split)
      WHERE c.family_id = $1 AND c.group_key = s.group_key`,
    [familyId, [...splits.keys()], [...splits.values()]],
  );
}

/** Bytes of rows read per query while loading (or one chunk): bounds what node-postgres holds at once. */
const LOAD_BYTES = 16 * 1024 * 1024;

/**
 * Every row of a family (all chunks split), packed for sampling: one Float32Array of inputs and one
 * of targets, ordered by split then group, so each task (and each split's class pool) is one range.
 * With `targetsOnly` the inputs are not read (`x` is empty): what a commit's check needs. `client`
 * may be the pool.
 */
export async function loadPackedRows(client: pg.Pool | pg.ClientBase, familyId: string, inputDim: number, classPool: boolean, targetsOnly = false): Promise<PackedDataset> {
  const { rows: index } = await client.query<{ part: number; seq: number; group_key: string; split: Split; examples: number }>(
    `SELECT part, seq, group_key, split, examples FROM dataset_chunks WHERE family_id = $1 ORDER BY split, group_key, part, seq`,
    [familyId],
  );
  const total = index.reduce((sum, c) => sum + c.examples, 0);
  const x = new Float32Array(targetsOnly ? 0 : total * inputDim);
  const y = new Float32Array(total);
  const tasks: { key: string; split: Split; start: number; count: number }[] = [];
  let row = 0;
  for (let from = 0; from < index.length;) {
    let to = from + 1;
    const rowBytes = ((targetsOnly ? 0 : inputDim) + 1) * 4;
    for (let bytes = index[from].examples * rowBytes; to < index.length && to - from < INSERT_CHUNKS; to++) {
      bytes += index[to].examples * rowBytes;
      if (bytes > LOAD_BYTES) break;
    }
    const batch = index.slice(from, to);
    from = to;
    const { rows } = await client.query<{ part: number; seq: number; x?: Buffer; y: Buffer }>(
      `SELECT c.part, c.seq, ${targetsOnly ? '' : 'c.x, '}c.y FROM dataset_chunks AS c
         JOIN unnest($2::int[], $3::int[]) AS k(part, seq) ON c.part = k.part AND c.seq = k.seq
        WHERE c.family_id = $1`,
      [familyId, batch.map((c) => c.part), batch.map((c) => c.seq)],
    );
    const bytes = new Map(rows.map((r) => [`${r.part}:${r.seq}`, r]));
    for (const chunk of batch) {
      const stored = bytes.get(`${chunk.part}:${chunk.seq}`)!;
      // Reads straight into the packed arrays: no intermediate Float32Array per chunk.
      if (!targetsOnly) readInto(stored.x!, x, row * inputDim, chunk.examples * inputDim);
      readInto(stored.y, y, row, chunk.examples);
      const last = tasks.at(-1);
      if (last && last.key === chunk.group_key && last.split === chunk.split) last.count += chunk.examples;
      else tasks.push({ key: chunk.group_key, split: chunk.split, start: row, count: chunk.examples });
      row += chunk.examples;
    }
  }
  return { x, y, tasks: tasks.map(({ split, start, count }) => ({ split, start, count })), classPool };
}

/** `count` little-endian float32 values of `bytes` into `out` from `offset`. */
function readInto(bytes: Buffer, out: Float32Array, offset: number, count: number): void {
  if (bytes.byteLength !== count * 4) throw new RangeError(`a stored chunk holds ${bytes.byteLength} bytes, expected ${count * 4}`);
  readFloat32LEInto(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0, count, out, offset);
}
