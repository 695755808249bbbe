// SPDX-License-Identifier: Apache-2.0
/**
 * `--redact` on raw HTTP/2 bytes: the values of secret header fields (Redactor.isSecretHeader)
 * overwritten in place inside their HPACK header blocks, so the raw view, the UI's raw chunks
 * and a decrypted pcapng carry no credential while every length and offset stays true.
 *
 * Each direction of a connection is walked frame by frame across its chunks; a header block
 * (HEADERS or PUSH_PROMISE plus CONTINUATIONs, padding and priority skipped) is decoded with that
 * direction's own HPACK table, and each literal value whose name is secret — or whose name is
 * a dynamic-table entry we did not see — is overwritten: a Huffman-coded value with 0xf9 octets
 * (each one the 8-bit code of '*', so the block still decodes, to asterisks), a plain one with
 * '*'. Indexed fields carry no value octets and need nothing.
 *
 * Safe when unsure, and counted: a block split across chunks has its part in an earlier chunk
 * masked whole (that chunk left before the block could be read); bytes that cannot be framed (a
 * trace that starts mid-frame, a gap of lost bytes, a frame sequence that breaks the protocol)
 * are masked whole until a chunk starts with something that reads as a frame header. Pure: no I/O.
 */
import { HpackDecoder } from './hpack.js';
import { CONNECTION_PREFACE, looksLikeFrameStart, prefaceMatches } from './http2.js';
import type { Redactor } from './redact.js';

const HEADERS = 0x1;
const PUSH_PROMISE = 0x5;
const CONTINUATION = 0x9;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** a header block larger than this is not assembled: its bytes are masked whole */
const MAX_BLOCK = 256 * 1024;
const HUFFMAN_STAR = 0xf9;
const STAR = 0x2a;

export interface H2RedactStats {
  /** secret values overwritten */
  masked: number;
  /** header blocks split across chunks: their earlier part masked whole */
  splitBlocks: number;
  /** octets masked whole because they could not be framed */
  unframedBytes: number;
}

interface Segment {
  /** the chunk it lies in (this direction's chunk counter) */
  chunk: number;
  /** offset in that chunk */
  at: number;
  /** offset in the block */
  blockAt: number;
  len: number;
}

/** One direction of one HTTP/2 connection. */
export class H2DirectionRedactor {
  private readonly redactor: Redactor;
  private readonly stats: H2RedactStats;
  private decoder: HpackDecoder;
  private prefaceLeft = 0;
  private started = false;
  private lost = false;
  /**
   * Framing known from the connection's start. Else (a trace begun mid-connection, or after a
   * gap) it is on trial: every frame header must be a plausible one and each chunk must end on
   * a frame boundary, two chunks in a row, before frames may run across chunks; a chunk that
   * fails the trial is masked whole (a misread frame length could hide a header block).
   */
  private trusted: boolean;
  private alignedChunks = 0;
  private chunk = 0;
  // the frame being read
  private head = new Uint8Array(9);
  private headLen = 0;
  private type = 0;
  private flags = 0;
  private length = 0;
  private payloadAt = 0;
  private padLen = 0;
  private prefixLen = 0;
  // the header block being assembled
  private block: Uint8Array[] = [];
  private blockLen = 0;
  private segments: Segment[] = [];
  private inBlock = false;
  // the chunk being walked, and its masked copy once something is masked
  private cur: Uint8Array = new Uint8Array(0);
  private out: Uint8Array | undefined;

  /** fromStart: the connection's first bytes were seen (its preface), so the HPACK table is known from empty */
  constructor(redactor: Redactor, stats: H2RedactStats, fromStart: boolean) {
    this.redactor = redactor;
    this.stats = stats;
    this.decoder = new HpackDecoder({ fromStart });
    this.trusted = fromStart;
  }

  /** Bytes were lost before the next chunk: framing and the HPACK table are no longer known. */
  gap(): void {
    this.loseSync();
  }

