/**
 * Parsing uploaded parts: CSV and NDJSON rows into float32 chunks per group and split, every refusal
 * naming its line and column; the client's part cutter keeps lines whole and repeats the header;
 * the seeded split is fixed, 70/15/15 and disjoint.
 */
import { describe, expect, it } from 'vitest';
import { parsePart, RowError, TooManyRowsError, type PartOptions } from '../../src/http/upload-rows.js';
import { seededSplits } from '../../src/meta/index.js';
import { createFastadaptClient, partsOf, uploadFamily } from '../../clients/typescript/src/index.js';

const regression: PartOptions = { kind: 'regression', inputDim: 2, format: 'csv', maxRows: 1000 };
/** The body in pieces of `size` characters, as a network would deliver it. */
async function* pieces(text: string, size = 7): AsyncGenerator<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function refusal(text: string, options: PartOptions = regression): Promise<RowError> {
  const error = await parsePart(pieces(text), options).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(RowError);
  return error as RowError;
}

describe('parsePart', () => {
  it('packs CSV rows per task, whatever the column order and however the body is cut', async () => {
    const part = await parsePart(pieces('x1,task,y,x2\r\n0.5,a,1,2\n1.5,"b",2,3\n2.5,a,3,4\n\n'), regression);
    expect(part.rows).toBe(3);
    const a = part.chunks.find((c) => c.groupKey === 'task:a')!;
    expect(Array.from(a.x)).toEqual([0.5, 2, 2.5, 4]);
    expect(Array.from(a.y)).toEqual([1, 3]);
    expect(part.chunks.find((c) => c.groupKey === 'task:b')).toMatchObject({ examples: 1, split: null });
  });

  it('groups a class pool by label and keeps the split column', async () => {
    const options: PartOptions = { kind: 'classification', inputDim: 1, format: 'csv', maxRows: 100 };
    const part = await parsePart(pieces('label,x,split\n3,0.1,train\n3,0.2,train\n4,0.3,val\n'), options);
    expect(part.chunks.map((c) => [c.groupKey, c.split, c.examples])).toEqual([['class:3', 'train', 2], ['class:4', 'val', 1]]);
  });

  it('reads NDJSON rows', async () => {
    const part = await parsePart(pieces('{"task":"s","y":1,"x":[1,2]}\n{"task":7,"y":2,"x":[3,4]}'), { ...regression, format: 'ndjson' });
    expect(part.chunks.map((c) => c.groupKey).sort()).toEqual(['task:7', 'task:s']);
  });

  it('names the line and column of the first bad row', async () => {
    expect(await refusal('task,y,x1,x2\na,1,2,3\na,1,,3\n')).toMatchObject({ line: 3, column: 'x1' });
    expect(await refusal('task,y,x1,x2\na,1,2,abc\n')).toMatchObject({ line: 2, column: 'x2' });
    expect(await refusal('task,y,x1,x2\na,1e300,2,3\n')).toMatchObject({ line: 2, column: 'y' });
    expect(await refusal('task,y,x1,x2\na,1,2\n')).toMatchObject({ line: 2, column: null });
    expect(await refusal('task,y,x1\n')).toMatchObject({ line: 1, detail: expect.stringMatching(/1 feature columns/) });
    expect(await refusal('label,x1,x2\n', regression)).toMatchObject({ line: 1 });
    const pool: PartOptions = { kind: 'classification', inputDim: 1, format: 'csv', maxRows: 10 };
    expect(await refusal('label,x\n1.5,2\n', pool)).toMatchObject({ line: 2, column: 'label' });
    expect(await refusal('label,x,split\n1,2,holdout\n', pool)).toMatchObject({ line: 2, column: 'split' });
    expect(await refusal(`task,y,x1,x2\na,1,2,${'1'.repeat(10_000)}`)).toMatchObject({ line: 2, detail: expect.stringMatching(/longer than/) });
    expect(await refusal('{"task":"a","y":1,"x":[1,2]}\n{"task":"a","y":1,"x":[1,null]}', { ...regression, format: 'ndjson' })).toMatchObject({ line: 2, column: 'x[1]' });
    expect(await refusal('{"task":"a","y":1,"x":[1,2],"split":"val"}\n{"task":"a","y":1,"x":[1,2]}', { ...regression, format: 'ndjson' })).toMatchObject({ line: 2, column: 'split' });
  });

  it('reads every number as Number() would, plain decimals (the fast path) or not', async () => {
    const values: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const v = (Math.sin(i) * 10 ** (i % 7)) / 3;
      values.push(i % 5 === 0 ? v.toExponential(6) : v.toFixed(i % 9), i % 11 === 0 ? '.5' : i % 13 === 0 ? '-0' : '007.250');
    }
    const text = `task,y,x1,x2\n${Array.from({ length: values.length / 2 }, (_, r) => `t,1,${values[2 * r]},${values[2 * r + 1]}`).join('\n')}`;
    const part = await parsePart(pieces(text, 4096), { ...regression, maxRows: 10_000 });
    expect(Array.from(part.chunks.flatMap((c) => Array.from(c.x)))).toEqual(values.map((v) => Math.fround(Number(v))));
  });

  it('stops at maxRows', async () => {
    await expect(parsePart(pieces('task,y,x1,x2\na,1,2,3\na,1,2,3\n'), { ...regression, maxRows: 1 })).rejects.toBeInstanceOf(TooManyRowsError);
  });
});

