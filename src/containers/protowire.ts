// SPDX-License-Identifier: Apache-2.0
/**
 * Just enough of the protobuf wire format to read containerd event payloads. Events arrive as
 * `google.protobuf.Any` whose bytes are a TaskStart/TaskExit/TaskDelete message; proto-loader
 * decodes only request/response types of services, so the few scalar fields we need (ids and
 * pids) are read here directly. Unknown fields are skipped, as protobuf requires.
 */

export type WireValue = bigint | Uint8Array;

const VARINT = 0;
const I64 = 1;
const LEN = 2;
const I32 = 5;

function readVarint(buf: Uint8Array, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new RangeError('protobuf: truncated varint');
    const byte = buf[pos++] as number;
    result |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [result, pos];
    shift += 7n;
    if (shift > 63n) throw new RangeError('protobuf: varint too long');
  }
}

/** Field number → values in order of appearance (varints as bigint, length-delimited as bytes). */
export function decodeWireFields(buf: Uint8Array): Map<number, WireValue[]> {
  const fields = new Map<number, WireValue[]>();
  let pos = 0;
  while (pos < buf.length) {
    const [key, afterKey] = readVarint(buf, pos);
    pos = afterKey;
    const field = Number(key >> 3n);
    const wireType = Number(key & 7n);
    let value: WireValue;
    switch (wireType) {
      case VARINT: {
        [value, pos] = readVarint(buf, pos);
        break;
      }
      case LEN: {
        const [len, afterLen] = readVarint(buf, pos);
        const end = afterLen + Number(len);
        if (end > buf.length) throw new RangeError('protobuf: truncated field');
        value = buf.subarray(afterLen, end);
        pos = end;
        break;
      }
      case I64:
        if (pos + 8 > buf.length) throw new RangeError('protobuf: truncated field');
        value = buf.subarray(pos, pos + 8);
        pos += 8;
        break;
      case I32:
        if (pos + 4 > buf.length) throw new RangeError('protobuf: truncated field');
        value = buf.subarray(pos, pos + 4);
        pos += 4;
        break;
      default:
        throw new RangeError(`protobuf: unsupported wire type ${wireType}`);
    }
    const list = fields.get(field);
    if (list === undefined) fields.set(field, [value]);
    else list.push(value);
  }
  return fields;
}

const utf8 = new TextDecoder();

/** The last value of a string field (proto3: the last one wins), '' when absent. */
export function wireString(fields: Map<number, WireValue[]>, field: number): string {
  const v = fields.get(field)?.at(-1);
  return v instanceof Uint8Array ? utf8.decode(v) : '';
}

/** The last value of a varint field as a number, 0 when absent. */
export function wireUint(fields: Map<number, WireValue[]>, field: number): number {
  const v = fields.get(field)?.at(-1);
  return typeof v === 'bigint' ? Number(v) : 0;
}
