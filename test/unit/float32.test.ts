/** Float32 bytes: little-endian whatever the input's offset, and back, aligned or not. */
import { describe, expect, it } from 'vitest';
import { float32Bytes, float32sFromBytes, readFloat32LEInto } from '../../src/util/float32.js';

describe('float32 bytes', () => {
  it('writes little-endian bytes from a Float32Array view or a plain array alike', () => {
    const values = [1, -2.5, 3.25e-7, 65504];
    const backing = new Float32Array([9, ...values, 9]);
    const fromView = float32Bytes(backing.subarray(1, 5));
    expect(fromView.byteLength).toBe(16);
    expect(Array.from(fromView)).toEqual(Array.from(float32Bytes(values)));
    // 1.0f is 0x3f800000: little-endian puts 0x3f last.
    expect(Array.from(fromView.subarray(0, 4))).toEqual([0, 0, 0x80, 0x3f]);
  });

  it('reads back from any byte offset, into a given place', () => {
    const bytes = float32Bytes([0.5, -1, 7]);
    const shifted = new Uint8Array(bytes.byteLength + 1);
    shifted.set(bytes, 1);
    expect(Array.from(float32sFromBytes(shifted.subarray(1)))).toEqual([0.5, -1, 7]);
    const out = new Float32Array(5);
    readFloat32LEInto(new DataView(shifted.buffer, 1), 4, 2, out, 3);
    expect(Array.from(out)).toEqual([0, 0, 0, -1, 7]);
  });
});
