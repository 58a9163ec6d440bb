/**
 * Named parameters <-> compact bytes, for meta-parameters, checkpoints and adapted heads in Postgres.
 *
 * Layout (all integers little-endian):
 * ```
 * 0   4 bytes  magic "FADP"
 * 4   u16      format version (1)
 * 6   u16      reserved, 0
 * 8   u32      header length H in bytes (a multiple of 4)
 * 12  u32      CRC-32 of everything from byte 16 to the end
 * 16  H bytes  UTF-8 JSON {"tensors":[{"name","shape"}...]}, space-padded to 4-byte alignment
 * 16+H         float32 values of every tensor in header order, row-major
 * ```
 * The float data starts 4-byte aligned and the total length is fixed by the header, so truncation,
 * trailing bytes, bit flips (CRC) and shapes that disagree with the data are all detected.
 */

import { crc32 } from 'node:zlib';
import type { ParamArray, ParamArrays } from './model.js';
import { readFloat32LE, writeFloat32LE } from '../util/float32.js';

/** One parameter as plain data: row-major values of the given shape (the model's ParamArray). */
export type ParamData = ParamArray;

/** Parameters by name, e.g. `body.0.weight`, `head.bias` (the model's ParamArrays). */
export type NamedParams = ParamArrays;

/** Bytes that are not a valid parameter blob, or parameters that cannot be encoded or do not match. */
export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CodecError';
  }
}

const MAGIC = [0x46, 0x41, 0x44, 0x50]; // "FADP"
export const CODEC_VERSION = 1;
const PREFIX = 16;
const MAX_RANK = 8;

function elementCount(shape: number[], name: string): number {
  if (!Array.isArray(shape) || shape.length > MAX_RANK) throw new CodecError(`'${name}' has an invalid shape (rank 0-${MAX_RANK} expected)`);
  let size = 1;
  for (const dim of shape) {
    if (!Number.isInteger(dim) || dim < 0 || dim > 2 ** 31 - 1) throw new CodecError(`'${name}' has an invalid dimension ${dim} in shape [${shape}]`);
    size *= dim;
  }
  if (size > 2 ** 31 - 1) throw new CodecError(`'${name}' is too large (${size} values)`);
  return size;
}

function checkFinite(name: string, data: Float32Array): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) throw new CodecError(`'${name}' holds a non-finite value (${data[i]}) at index ${i}`);
  }
}

/**
 * Encodes named parameters in insertion order.
 * @throws CodecError for an empty name, a shape that does not match the data, or a non-finite value
 *   (NaN is never stored).
 */
export function encodeParams(named: NamedParams): Uint8Array {
  const entries = Object.entries(named);
  let values = 0;
  for (const [name, { shape, data }] of entries) {
    if (name === '') throw new CodecError('parameter names must not be empty');
    const size = elementCount(shape, name);
    if (!(data instanceof Float32Array) || data.length !== size) {
      throw new CodecError(`'${name}' has ${data?.length} values but shape [${shape}] needs ${size}`);
    }
    checkFinite(name, data);
    values += size;
  }
  const json = new TextEncoder().encode(JSON.stringify({ tensors: entries.map(([name, { shape }]) => ({ name, shape })) }));
  const headerLength = Math.ceil(json.length / 4) * 4;
  const bytes = new Uint8Array(PREFIX + headerLength + 4 * values);
  const view = new DataView(bytes.buffer);
  bytes.set(MAGIC, 0);
  view.setUint16(4, CODEC_VERSION, true);
  view.setUint32(8, headerLength, true);
  bytes.set(json, PREFIX);
  bytes.fill(0x20, PREFIX + json.length, PREFIX + headerLength);
  let offset = PREFIX + headerLength;
  for (const [, { data }] of entries) {
    writeFloat32LE(view, offset, data);
    offset += 4 * data.length;
  }
  view.setUint32(12, crc32(bytes.subarray(PREFIX)), true);
  return bytes;
}

