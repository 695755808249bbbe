// SPDX-License-Identifier: Apache-2.0
/**
 * The user-space half of trace sni, without the kernel: forwarded segments in, events out.
 * Reassembles each flow's ClientHello (any order, duplicates), remembers the best-known owner
 * of each flow (a later copy may lack it), reports each hello once — the same hello seen
 * through several namespaces or interfaces (loopback, veth ends, bridge, NAT) is recognised
 * by its client random together with its bytes (or with its 4-tuple, within a second); two
 * different hellos that reuse one random are two events — and starts a flow over when its 4-tuple carries a new ClientHello (a new
 * connection reusing the ports, which loopback does within a second under load).
 */
import { createHash } from 'node:crypto';
import { ClientHelloAssembler, evictOldest, type AssemblerDropReason, type AssemblerResult } from '../../protocols/clienthello-assembler.js';
import { tlsVersionName, type ClientHello } from '../../protocols/tls.js';
import { formatEndpoint } from '../../net/addr.js';
import type { CommonEvent } from '../../fields/common.js';
import { SNI_EVENT_LAYOUT, SNI_OWNER_PROC, sniRecordProblem, type SniSegment, type SniOwner } from './decode.js';
import type { RingBatch } from '../../ebpf/ringbuf.js';
import { decodeTuple, TUPLE_LAYOUT, type SockTuple } from '../../net/tuple.js';
import { decodeProc, PROC_LAYOUT } from '../proc-record.js';
import { monotonicToEpochMs } from '../clock.js';

export interface SniEvent extends CommonEvent {
  /** the server name (SNI); undefined when the ClientHello carried none */
  name: string | undefined;
  alpn: readonly string[];
  /** highest TLS version offered, e.g. "TLS1.3" */
  tlsVersion: string;
  src: string;
  dst: string;
  /** out: a local process sent it (attributed); in: received from a peer we could not attribute */
  direction: 'out' | 'in';
  /** ECH: the name is the outer (public) name */
  ech: boolean;
  hello: ClientHello;
}

export interface SniPipelineStats {
  events: number;
  segments: number;
  duplicates: number;
  dropped: Record<AssemblerDropReason, number>;
  /** flows started over because their 4-tuple began a new ClientHello */
  restarted: number;
}

export interface SniPipelineOptions {
  /** Milliseconds, any monotonic origin (default performance.now). */
  now?: () => number;
  /** A flow with no segment for this long is forgotten (default 10 s). */
  idleTimeoutMs?: number;
}

const RANDOM_MEMORY = 8192;
/**
 * Copies of one hello: the same client random and the same bytes within this many ms of each
 * other (kernel time: veth, bridge and NAT copies are microseconds apart, a lost and resent
 * copy seconds), or the same random on the same 4-tuple within SAME_TUPLE_MS.
 */
export const SAME_BYTES_MS = 10_000;
export const SAME_TUPLE_MS = 1_000;

interface SeenHello {
  digest: string;
  flow: string;
  atMs: number;
}
const FLOW_MEMORY = 8192;
/** bytes of a flow's ClientHello the kernel forwards at most (SNI_MAX_HELLO in bpf/include/sni.h) */
const MAX_HELLO_BYTES = 16384;

interface FlowNote {
  /** sequence number of the segment that began the flow's ClientHello record */
  startSeq: number;
  /** the assembler reported a hello for it, or dropped it */
  done: boolean;
}

export class SniPipeline {
  private readonly assembler: ClientHelloAssembler<string>;
  /** hellos already reported, by client random: the same hello seen through NAT or another namespace */
  private readonly seenRandoms = new Map<string, SeenHello[]>();
  /** the best-known owner of each flow (a later copy may lack it) */
  private readonly owners = new Map<string, SniOwner>();
  private readonly flows = new Map<string, FlowNote>();
  private events = 0;
  private randomDuplicates = 0;
  private restarted = 0;

  constructor(opts: SniPipelineOptions = {}) {
    this.assembler = new ClientHelloAssembler({ now: opts.now ?? (() => performance.now()), idleTimeoutMs: opts.idleTimeoutMs ?? 10_000 });
  }

  stats(): SniPipelineStats {
    const a = this.assembler.stats;
    return { events: this.events, segments: a.segments, duplicates: a.duplicateSegments + this.randomDuplicates, dropped: { ...a.dropped }, restarted: this.restarted };
  }

  private flowKey(s: SniSegment): string {
    return `${s.saddr}|${s.sport}|${s.daddr}|${s.dport}`;
  }