  /** This chunk with its secrets masked (the same array when nothing was masked). */
  push(bytes: Uint8Array): Uint8Array {
    if (bytes.length === 0) return bytes;
    this.chunk++;
    this.cur = bytes;
    this.out = undefined;
    let i = 0;
    if (!this.started) {
      this.started = true;
      // the client's side begins with the preface; the server's, and a trace begun mid-connection, with a frame
      if (prefaceMatches(bytes) !== 'no') {
        this.prefaceLeft = CONNECTION_PREFACE.length;
        this.trusted = true;
      } else if (!this.trusted && !looksLikeFrameStart(bytes)) {
        this.lost = true;
      }
    } else if (this.lost && looksLikeFrameStart(bytes)) {
      this.resync();
    }
    while (i < bytes.length) {
      if (this.lost) {
        // on trial, nothing of this chunk can be trusted; else what came before the error was framed
        const from = this.trusted ? i : 0;
        this.stats.unframedBytes += bytes.length - from;
        this.mask(from, bytes.length, STAR);
        break;
      }
      if (this.prefaceLeft > 0) {
        const n = Math.min(this.prefaceLeft, bytes.length - i);
        for (let k = 0; k < n; k++) {
          if (bytes[i + k] !== CONNECTION_PREFACE[CONNECTION_PREFACE.length - this.prefaceLeft + k]) {
            this.loseSync();
            break;
          }
        }
        if (this.lost) continue;
        this.prefaceLeft -= n;
        i += n;
        continue;
      }
      if (this.headLen < 9) {
        const n = Math.min(9 - this.headLen, bytes.length - i);
        this.head.set(bytes.subarray(i, i + n), this.headLen);
        this.headLen += n;
        i += n;
        if (this.headLen === 9 && !this.startFrame()) continue;
        if (this.headLen === 9 && this.length === 0) this.endFrame();
        continue;
      }
      // payload
      const n = Math.min(this.length - this.payloadAt, bytes.length - i);
      if (this.carriesBlock()) {
        this.readBlockPayload(bytes, i, n);
        // a protocol error inside it: from here on nothing is framed (the loop masks the rest)
        if (this.lost) continue;
      } else {
        this.payloadAt += n;
      }
      i += n;
      if (this.payloadAt === this.length) this.endFrame();
    }
    if (!this.lost && !this.trusted) {
      const aligned = this.headLen === 0 && this.prefaceLeft === 0 && !this.inBlock;
      if (!aligned) {
        this.loseSync();
        this.stats.unframedBytes += bytes.length;
        this.mask(0, bytes.length, STAR);
      } else if (++this.alignedChunks >= 2) {
        this.trusted = true;
      }
    }
    // what of an unfinished block lies in this chunk leaves now, before the block can be read
    if (this.inBlock) {
      let split = false;
      for (const s of this.segments) {
        if (s.chunk !== this.chunk) continue;
        this.mask(s.at, s.at + s.len, STAR);
        split = true;
      }
      if (split) this.stats.splitBlocks++;
    }
    const out = this.out ?? bytes;
    this.cur = new Uint8Array(0);
    this.out = undefined;
    return out;
  }

  private mask(from: number, to: number, fill: number): void {
    if (to <= from) return;
    this.out ??= this.cur.slice();
    this.out.fill(fill, from, to);
  }

  private carriesBlock(): boolean {
    return this.type === HEADERS || this.type === PUSH_PROMISE || this.type === CONTINUATION;
  }

