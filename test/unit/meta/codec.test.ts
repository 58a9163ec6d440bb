import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { checkParamsMatch, CODEC_VERSION, CodecError, decodeParams, encodeParams, type NamedParams } from '../../../src/meta/codec.js';
import { Rng } from '../../../src/meta/rng.js';

function params(): NamedParams {
  const rng = new Rng(1);
  const randn = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  return {
    'body.0.weight': { shape: [1, 40], data: randn(40) },
    'body.0.bias': { shape: [40], data: randn(40) },
    'head.weight': { shape: [40, 1], data: randn(40) },
    'head.bias': { shape: [1], data: Float32Array.of(0.25) },
    scalar: { shape: [], data: Float32Array.of(0.5) },
    empty: { shape: [0, 3], data: new Float32Array(0) },
  };
}

/** Rewrites the checksum so a test reaches the check after it. */
function reseal(bytes: Uint8Array): Uint8Array {
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(12, crc32(bytes.subarray(16)), true);
  return bytes;
}

/** A blob whose header is replaced by `header` (data unchanged), correctly sealed. */
function withHeader(header: unknown, data = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const length = Math.ceil(json.length / 4) * 4;
  const bytes = new Uint8Array(16 + length + data.length).fill(0x20);
  bytes.set([0x46, 0x41, 0x44, 0x50], 0);
  const view = new DataView(bytes.buffer);
  view.setUint16(4, CODEC_VERSION, true);
  view.setUint16(6, 0, true);
  view.setUint32(8, length, true);
  bytes.set(json, 16);
  bytes.set(data, 16 + length);
  return reseal(bytes);
}

function codecError(fn: () => unknown): CodecError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CodecError);
    return e as CodecError;
  }
  throw new Error('expected a CodecError');
}

