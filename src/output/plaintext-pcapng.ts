// SPDX-License-Identifier: Apache-2.0
/**
 * Decrypted traffic as a pcapng that Wireshark and tshark dissect with no keys (`trace tls -w`):
 * each plaintext chunk becomes TCP segments of the connection's real 4-tuple, raw IPv4/IPv6
 * (LINKTYPE_RAW), with sequence and acknowledgement numbers synthesized per direction so the
 * streams reassemble. A connection's first chunk is preceded by a synthesized three-way
 * handshake (marked so in its comment: the real SYN was not seen by TLS probes), and
 * `close()` ends every connection with FIN/ACK. One interface per owner (process, container,
 * node) the caller names; each packet's comment says who sent or received it.
 */
import { PcapngWriter, EPB_INBOUND, EPB_OUTBOUND, type BinarySink } from './pcapng.js';
import { LINKTYPE_RAW } from '../constants.js';

export interface PlaintextChunk {
  /** wall-clock ms since the epoch (fractions kept to the ns) */
  timestampMs: number;
  /** write: local → remote; read: remote → local */
  direction: 'write' | 'read';
  /** "1.2.3.4:443" or "[::1]:443" */
  local: string;
  remote: string;
  data: Uint8Array;
  /** the interface this chunk goes on, e.g. "pid 1234 (curl)" or "web (docker)" */
  owner: string;
  /** the packet's comment, e.g. "pid 1234 curl SSL_write" */
  comment: string;
  /** tells connections apart that reuse a tuple (the TLS session pointer) */
  connection?: string;
}

const MAX_SEGMENT = 65_000;
const SYN = 0x02;
const ACK = 0x10;
const PSH = 0x08;
const FIN = 0x01;

interface Endpoint {
  family: 4 | 6;
  addr: Uint8Array;
  port: number;
}

interface Flow {
  ifId: number;
  local: Endpoint;
  remote: Endpoint;
  /** next sequence number local → remote, and remote → local */
  localSeq: number;
  remoteSeq: number;
  lastMs: number;
  owner: string;
}

export interface PlaintextPcapngStats {
  packets: number;
  connections: number;
  /** chunks without a usable tuple (not written) */
  skipped: number;
}

export class PlaintextPcapngWriter {
  private readonly w: PcapngWriter;
  private readonly interfaces = new Map<string, number>();
  private readonly flows = new Map<string, Flow>();
  readonly stats: PlaintextPcapngStats = { packets: 0, connections: 0, skipped: 0 };

  constructor(sink: BinarySink, application = 'tlscope') {
    this.w = new PcapngWriter(sink, { application, comment: 'decrypted TLS plaintext as seen by tlscope trace tls; TCP handshakes and sequence numbers are synthesized' });
  }

  write(chunks: readonly PlaintextChunk[]): void {
    for (const c of chunks) this.one(c);
    this.w.flush();
  }

  /** Ends every connection with FIN/ACK both ways and flushes. */
  close(): void {
    for (const f of this.flows.values()) {
      const ms = f.lastMs;
      this.segment(f, true, FIN | ACK, new Uint8Array(0), ms, 'synthesized FIN at the end of the trace');
      f.localSeq++;
      this.segment(f, false, FIN | ACK, new Uint8Array(0), ms, 'synthesized FIN at the end of the trace');
      f.remoteSeq++;
      this.segment(f, true, ACK, new Uint8Array(0), ms, 'synthesized');
    }
    this.flows.clear();
    this.w.flush();
  }

  private one(c: PlaintextChunk): void {
    const local = parseEndpoint(c.local);
    const remote = parseEndpoint(c.remote);
    if (local === undefined || remote === undefined || local.family !== remote.family) {
      this.stats.skipped++;
      return;
    }
    const key = `${c.owner}|${c.connection ?? ''}|${c.local}|${c.remote}`;
    let f = this.flows.get(key);
    if (f === undefined) {
      // sequence numbers from the wire direction alone: when both ends are traced, the two
      // copies of a byte carry the same numbers (Wireshark sees the second as a retransmission)
      f = { ifId: this.iface(c.owner), local, remote, localSeq: isn(`${c.local}>${c.remote}`, 1), remoteSeq: isn(`${c.remote}>${c.local}`, 1), lastMs: c.timestampMs, owner: c.owner };
      this.flows.set(key, f);
      this.stats.connections++;
      // which side opened the connection is not known here: the local side is shown as the opener
      this.segment(f, true, SYN, new Uint8Array(0), c.timestampMs, 'synthesized handshake (not seen by TLS probes)');
      f.localSeq++;
      this.segment(f, false, SYN | ACK, new Uint8Array(0), c.timestampMs, 'synthesized');
      f.remoteSeq++;
      this.segment(f, true, ACK, new Uint8Array(0), c.timestampMs, 'synthesized');
    }
    f.lastMs = c.timestampMs;
    const out = c.direction === 'write';
    for (let at = 0; at < c.data.length; at += MAX_SEGMENT) {
      const part = c.data.subarray(at, Math.min(c.data.length, at + MAX_SEGMENT));
      this.segment(f, out, PSH | ACK, part, c.timestampMs, c.comment);
      if (out) f.localSeq = (f.localSeq + part.length) >>> 0;
      else f.remoteSeq = (f.remoteSeq + part.length) >>> 0;
    }
  }

