// SPDX-License-Identifier: Apache-2.0
/**
 * HPACK (RFC 7541) header block decoding for one direction of an observed HTTP/2 connection.
 *
 * Owned here rather than taken from npm: an observer needs what an endpoint's decoder does not
 * do — keep going after a trace started mid-connection (the dynamic table's older entries were
 * never seen), say which fields could not be decoded instead of failing the block or guessing,
 * and never throw on input. The code is small (the static table, the Huffman code, integers,
 * strings, one table) and every piece is checked against real encoders (nghttp2 in node) in
 * test/unit/protocols/hpack.test.ts.
 *
 * The dynamic table is kept newest-first. A table whose start was not seen is modelled as the
 * entries seen since (which index exactly: HPACK indexes from the newest entry) above an
 * unknown tail; a reference into the tail is reported as undecodable. The tail is known to be
 * gone once the entries seen fill the table (then the decoder is `synced` again).
 */

import { huffmanDecode, huffmanEncode } from './hpack-huffman.js';

export interface HeaderField {
  name: string;
  value: string;
}

/** A field the block carried but this decoder could not read. */
export interface UndecodedField {
  /** The dynamic-table index it referred to (62 and up). */
  index: number;
  /** Known when only the name was indexed and the value came literally. */
  value?: string;
  reason: 'dynamic-table-not-seen';
}

export type HpackResult =
  | { ok: true; headers: HeaderField[]; undecoded: UndecodedField[]; truncated: boolean }
  | { ok: false; headers: HeaderField[]; undecoded: UndecodedField[]; truncated: boolean; error: string };

/** RFC 7541 Appendix A. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];
const STATIC_COUNT = STATIC_TABLE.length; // 61
const ENTRY_OVERHEAD = 32;

interface Entry {
  name: string | undefined;
  value: string;
  /** octets of the name (0 when unknown) */
  nameSize: number;
  /** octets as HPACK counts them; a lower bound when the name is unknown */
  size: number;
}

/**
 * Told of each literal field's value as it is decoded: its name (undefined when it refers to a
 * dynamic-table entry not seen) and where its encoded octets lie in the block (Huffman or not).
 */
export type LiteralSpan = (name: string | undefined, start: number, end: number, huffman: boolean) => void;

export interface HpackDecoderOptions {
  /** false: the connection's start was not seen, the table's older entries are unknown */
  fromStart: boolean;
  /** SETTINGS_HEADER_TABLE_SIZE of the decoding side (default 4096) */
  maxTableSize?: number;
  /** decoded octets kept per block; beyond, fields are dropped and the result says truncated (default 64 KiB) */
  maxHeaderListBytes?: number;
}

const utf8 = new TextDecoder('utf-8');
const INTEGER_LIMIT = 0x7fffffff;

export class HpackDecoder {
  private entries: Entry[] = [];
  private size = 0;
  private maxSize: number;
  /** the largest size the peer's SETTINGS allow (an update may not exceed it) */
  private settingsMax: number;
  private unknownTail: boolean;
  private readonly maxListBytes: number;

  constructor(options: HpackDecoderOptions) {
    this.maxSize = options.maxTableSize ?? 4096;
    this.settingsMax = this.maxSize;
    this.unknownTail = !options.fromStart;
    this.maxListBytes = options.maxHeaderListBytes ?? 64 * 1024;
  }

  /** True when every dynamic-table entry is known. */
  get synced(): boolean {
    return !this.unknownTail;
  }

  get tableEntries(): number {
    return this.entries.length;
  }

  /** The decoding side announced SETTINGS_HEADER_TABLE_SIZE (an encoder honours it from the next size update). */
  setSettingsMaxTableSize(n: number): void {
    this.settingsMax = Math.max(this.settingsMax, n);
  }