describe('parameter codec', () => {
  it('round-trips names, order, shapes and exact float32 values, extreme values included', () => {
    const original = params();
    original.extremes = { shape: [3], data: Float32Array.of(-0, 3.4028234663852886e38, 1.401298464324817e-45) };
    const bytes = encodeParams(original);
    const decoded = decodeParams(bytes);
    expect(Object.keys(decoded)).toEqual(Object.keys(original));
    expect(decoded).toEqual(original);
    expect(Object.is(decoded.extremes.data[0], -0)).toBe(true);
    // Compact: the header plus 4 bytes a value.
    const values = Object.values(original).reduce((n, p) => n + p.data.length, 0);
    expect(bytes.length).toBeLessThan(16 + 400 + 4 * values);
  });

  it('lays data out 4-byte aligned, little-endian, after the header', () => {
    const bytes = encodeParams({ w: { shape: [2], data: Float32Array.of(1, -2) } });
    const view = new DataView(bytes.buffer);
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0x46, 0x41, 0x44, 0x50]);
    expect(view.getUint16(4, true)).toBe(1);
    const headerLength = view.getUint32(8, true);
    expect(headerLength % 4).toBe(0);
    expect(view.getFloat32(16 + headerLength, true)).toBe(1);
    expect(view.getFloat32(20 + headerLength, true)).toBe(-2);
    expect(bytes.length).toBe(24 + headerLength);
  });

  it('decodes from an unaligned view into a larger buffer (as Postgres drivers hand out)', () => {
    const bytes = encodeParams(params());
    const slab = new Uint8Array(bytes.length + 3);
    slab.set(bytes, 3);
    expect(decodeParams(slab.subarray(3))).toEqual(params());
  });

  it('rejects bad magic, unknown versions, truncation, trailing bytes and bit flips', () => {
    const good = encodeParams(params());
    const copy = () => good.slice();

    const magic = copy();
    magic[0] = 0x50;
    expect(codecError(() => decodeParams(magic)).message).toMatch(/bad magic/);
    expect(codecError(() => decodeParams(new TextEncoder().encode('{"tensors": []}'))).message).toMatch(/bad magic/);

    const version = copy();
    new DataView(version.buffer).setUint16(4, 2, true);
    expect(codecError(() => decodeParams(version)).message).toMatch(/unknown format version 2/);

    expect(codecError(() => decodeParams(good.subarray(0, 10))).message).toMatch(/truncated: 10 bytes/);
    expect(codecError(() => decodeParams(reseal(good.slice(0, good.length - 4)))).message).toMatch(/truncated: the header describes/);
    const longer = new Uint8Array(good.length + 4);
    longer.set(good);
    expect(codecError(() => decodeParams(reseal(longer))).message).toMatch(/trailing bytes/);

    const flipped = copy();
    flipped[flipped.length - 5] ^= 0x10;
    expect(codecError(() => decodeParams(flipped)).message).toMatch(/checksum mismatch/);

    const hugeHeader = copy();
    new DataView(hugeHeader.buffer).setUint32(8, 1 << 20, true);
    expect(codecError(() => decodeParams(hugeHeader)).message).toMatch(/truncated: the header needs/);
    const unaligned = copy();
    new DataView(unaligned.buffer).setUint32(8, 5, true);
    expect(codecError(() => decodeParams(unaligned)).message).toMatch(/not 4-byte aligned/);
  });

  it('rejects malformed headers', () => {
    const four = new Uint8Array(4);
    const cases: [unknown, RegExp][] = [
      [[1, 2], /no tensors list/],
      [{ tensors: [{ shape: [1] }] }, /entry 0 has no name/],
      [{ tensors: [{ name: 'a', shape: [1] }, { name: 'a', shape: [0] }] }, /names 'a' twice/],
      [{ tensors: [{ name: 'a' }] }, /'a' has no shape/],
      [{ tensors: [{ name: 'a', shape: [-1] }] }, /invalid dimension -1/],
      [{ tensors: [{ name: 'a', shape: [0.5] }] }, /invalid dimension 0.5/],
      [{ tensors: [{ name: 'a', shape: [2] }] }, /truncated: the header describes \d+ bytes, got \d+/],
    ];
    for (const [header, message] of cases) expect(codecError(() => decodeParams(withHeader(header, four))).message).toMatch(message);

    const notJson = withHeader({ tensors: [] });
    notJson[16] = 0xff;
    expect(codecError(() => decodeParams(reseal(notJson))).message).toMatch(/not valid UTF-8 JSON/);
  });

  it('never stores or loads a non-finite value', () => {
    for (const bad of [Number.NaN, Infinity, -Infinity]) {
      const err = codecError(() => encodeParams({ w: { shape: [2], data: Float32Array.of(1, bad) } }));
      expect(err.message).toMatch(/'w' holds a non-finite value .* at index 1/);
    }
    const nanData = new Uint8Array(4);
    new DataView(nanData.buffer).setFloat32(0, Number.NaN, true);
    expect(codecError(() => decodeParams(withHeader({ tensors: [{ name: 'w', shape: [1] }] }, nanData))).message).toMatch(/non-finite/);
  });

  it('rejects data that does not match its shape, and empty names', () => {
    expect(codecError(() => encodeParams({ w: { shape: [2, 3], data: new Float32Array(5) } })).message).toMatch(/'w' has 5 values but shape \[2,3\] needs 6/);
    expect(codecError(() => encodeParams({ w: { shape: [2], data: [1, 2] as unknown as Float32Array } })).message).toMatch(/needs 2/);
    expect(codecError(() => encodeParams({ '': { shape: [1], data: new Float32Array(1) } })).message).toMatch(/must not be empty/);
    expect(codecError(() => encodeParams({ w: { shape: [1, 1, 1, 1, 1, 1, 1, 1, 1], data: new Float32Array(1) } })).message).toMatch(/invalid shape/);
  });

  it('does not let a blob name reach the prototype', () => {
    const data = new Uint8Array(4);
    const decoded = decodeParams(withHeader({ tensors: [{ name: '__proto__', shape: [1] }] }, data));
    expect(Object.keys(decoded)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
  });

  describe('checkParamsMatch', () => {
    const expected = { 'body.0.weight': [1, 40], 'body.0.bias': [40], 'head.weight': [40, 1], 'head.bias': [1], scalar: [], empty: [0, 3] };

    it('accepts parameters with exactly the expected names and shapes', () => {
      expect(() => checkParamsMatch(decodeParams(encodeParams(params())), expected)).not.toThrow();
    });

    it('rejects mismatched bytes, listing every problem', () => {
      const other = params();
      delete (other as Record<string, unknown>)['head.bias'];
      other['head.weight'] = { shape: [40, 5], data: new Float32Array(200) };
      other['lr.head.weight'] = { shape: [40, 1], data: new Float32Array(40) };
      const err = codecError(() => checkParamsMatch(decodeParams(encodeParams(other)), expected));
      expect(err.message).toContain("'head.weight' has shape [40,5], expected [40,1]");
      expect(err.message).toContain("missing 'head.bias'");
      expect(err.message).toContain("unexpected 'lr.head.weight'");
      expect(codecError(() => checkParamsMatch({}, { toString: [1] })).message).toContain("missing 'toString'");
    });
  });
});