function readHeader(bytes: Uint8Array, headerLength: number): { name: string; shape: number[] }[] {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(PREFIX, PREFIX + headerLength)));
  } catch {
    throw new CodecError('the header is not valid UTF-8 JSON');
  }
  const tensors = (header as { tensors?: unknown } | null)?.tensors;
  if (!Array.isArray(tensors)) throw new CodecError('the header has no tensors list');
  const seen = new Set<string>();
  return tensors.map((entry: unknown, i) => {
    const { name, shape } = (entry ?? {}) as { name?: unknown; shape?: unknown };
    if (typeof name !== 'string' || name === '') throw new CodecError(`header entry ${i} has no name`);
    if (seen.has(name)) throw new CodecError(`header names '${name}' twice`);
    seen.add(name);
    if (!Array.isArray(shape)) throw new CodecError(`'${name}' has no shape`);
    return { name, shape: shape as number[] };
  });
}

/**
 * Decodes bytes made by encodeParams.
 * @throws CodecError for bad magic, an unknown version, truncation or trailing bytes, a checksum
 *   mismatch, a malformed header or a non-finite value.
 */
export function decodeParams(bytes: Uint8Array): NamedParams {
  if (!(bytes instanceof Uint8Array)) throw new CodecError('expected bytes (Uint8Array)');
  // Magic first: a wrong kind of blob says so even when it is also short.
  if (MAGIC.some((b, i) => i < bytes.length && bytes[i] !== b)) throw new CodecError('bad magic: not a fastadapt parameter blob');
  if (bytes.length < PREFIX) throw new CodecError(`truncated: ${bytes.length} bytes is shorter than the ${PREFIX}-byte prefix`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint16(4, true);
  if (version !== CODEC_VERSION) throw new CodecError(`unknown format version ${version} (this build reads ${CODEC_VERSION})`);
  const headerLength = view.getUint32(8, true);
  if (headerLength % 4 !== 0) throw new CodecError(`header length ${headerLength} is not 4-byte aligned`);
  if (PREFIX + headerLength > bytes.length) throw new CodecError(`truncated: the header needs ${headerLength} bytes, ${bytes.length - PREFIX} remain`);
  if (crc32(bytes.subarray(PREFIX)) !== view.getUint32(12, true)) throw new CodecError('checksum mismatch: the bytes are corrupt');
  const entries = readHeader(bytes, headerLength);
  const sizes = entries.map(({ name, shape }) => elementCount(shape, name));
  const expected = PREFIX + headerLength + 4 * sizes.reduce((a, b) => a + b, 0);
  if (bytes.length !== expected) {
    throw new CodecError(`${bytes.length < expected ? 'truncated' : 'trailing bytes'}: the header describes ${expected} bytes, got ${bytes.length}`);
  }
  const out: NamedParams = {};
  let offset = PREFIX + headerLength;
  entries.forEach(({ name, shape }, t) => {
    const data = readFloat32LE(view, offset, sizes[t]);
    offset += 4 * sizes[t];
    checkFinite(name, data);
    // defineProperty: a blob naming '__proto__' must not reach the object's prototype.
    Object.defineProperty(out, name, { value: { shape: [...shape], data }, enumerable: true, writable: true, configurable: true });
  });
  return out;
}

/**
 * Checks decoded parameters against the names and shapes a model expects, so bytes from another
 * model (other sizes, another algorithm's extra parameters) are rejected before they reach tfjs.
 * @throws CodecError listing every missing, unexpected and mismatched parameter.
 */
export function checkParamsMatch(params: NamedParams, expected: Record<string, readonly number[]>): void {
  const problems: string[] = [];
  for (const [name, shape] of Object.entries(expected)) {
    const got = Object.hasOwn(params, name) ? params[name] : undefined;
    if (!got) problems.push(`missing '${name}'`);
    else if (got.shape.length !== shape.length || got.shape.some((d, i) => d !== shape[i])) {
      problems.push(`'${name}' has shape [${got.shape}], expected [${shape}]`);
    }
  }
  for (const name of Object.keys(params)) if (!Object.hasOwn(expected, name)) problems.push(`unexpected '${name}'`);
  if (problems.length > 0) throw new CodecError(`parameters do not match the model: ${problems.join('; ')}`);
}