describe('partsOf', () => {
  it('cuts at line ends within the part size and repeats the CSV header', async () => {
    const rows = Array.from({ length: 50 }, (_, i) => `t${i % 3},${i},${i / 2}`);
    const text = `task,y,x1\n${rows.join('\n')}\n`;
    const parts = [];
    for await (const part of partsOf(pieces(text, 13), 'csv', 80)) parts.push(new TextDecoder().decode(part.body));
    expect(parts.length).toBeGreaterThan(5);
    for (const part of parts) {
      expect(part.startsWith('task,y,x1\n')).toBe(true);
      expect(part.length).toBeLessThanOrEqual(80);
      expect(part.endsWith('\n')).toBe(true);
    }
    expect(parts.flatMap((p) => p.split('\n').slice(1, -1))).toEqual(rows);
  });
});

describe('seededSplits', () => {
  it('deals keys 70/15/15, the same way whatever their order', () => {
    const keys = Array.from({ length: 40 }, (_, i) => `class:${i}`);
    const splits = seededSplits(keys);
    const count = (s: string) => [...splits.values()].filter((v) => v === s).length;
    expect([count('train'), count('val'), count('test')]).toEqual([28, 6, 6]);
    expect(seededSplits([...keys].reverse())).toEqual(splits);
    expect(() => seededSplits(['a', 'b'])).toThrow(RangeError);
  });
});

describe('uploadFamily', () => {
  it('retries a part the server failed, without sending any part twice once accepted, then commits', async () => {
    const calls: string[] = [];
    let failures = 1;
    const fetch = async (request: Request) => {
      const url = new URL(request.url);
      calls.push(`${request.method} ${url.pathname}`);
      const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json' } });
      if (request.method === 'POST' && url.pathname === '/task-families') return json(201, { id: 'f1', rowCount: 0 });
      if (request.method === 'PUT') {
        if (url.pathname.endsWith('/2') && failures-- > 0) return json(503, { type: 'about:blank', title: 'Service Unavailable', status: 503 });
        const rows = (await request.text()).trim().split('\n').length - 1;
        return json(200, { part: 1, rows, family: { id: 'f1', rowCount: rows } });
      }
      return json(200, { id: 'f1', status: 'ready', rowCount: 9 });
    };
    const api = createFastadaptClient({ baseUrl: 'http://fastadapt.test', apiKey: 'k', fetch });
    const retried: number[] = [];
    const progress: number[] = [];
    const text = `task,y,x\n${Array.from({ length: 9 }, (_, i) => `t${i},${i},${i}`).join('\n')}\n`;
    const family = await uploadFamily(api, pieces(text), {
      name: 'f', kind: 'regression', format: 'csv', partBytes: 30, concurrency: 1,
      onRetry: (part) => retried.push(part),
      onProgress: (p) => progress.push(p.rows),
    });
    expect(family).toMatchObject({ status: 'ready' });
    expect(retried).toEqual([2]);
    expect(calls.filter((c) => c === 'PUT /task-families/f1/parts/2')).toHaveLength(2);
    expect(calls.at(-1)).toBe('POST /task-families/f1/commit');
    expect(progress.at(-1)).toBe(9);
  });
});
