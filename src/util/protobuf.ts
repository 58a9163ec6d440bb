/**
 * The few pieces of the protocol-buffers wire format an ONNX file needs, written by hand: varints,
 * 64-bit-free integers, strings, bytes and nested messages (https://protobuf.dev/programming-guides/encoding/).
 * A message is built as a list of encoded fields and concatenated once; ONNX models here are small
 * (weights of a few MLP layers), so no streaming writer is needed. Fields are written in the order
 * given; decoders accept any order.
 */

/** An encoded field (tag and value), ready to concatenate into a message. */
export type Field = Uint8Array;

const VARINT = 0;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

const utf8 = new TextEncoder();

/** Base-128 varint of a non-negative safe integer (dims, enum values, versions: all far below 2^53). */
function varint(value: number): number[] {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`varint needs a non-negative safe integer, got ${value}`);
  const out: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    out.push((rest % 0x80) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  out.push(rest);
  return out;
}

function key(field: number, wireType: number): number[] {
  return varint(field * 8 + wireType);
}

/** An integer field (int32, int64 or enum) holding a non-negative value. */
export function intField(field: number, value: number): Field {
  return Uint8Array.from([...key(field, VARINT), ...varint(value)]);
}

/** A float field (fixed32, little-endian IEEE 754 single precision). */
export function floatField(field: number, value: number): Field {
  const head = key(field, FIXED32);
  const out = new Uint8Array(head.length + 4);
  out.set(head);
  new DataView(out.buffer).setFloat32(head.length, value, true);
  return out;
}

/** A bytes field. */
export function bytesField(field: number, bytes: Uint8Array): Field {
  const head = [...key(field, LENGTH_DELIMITED), ...varint(bytes.length)];
  const out = new Uint8Array(head.length + bytes.length);
  out.set(head);
  out.set(bytes, head.length);
  return out;
}

/** A string field (UTF-8). */
export function stringField(field: number, text: string): Field {
  return bytesField(field, utf8.encode(text));
}

/** A nested message field: its own fields, length-prefixed. */
export function messageField(field: number, fields: readonly Field[]): Field {
  return bytesField(field, message(fields));
}

/** A whole message: its fields, concatenated. */
export function message(fields: readonly Field[]): Uint8Array {
  const out = new Uint8Array(fields.reduce((sum, f) => sum + f.length, 0));
  let offset = 0;
  for (const f of fields) {
    out.set(f, offset);
    offset += f.length;
  }
  return out;
}