  private remember<K, V>(m: Map<K, V>, k: K, v: V, cap: number): void {
    m.delete(k);
    m.set(k, v);
    // 1/16 of the memory at a time: one walk over the map's front per chunk, not per insertion
    if (m.size > cap) evictOldest(m, m.size - cap + (cap >> 4));
  }

  /** Feeds segments, returns the events they complete. */
  process(batch: readonly SniSegment[]): SniEvent[] {
    const out: SniEvent[] = [];
    for (const s of batch) {
      const key = this.flowKey(s);
      const hello = this.step(key, s.first, s.seq, s.payload, s.owner, s.tsNs);
      if (hello !== undefined) out.push(this.toEvent(s.tsNs, s.family, s.saddr, s.sport, s.daddr, s.dport, hello, this.owners.get(key)));
    }
    this.events += out.length;
    return out;
  }

  /**
   * Feeds one ring batch of `struct sni_event` records (bpf/include/sni.h) read in place: no
   * object and no payload copy per segment; the owner is decoded only when the flow's known one
   * differs, the addresses only for the segment that completes a hello. A malformed record is
   * counted (`decodeErrors`) and skipped.
   */
  processBatch(b: RingBatch): SniEvent[] {
    const out: SniEvent[] = [];
    const dv = b.view;
    const { offsets, lengths, bytes } = b;
    const L = SNI_EVENT_LAYOUT;
    const n = offsets.length;
    for (let i = 0; i < n; i++) {
      const off = offsets[i] as number;
      const len = lengths[i] as number;
      const problem = sniRecordProblem(dv, off, len);
      if (problem !== undefined) {
        this.decodeErrors++;
        this.lastDecodeError = problem;
        continue;
      }
      const family = dv.getUint8(off + L.tuple + TUPLE_LAYOUT.family) as 4 | 6;
      const key = rawFlowKey(dv, off + L.tuple, family);
      const captured = dv.getUint32(off + L.captured_len, true);
      const payload = bytes.subarray(off + L.size, off + L.size + captured);
      const owner = dv.getUint8(off + L.owner_known) === 1 ? this.ownerAt(key, dv, off + L.owner + SNI_OWNER_PROC) : undefined;
      const tsNs = dv.getBigUint64(off + L.ts_ns, true);
      const hello = this.step(key, dv.getUint8(off + L.first) === 1, dv.getUint32(off + L.seq, true), payload, owner, tsNs);
      if (hello === undefined) continue;
      const t = decodeTuple(dv, off + L.tuple) as SockTuple;
      out.push(this.toEvent(tsNs, family, t.saddr, t.sport, t.daddr, t.dport, hello, this.owners.get(key)));
    }
    this.events += out.length;
    return out;
  }

  /** records processBatch could not read (malformed), and why the last one failed */
  decodeErrors = 0;
  lastDecodeError: string | undefined;

  /** The owner at `off` (struct tlscope_proc): the flow's known object when it is the same thread. */
  private ownerAt(key: string, dv: DataView, off: number): SniOwner {
    const known = this.owners.get(key);
    if (known !== undefined && known.pid === dv.getUint32(off + PROC_LAYOUT.pid, true) && known.tid === dv.getUint32(off + PROC_LAYOUT.tid, true)) return known;
    return decodeProc(dv, off);
  }

  /** One segment of flow `key`; returns the hello it completes, unless it is a copy of one reported. */
  private step(key: string, first: boolean, seq: number, payload: Uint8Array, owner: SniOwner | undefined, tsNs: bigint): ClientHello | undefined {
    let started: AssemblerResult | undefined;
    if (first) {
      // The kernel saw this segment begin a ClientHello record: the stream starts here, which
      // the assembler is told exactly (it could not infer it from a first segment shorter
      // than 6 bytes, e.g. a client that writes the 5-byte record header on its own).
      const note = this.flows.get(key);
      if (note === undefined) {
        this.remember(this.flows, key, { startSeq: seq, done: false }, FLOW_MEMORY);
        started = this.assembler.startFlow(key, seq);
      } else if (((seq - note.startSeq) >>> 0) >= MAX_HELLO_BYTES) {
        // Another ClientHello outside the bytes the last one could span: a new connection on
        // the same ports (a reused TIME_WAIT pair starts 64 KiB further on; a fresh one
        // elsewhere). Without this it would be taken for a late copy of the old one, or mixed
        // into it, until the flow went idle. A segment inside the hello that merely looks
        // like a start (a record boundary) stays where it is.
        started = this.restart(key, seq);
      }
    }
    if (owner !== undefined) this.noteOwner(key, owner);
    // startFlow may already have settled the flow (held segments completed it, or it was finished)
    let r = started !== undefined && started.status !== 'pending' ? started : this.assembler.push(key, seq, payload);
    if (r.status === 'finished' && first && this.flows.get(key)?.done === false) {
      // The assembler still holds a finished flow this pipeline has no note of any more
      // (bounded memory): this hello is new.
      this.restart(key, seq);
      if (owner !== undefined) this.noteOwner(key, owner);
      r = this.assembler.push(key, seq, payload);
    }
    if (r.status === 'dropped') this.markDone(key);
    if (r.status !== 'hello') return undefined;
    this.markDone(key);
    if (this.isCopy(r.hello.random, r.bytes, key, Number(tsNs / 1_000_000n))) {
      this.randomDuplicates++;
      return undefined;
    }
    return r.hello;
  }