  /** Reads the 9-byte header just completed; false when the sequence breaks the protocol. */
  private startFrame(): boolean {
    const h = this.head;
    this.length = ((h[0] ?? 0) << 16) | ((h[1] ?? 0) << 8) | (h[2] ?? 0);
    this.type = h[3] ?? 0;
    this.flags = h[4] ?? 0;
    this.payloadAt = 0;
    this.padLen = 0;
    this.prefixLen = 0;
    if (!this.trusted && !looksLikeFrameStart(h)) {
      this.loseSync();
      return false;
    }
    if (this.inBlock !== (this.type === CONTINUATION)) {
      // a CONTINUATION must follow an unfinished block, and nothing else may
      this.loseSync();
      return false;
    }
    if (this.type === HEADERS) this.prefixLen = (this.flags & FLAG_PADDED ? 1 : 0) + (this.flags & FLAG_PRIORITY ? 5 : 0);
    else if (this.type === PUSH_PROMISE) this.prefixLen = (this.flags & FLAG_PADDED ? 1 : 0) + 4;
    if (this.prefixLen > this.length) {
      this.loseSync();
      return false;
    }
    if (this.type === HEADERS || this.type === PUSH_PROMISE) this.inBlock = true;
    return true;
  }

  private readBlockPayload(bytes: Uint8Array, at: number, n: number): void {
    const padded = this.type !== CONTINUATION && (this.flags & FLAG_PADDED) !== 0;
    for (let k = 0; k < n; ) {
      const po = this.payloadAt;
      if (po < this.prefixLen) {
        if (padded && po === 0) this.padLen = bytes[at + k] ?? 0;
        this.payloadAt++;
        k++;
        continue;
      }
      const fragmentEnd = this.length - this.padLen;
      if (fragmentEnd < this.prefixLen) {
        // padding longer than the frame: a protocol error
        this.loseSync();
        return;
      }
      if (po < fragmentEnd) {
        const take = Math.min(fragmentEnd - po, n - k);
        if (this.blockLen + take > MAX_BLOCK) {
          this.loseSync();
          return;
        }
        this.block.push(bytes.subarray(at + k, at + k + take));
        this.segments.push({ chunk: this.chunk, at: at + k, blockAt: this.blockLen, len: take });
        this.blockLen += take;
        this.payloadAt += take;
        k += take;
        continue;
      }
      const skip = Math.min(this.length - po, n - k);
      this.payloadAt += skip;
      k += skip;
    }
  }

  private endFrame(): void {
    this.headLen = 0;
    if (this.lost) return;
    if (this.carriesBlock() && (this.flags & FLAG_END_HEADERS) !== 0) this.endBlock();
  }

  private endBlock(): void {
    const block = Buffer.concat(this.block, this.blockLen);
    const segments = this.segments;
    const chunk = this.chunk;
    this.block = [];
    this.blockLen = 0;
    this.segments = [];
    this.inBlock = false;
    const result = this.decoder.decode(block, (name, start, end, huffman) => {
      if (name !== undefined && !this.redactor.isSecretHeader(name)) return;
      this.stats.masked++;
      // the value's octets, wherever they lie in this chunk (an earlier chunk's part went out masked)
      for (const s of segments) {
        if (s.chunk !== chunk) continue;
        const from = Math.max(start, s.blockAt);
        const to = Math.min(end, s.blockAt + s.len);
        if (from < to) this.mask(s.at + from - s.blockAt, s.at + to - s.blockAt, huffman ? HUFFMAN_STAR : STAR);
      }
    });
    if (!result.ok) {
      // what the decoder could not read may hold a secret: the block's rest, masked whole
      for (const s of segments) if (s.chunk === chunk) this.mask(s.at, s.at + s.len, STAR);
      this.stats.unframedBytes += block.length;
    }
  }

  private loseSync(): void {
    // the unfinished block's octets in this chunk may hold a secret
    for (const s of this.segments) if (s.chunk === this.chunk) this.mask(s.at, s.at + s.len, STAR);
    this.lost = true;
    this.inBlock = false;
    this.block = [];
    this.blockLen = 0;
    this.segments = [];
    this.headLen = 0;
    this.prefaceLeft = 0;
  }

  private resync(): void {
    this.lost = false;
    this.trusted = false;
    this.alignedChunks = 0;
    this.decoder = new HpackDecoder({ fromStart: false });
  }
}