  private iface(owner: string): number {
    let id = this.interfaces.get(owner);
    if (id === undefined) {
      id = this.w.addInterface({ linkType: LINKTYPE_RAW, snaplen: 262_144, name: owner, description: `plaintext of ${owner}` });
      this.interfaces.set(owner, id);
    }
    return id;
  }

  private segment(f: Flow, fromLocal: boolean, flags: number, payload: Uint8Array, ms: number, comment: string): void {
    const src = fromLocal ? f.local : f.remote;
    const dst = fromLocal ? f.remote : f.local;
    const seq = fromLocal ? f.localSeq : f.remoteSeq;
    const ack = (flags & ACK) !== 0 ? (fromLocal ? f.remoteSeq : f.localSeq) : 0;
    const pkt = ipTcp(src, dst, seq, ack, flags, payload);
    const sec = Math.floor(ms / 1000);
    const nsec = Math.min(999_999_999, Math.round((ms - sec * 1000) * 1e6));
    this.w.writePacket(f.ifId, sec, nsec, pkt, 0, pkt.length, pkt.length, fromLocal ? EPB_OUTBOUND : EPB_INBOUND, comment);
    this.stats.packets++;
  }
}

/** A stable pseudo-random initial sequence number per connection and direction. */
function isn(key: string, salt: number): number {
  let h = 0x811c9dc5 ^ salt;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export function parseEndpoint(s: string): Endpoint | undefined {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(s) ?? /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(s);
  if (m === null) return undefined;
  const port = Number(m[2]);
  const a = m[1] ?? '';
  if (a.includes(':')) {
    const addr = ipv6Bytes(a);
    return addr === undefined ? undefined : { family: 6, addr, port };
  }
  const parts = a.split('.').map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return { family: 4, addr: Uint8Array.from(parts), port };
}

function ipv6Bytes(a: string): Uint8Array | undefined {
  // an embedded IPv4 tail (::ffff:1.2.3.4) as two hex words
  const text = a.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, p, q, r, t) =>
    `${((Number(p) << 8) | Number(q)).toString(16)}:${((Number(r) << 8) | Number(t)).toString(16)}`);
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const words = (x: string | undefined): number[] => (x === undefined || x === '' ? [] : x.split(':').map((w) => (/^[0-9a-fA-F]{1,4}$/.test(w) ? parseInt(w, 16) : -1)));
  const h = words(halves[0]);
  const r = words(halves[1]);
  const all = halves.length === 2 ? [...h, ...new Array<number>(Math.max(0, 8 - h.length - r.length)).fill(0), ...r] : h;
  if (all.length !== 8 || all.some((w) => w < 0)) return undefined;
  const out = new Uint8Array(16);
  all.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

function ipTcp(src: Endpoint, dst: Endpoint, seq: number, ack: number, flags: number, payload: Uint8Array): Uint8Array {
  const tcpLen = 20 + payload.length;
  const ipLen = src.family === 4 ? 20 : 40;
  const b = new Uint8Array(ipLen + tcpLen);
  const dv = new DataView(b.buffer);
  if (src.family === 4) {
    b[0] = 0x45;
    dv.setUint16(2, ipLen + tcpLen);
    b[6] = 0x40; // DF
    b[8] = 64;
    b[9] = 6;
    b.set(src.addr, 12);
    b.set(dst.addr, 16);
    dv.setUint16(10, checksum(b, 0, 20, 0));
  } else {
    b[0] = 0x60;
    dv.setUint16(4, tcpLen);
    b[6] = 6;
    b[7] = 64;
    b.set(src.addr, 8);
    b.set(dst.addr, 24);
  }
  const t = ipLen;
  dv.setUint16(t, src.port);
  dv.setUint16(t + 2, dst.port);
  dv.setUint32(t + 4, seq >>> 0);
  dv.setUint32(t + 8, ack >>> 0);
  b[t + 12] = 5 << 4;
  b[t + 13] = flags;
  dv.setUint16(t + 14, 65535);
  b.set(payload, t + 20);
  // pseudo-header sum: addresses, protocol, TCP length
  let pseudo = 6 + tcpLen;
  for (const a of [src.addr, dst.addr]) for (let i = 0; i < a.length; i += 2) pseudo += ((a[i] ?? 0) << 8) | (a[i + 1] ?? 0);
  dv.setUint16(t + 16, checksum(b, t, b.length, pseudo));
  return b;
}

function checksum(b: Uint8Array, start: number, end: number, initial: number): number {
  let sum = initial;
  for (let i = start; i < end; i += 2) sum += ((b[i] ?? 0) << 8) | (i + 1 < end ? (b[i + 1] ?? 0) : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}