  /**
   * Whether this hello is a copy of one reported already (and remembers it if not). A random
   * alone is not enough: a client (or an attacker) may reuse one for many different hellos.
   */
  private isCopy(randomBytes: Uint8Array, bytes: Uint8Array, flow: string, atMs: number): boolean {
    const random = Buffer.from(randomBytes).toString('hex');
    const digest = createHash('sha256').update(bytes).digest('base64');
    const seen = this.seenRandoms.get(random);
    if (seen !== undefined) {
      const copy = seen.some((h) => {
        const apart = Math.abs(atMs - h.atMs);
        return (h.digest === digest && apart <= SAME_BYTES_MS) || (h.flow === flow && apart <= SAME_TUPLE_MS);
      });
      if (copy) return true;
      seen.push({ digest, flow, atMs });
      if (seen.length > 16) seen.shift();
      return false;
    }
    this.remember(this.seenRandoms, random, [{ digest, flow, atMs }], RANDOM_MEMORY);
    return false;
  }

  /** Every copy of a flow's segments carries the same owner: store it once, not per segment. */
  private noteOwner(key: string, owner: SniOwner): void {
    const known = this.owners.get(key);
    if (known === undefined || known.tid !== owner.tid || known.pid !== owner.pid) this.remember(this.owners, key, owner, FLOW_MEMORY);
  }

  private restart(key: string, startSeq: number): AssemblerResult {
    this.assembler.forget(key);
    this.owners.delete(key);
    this.remember(this.flows, key, { startSeq, done: false }, FLOW_MEMORY);
    this.restarted++;
    return this.assembler.startFlow(key, startSeq);
  }

  private markDone(key: string): void {
    const note = this.flows.get(key);
    if (note !== undefined) note.done = true;
  }

  private toEvent(tsNs: bigint, family: 4 | 6, saddr: string, sport: number, daddr: string, dport: number, hello: ClientHello, owner: SniOwner | undefined): SniEvent {
    return {
      timestamp: monotonicToEpochMs(tsNs),
      proc: owner === undefined
        ? { pid: 0, tid: 0, comm: '' }
        : { pid: owner.pid, tid: owner.tid, comm: owner.comm, uid: owner.uid, gid: owner.gid, mntns: owner.mntns, netns: owner.netns },
      name: hello.serverName,
      alpn: hello.alpn,
      tlsVersion: tlsVersionName(hello.highestVersion),
      src: formatEndpoint(family, saddr, sport),
      dst: formatEndpoint(family, daddr, dport),
      direction: owner === undefined ? 'in' : 'out',
      ech: hello.ech,
      hello,
    };
  }
}

/**
 * A flow's key from the tuple's bytes (struct tlscope_tuple): family, ports and addresses as
 * numbers, without formatting the addresses. Not the same strings as process()'s keys: one
 * pipeline is fed one way.
 */
function rawFlowKey(dv: DataView, off: number, family: 4 | 6): string {
  const L = TUPLE_LAYOUT;
  const sport = dv.getUint16(off + L.sport, true);
  const dport = dv.getUint16(off + L.dport, true);
  if (family === 4) return `${dv.getUint32(off + L.saddr, true)}|${sport}|${dv.getUint32(off + L.daddr, true)}|${dport}`;
  let k = '6';
  for (let i = 0; i < 16; i += 4) k += `|${dv.getUint32(off + L.saddr + i, true)}`;
  for (let i = 0; i < 16; i += 4) k += `|${dv.getUint32(off + L.daddr + i, true)}`;
  return `${k}|${sport}|${dport}`;
}
