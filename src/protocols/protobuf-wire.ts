// SPDX-License-Identifier: Apache-2.0
/**
 * Generic protobuf decoding without a schema: field numbers, wire types and values, the way
 * `protoc --decode_raw` shows them. A length-delimited field is shown as a nested message when
 * its bytes parse as one completely, else as text when they are UTF-8, else as hex. Bounded
 * (depth, fields) and never throws: bytes that are not protobuf give `undefined`.
 */

export type ProtoValue =
  | { field: number; wire: 'varint'; value: string }
  | { field: number; wire: 'i64'; value: string }
  | { field: number; wire: 'i32'; value: number }
  | { field: number; wire: 'len'; message: ProtoValue[] }
  | { field: number; wire: 'len'; text: string }
  | { field: number; wire: 'len'; hex: string };

const MAX_DEPTH = 8;
const MAX_FIELDS = 1000;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeProtobuf(b: Uint8Array, depth = 0): ProtoValue[] | undefined {
  const out: ProtoValue[] = [];
  let pos = 0;
  while (pos < b.length) {
    if (out.length >= MAX_FIELDS) return undefined;
    const key = varint(b, pos);
    if (key === undefined) return undefined;
    pos = key.next;
    const field = Number(key.value >> 3n);
    const wire = Number(key.value & 7n);
    if (field < 1 || field > 0x1fffffff) return undefined;
    if (wire === 0) {
      const v = varint(b, pos);
      if (v === undefined) return undefined;
      pos = v.next;
      out.push({ field, wire: 'varint', value: v.value.toString() });
    } else if (wire === 1) {
      if (pos + 8 > b.length) return undefined;
      out.push({ field, wire: 'i64', value: new DataView(b.buffer, b.byteOffset + pos, 8).getBigUint64(0, true).toString() });
      pos += 8;
    } else if (wire === 5) {
      if (pos + 4 > b.length) return undefined;
      out.push({ field, wire: 'i32', value: new DataView(b.buffer, b.byteOffset + pos, 4).getUint32(0, true) });
      pos += 4;
    } else if (wire === 2) {
      const l = varint(b, pos);
      if (l === undefined || l.value > BigInt(b.length - l.next)) return undefined;
      const start = l.next;
      const end = start + Number(l.value);
      pos = end;
      const inner = b.subarray(start, end);
      out.push(lengthDelimited(field, inner, depth));
    } else {
      return undefined; // groups (3, 4) are long deprecated; 6 and 7 do not exist
    }
  }
  return out;
}

function lengthDelimited(field: number, inner: Uint8Array, depth: number): ProtoValue {
  const text = utf8(inner);
  // printable text is more likely than a message that happens to parse (e.g. "hi" is not a message, "\n\x01a" is both)
  if (text !== undefined && /^[\P{Cc}\t\r\n]*$/u.test(text)) return { field, wire: 'len', text };
  if (depth < MAX_DEPTH && inner.length > 0) {
    const m = decodeProtobuf(inner, depth + 1);
    if (m !== undefined) return { field, wire: 'len', message: m };
  }
  if (text !== undefined) return { field, wire: 'len', text };
  return { field, wire: 'len', hex: Buffer.from(inner).toString('hex') };
}

function utf8(b: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(b);
  } catch {
    return undefined;
  }
}

function varint(b: Uint8Array, pos: number): { value: bigint; next: number } | undefined {
  let value = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= b.length) return undefined;
    const c = b[pos++] ?? 0;
    value |= BigInt(c & 0x7f) << BigInt(7 * i);
    if ((c & 0x80) === 0) return { value, next: pos };
  }
  return undefined;
}

/** A compact one-line form: `1: "hi" 2: 150 3 { 1: 2 }`. */
export function formatProtobuf(fields: readonly ProtoValue[]): string {
  return fields.map((f) => {
    if ('message' in f) return `${f.field} { ${formatProtobuf(f.message)} }`;
    if ('text' in f) return `${f.field}: ${JSON.stringify(f.text)}`;
    if ('hex' in f) return `${f.field}: 0x${f.hex}`;
    return `${f.field}: ${f.value}`;
  }).join(' ');
}
