/**
 * Float32 values as little-endian bytes, whatever the host's byte order: the format of parameter
 * blobs, stored support sets and dataset tasks. Reads copy, so the values are aligned whatever the
 * buffer's offset.
 */

/** Whether this host stores a Float32Array little-endian already: then bytes are copied, not converted. */
const LITTLE_ENDIAN = new Uint8Array(new Float32Array([1]).buffer)[3] === 0x3f;

/** Writes `values` as little-endian float32 into `view` from byte `offset`. */
export function writeFloat32LE(view: DataView, offset: number, values: ArrayLike<number>): void {
  for (let i = 0; i < values.length; i++) view.setFloat32(offset + i * 4, values[i], true);
}

/** Reads `count` little-endian float32 values from `view` at byte `offset`. */
export function readFloat32LE(view: DataView, offset: number, count: number): Float32Array {
  return readFloat32LEInto(view, offset, count, new Float32Array(count), 0);
}

/** Reads `count` little-endian float32 values from `view` at byte `offset` into `out` from `at`; returns `out`. */
export function readFloat32LEInto(view: DataView, offset: number, count: number, out: Float32Array, at: number): Float32Array {
  if (LITTLE_ENDIAN) {
    const start = view.byteOffset + offset;
    // A Float32Array view needs 4-byte alignment; an unaligned run is copied to a fresh buffer first.
    out.set(start % 4 === 0 ? new Float32Array(view.buffer, start, count) : new Float32Array(view.buffer.slice(start, start + count * 4)), at);
    return out;
  }
  for (let i = 0; i < count; i++) out[at + i] = view.getFloat32(offset + i * 4, true);
  return out;
}

/** `values` as little-endian float32 bytes. */
export function float32Bytes(values: ArrayLike<number>): Uint8Array<ArrayBuffer> {
  if (LITTLE_ENDIAN && values instanceof Float32Array) {
    return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength) as ArrayBuffer);
  }
  const bytes = new Uint8Array(values.length * 4);
  writeFloat32LE(new DataView(bytes.buffer), 0, values);
  return bytes;
}

/**
 * Little-endian float32 bytes back as values.
 * @throws RangeError when the length is not a whole number of float32 values.
 */
export function float32sFromBytes(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) throw new RangeError(`${bytes.byteLength} bytes is not a whole number of float32 values`);
  return readFloat32LE(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0, bytes.byteLength / 4);
}