  /**
   * Decodes one complete header block (HEADERS/PUSH_PROMISE plus its CONTINUATIONs). On error
   * the fields decoded so far are returned and the table is marked unknown (an encoder's
   * later references cannot be trusted to line up).
   */
  decode(block: Uint8Array, onLiteral?: LiteralSpan): HpackResult {
    const headers: HeaderField[] = [];
    const undecoded: UndecodedField[] = [];
    let listBytes = 0;
    let truncated = false;
    const emit = (name: string, value: string, octets: number): void => {
      listBytes += octets + ENTRY_OVERHEAD;
      if (listBytes > this.maxListBytes) truncated = true;
      else headers.push({ name, value });
    };
    const fail = (error: string): HpackResult => {
      this.lose();
      return { ok: false, headers, undecoded, truncated, error };
    };
    let pos = 0;
    let fieldSeen = false;
    while (pos < block.length) {
      const b = block[pos] ?? 0;
      if (b & 0x80) {
        // indexed field
        const r = readInteger(block, pos, 7);
        if (r === undefined) return fail('truncated integer');
        pos = r.next;
        fieldSeen = true;
        if (r.value === 0) return fail('index 0');
        const e = this.lookup(r.value);
        if (e === 'out-of-range') return fail(`index ${r.value} beyond the table`);
        if (e === 'unknown' || e.name === undefined) {
          undecoded.push({ index: r.value, reason: 'dynamic-table-not-seen', ...(e !== 'unknown' ? { value: e.value } : {}) });
          continue;
        }
        emit(e.name, e.value, e.size - ENTRY_OVERHEAD);
      } else if ((b & 0xe0) === 0x20) {
        // dynamic table size update: only before the first field
        const r = readInteger(block, pos, 5);
        if (r === undefined) return fail('truncated integer');
        pos = r.next;
        if (fieldSeen) return fail('table size update after a field');
        if (r.value > this.settingsMax) return fail(`table size ${r.value} above the announced ${this.settingsMax}`);
        this.maxSize = r.value;
        this.evict();
      } else {
        // literal: with incremental indexing (01), without (0000) or never indexed (0001)
        const indexing = (b & 0xc0) === 0x40;
        const prefix = indexing ? 6 : 4;
        const r = readInteger(block, pos, prefix);
        if (r === undefined) return fail('truncated integer');
        pos = r.next;
        fieldSeen = true;
        let name: string | undefined;
        let nameOctets = 0;
        let nameIndex = 0;
        if (r.value === 0) {
          const s = readString(block, pos);
          if (typeof s === 'string') return fail(s);
          pos = s.next;
          name = latin1(s.bytes);
          nameOctets = s.bytes.length;
        } else {
          const e = this.lookup(r.value);
          if (e === 'out-of-range') return fail(`name index ${r.value} beyond the table`);
          nameIndex = r.value;
          if (e !== 'unknown' && e.name !== undefined) {
            name = e.name;
            nameOctets = e.nameSize;
          }
        }
        const valueAt = pos;
        const v = readString(block, pos);
        if (typeof v === 'string') return fail(v);
        if (onLiteral !== undefined) onLiteral(name, readInteger(block, valueAt, 7)?.next ?? valueAt, v.next, ((block[valueAt] ?? 0) & 0x80) !== 0);
        pos = v.next;
        const value = utf8.decode(v.bytes);
        if (name === undefined) undecoded.push({ index: nameIndex, value, reason: 'dynamic-table-not-seen' });
        else emit(name, value, nameOctets + v.bytes.length);
        if (indexing) this.insert({ name, value, nameSize: nameOctets, size: ENTRY_OVERHEAD + nameOctets + v.bytes.length });
      }
    }
    return { ok: true, headers, undecoded, truncated };
  }

  private lookup(index: number): Entry | 'unknown' | 'out-of-range' {
    if (index <= STATIC_COUNT) {
      const s = STATIC_TABLE[index - 1];
      if (s === undefined) return 'out-of-range';
      return { name: s[0], value: s[1], nameSize: s[0].length, size: ENTRY_OVERHEAD + s[0].length + s[1].length };
    }
    const e = this.entries[index - STATIC_COUNT - 1];
    if (e !== undefined) return e;
    if (this.unknownTail && index - STATIC_COUNT <= Math.floor(this.settingsMax / ENTRY_OVERHEAD)) return 'unknown';
    return 'out-of-range';
  }

  private insert(e: Entry): void {
    if (e.size > this.maxSize) {
      // an entry larger than the table empties it (RFC 7541 §4.4)
      this.entries = [];
      this.size = 0;
      this.unknownTail = false;
      return;
    }
    this.entries.unshift(e);
    this.size += e.size;
    this.evict();
  }

  private evict(): void {
    while (this.size > this.maxSize) {
      const old = this.entries.pop();
      if (old === undefined) break;
      this.size -= old.size;
    }
    if (this.entries.length === 0) this.size = 0;
    // what is known (a lower bound) leaves no room for even the smallest unseen entry
    if (this.size + ENTRY_OVERHEAD > this.maxSize) this.unknownTail = false;
  }

  /** After a decoding error nothing in the table can be trusted. */
  private lose(): void {
    this.entries = [];
    this.size = 0;
    this.unknownTail = true;
  }
}

function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i] ?? 0);
  return s;
}

function octetLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** RFC 7541 §5.1; undefined when cut off or above 2^31-1. */
export function readInteger(b: Uint8Array, pos: number, prefixBits: number): { value: number; next: number } | undefined {
  if (pos >= b.length) return undefined;
  const mask = (1 << prefixBits) - 1;
  let value = (b[pos] ?? 0) & mask;
  pos++;
  if (value < mask) return { value, next: pos };
  let shift = 0;
  for (;;) {
    if (pos >= b.length) return undefined;
    const c = b[pos++] ?? 0;
    value += (c & 0x7f) * 2 ** shift;
    if (value > INTEGER_LIMIT) return undefined;
    if ((c & 0x80) === 0) return { value, next: pos };
    shift += 7;
  }
}

function readString(b: Uint8Array, pos: number): { bytes: Uint8Array; next: number } | string {
  if (pos >= b.length) return 'truncated string';
  const huffman = ((b[pos] ?? 0) & 0x80) !== 0;
  const r = readInteger(b, pos, 7);
  if (r === undefined) return 'truncated string length';
  const end = r.next + r.value;
  if (end > b.length) return 'truncated string';
  if (!huffman) return { bytes: b.subarray(r.next, end), next: end };
  const d = huffmanDecode(b, r.next, end);
  if (d === undefined) return 'invalid Huffman string';
  return { bytes: d, next: end };
}

// ---- encoding: used by tests, benchmarks and the decrypted-pcapng tests, not by the tracer ----

export function encodeInteger(out: number[], value: number, prefixBits: number, flags: number): void {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) {
    out.push(flags | value);
    return;
  }
  out.push(flags | mask);
  value -= mask;
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
}

function encodeString(out: number[], s: string, huffman: boolean): void {
  const raw = new TextEncoder().encode(s);
  const bytes = huffman ? huffmanEncode(raw) : raw;
  encodeInteger(out, bytes.length, 7, huffman ? 0x80 : 0);
  for (const x of bytes) out.push(x);
}

export type FieldRepresentation = 'indexed-name-literal' | 'literal' | 'incremental' | 'never';

/**
 * A small HPACK encoder with a dynamic table, choosing per field how to send it
 * (`choose` lets property tests exercise every representation).
 */
export class HpackEncoder {
  private entries: { name: string; value: string; size: number }[] = [];
  private size = 0;
  private pendingSize: number | undefined;
  constructor(private maxSize = 4096) {}

  setMaxTableSize(n: number): void {
    this.maxSize = n;
    this.pendingSize = n;
    this.evict();
  }

  encode(headers: readonly HeaderField[], choose: (h: HeaderField, i: number) => { huffman: boolean; mode: FieldRepresentation } = () => ({ huffman: true, mode: 'incremental' })): Uint8Array {
    const out: number[] = [];
    if (this.pendingSize !== undefined) {
      encodeInteger(out, this.pendingSize, 5, 0x20);
      this.pendingSize = undefined;
    }
    headers.forEach((h, i) => {
      const { huffman, mode } = choose(h, i);
      const full = this.find(h.name, h.value);
      if (full !== undefined && mode === 'incremental') {
        encodeInteger(out, full, 7, 0x80);
        return;
      }
      const nameIndex = mode === 'literal' ? undefined : this.findName(h.name);
      const flags = mode === 'incremental' ? 0x40 : mode === 'never' ? 0x10 : 0;
      const prefix = mode === 'incremental' ? 6 : 4;
      if (nameIndex === undefined) {
        encodeInteger(out, 0, prefix, flags);
        encodeString(out, h.name, huffman);
      } else {
        encodeInteger(out, nameIndex, prefix, flags);
      }
      encodeString(out, h.value, huffman);
      if (mode === 'incremental') {
        const size = ENTRY_OVERHEAD + octetLength(h.name) + octetLength(h.value);
        if (size > this.maxSize) {
          this.entries = [];
          this.size = 0;
        } else {
          this.entries.unshift({ name: h.name, value: h.value, size });
          this.size += size;
          this.evict();
        }
      }
    });
    return Uint8Array.from(out);
  }

  private evict(): void {
    while (this.size > this.maxSize) {
      const e = this.entries.pop();
      if (e === undefined) break;
      this.size -= e.size;
    }
  }

  private find(name: string, value: string): number | undefined {
    const s = STATIC_TABLE.findIndex(([n, v]) => n === name && v === value);
    if (s >= 0) return s + 1;
    const d = this.entries.findIndex((e) => e.name === name && e.value === value);
    return d >= 0 ? STATIC_COUNT + d + 1 : undefined;
  }

  private findName(name: string): number | undefined {
    const s = STATIC_TABLE.findIndex(([n]) => n === name);
    if (s >= 0) return s + 1;
    const d = this.entries.findIndex((e) => e.name === name);
    return d >= 0 ? STATIC_COUNT + d + 1 : undefined;
  }
}
