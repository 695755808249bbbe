// SPDX-License-Identifier: Apache-2.0
/**
 * trace sni: TLS server names asked for on the host. The kernel forwards ClientHello
 * segments (bpf/sni.bpf.c); here they are reassembled per flow, parsed, deduplicated and
 * turned into events. This module never prints: it yields batches of SniEvent.
 */
import { BpfObject, type BpfLink } from '../../ebpf/object.js';
import { RingBufReader } from '../../ebpf/ringbuf.js';
import { openPacketSocket, type PacketSocket } from '../../ebpf/packet.js';
import { requireFeature } from '../../ebpf/features.js';
import { ClientHelloAssembler, type AssemblerDropReason } from '../../protocols/clienthello-assembler.js';
import { tlsVersionName, type ClientHello } from '../../protocols/tls.js';
import { formatEndpoint } from '../../net/addr.js';
import type { CommonEvent } from '../../fields/common.js';
import { decodeSniSegment, type SniSegment, type SniOwner } from './decode.js';
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

export interface SniStats {
  events: number;
  /** segments the kernel could not put in the ring (full) */
  lost: bigint;
  segments: number;
  duplicates: number;
  dropped: Record<AssemblerDropReason, number>;
  decodeErrors: number;
}

export interface SniOptions {
  /** ring buffer size in bytes (power of two) */
  ringBytes?: number;
  signal?: AbortSignal;
}

const RANDOM_MEMORY = 8192;
const OWNER_MEMORY = 8192;

export class SniGadget implements AsyncIterable<SniEvent[]> {
  private readonly obj: BpfObject;
  private readonly links: BpfLink[] = [];
  private readonly sockets = new Map<number, PacketSocket>();
  private readonly reader: RingBufReader<SniSegment>;
  private readonly assembler = new ClientHelloAssembler<string>({ now: () => performance.now(), idleTimeoutMs: 10_000 });
  /** client randoms already reported: the same hello seen through NAT or another namespace */
  private readonly seenRandoms = new Map<string, true>();
  /** the best-known owner of each flow (a later copy may lack it) */
  private readonly owners = new Map<string, SniOwner>();
  private events = 0;
  private randomDuplicates = 0;

  private constructor(obj: BpfObject, opts: SniOptions) {
    this.obj = obj;
    this.reader = new RingBufReader(obj.map('events'), {
      decode: decodeSniSegment,
      lostCounter: obj.map('tlscope_lost'),
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    });
  }

  /** Loads and attaches the kernel side; add namespaces with watchNetns. */
  static open(opts: SniOptions = {}): SniGadget {
    requireFeature('ringbuf');
    requireFeature('tp_btf');
    requireFeature('socket_filter');
    const obj = BpfObject.load('sni', opts.ringBytes === undefined ? {} : { maxEntries: { events: opts.ringBytes } });
    let g: SniGadget | undefined;
    try {
      g = new SniGadget(obj, opts);
      g.links.push(obj.program('sni_sendmsg').attachTrace());
      return g;
    } catch (e) {
      void g?.close();
      obj.close();
      throw e;
    }
  }

  /** Starts watching the network namespace at nsPath (e.g. /proc/PID/ns/net); idempotent by inode. */
  watchNetns(nsPath?: string): number {
    const sock = openPacketSocket(this.obj.program('sni_socket'), nsPath === undefined ? {} : { nsPath });
    if (this.sockets.has(sock.netns)) {
      sock.close();
      return sock.netns;
    }
    this.sockets.set(sock.netns, sock);
    return sock.netns;
  }

  unwatchNetns(inode: number): void {
    this.sockets.get(inode)?.close();
    this.sockets.delete(inode);
  }

  watchedNetns(): number[] {
    return [...this.sockets.keys()];
  }

  stats(): SniStats {
    const a = this.assembler.stats;
    return {
      events: this.events,
      lost: this.reader.lost(),
      segments: a.segments,
      duplicates: a.duplicateSegments + this.randomDuplicates,
      dropped: { ...a.dropped },
      decodeErrors: this.reader.stats.decodeErrors,
    };
  }

  private finalKernelStats: Record<string, bigint> | undefined;

  /** Kernel-side counters (segments forwarded, hello starts, load errors, owners recorded). */
  kernelStats(): Record<string, bigint> {
    if (this.finalKernelStats !== undefined) return this.finalKernelStats;
    const m = this.obj.map('sni_stats');
    return { segmentsForwarded: m.sumU64(0), helloStarts: m.sumU64(1), loadErrors: m.sumU64(2), ownersRecorded: m.sumU64(3) };
  }

  private flowKey(s: SniSegment): string {
    return `${s.saddr}|${s.sport}|${s.daddr}|${s.dport}`;
  }

  private remember<K, V>(m: Map<K, V>, k: K, v: V, cap: number): void {
    m.delete(k);
    m.set(k, v);
    if (m.size > cap) m.delete(m.keys().next().value as K);
  }

  /** Feeds segments, returns the events they complete. */
  process(batch: readonly SniSegment[]): SniEvent[] {
    const out: SniEvent[] = [];
    for (const s of batch) {
      const key = this.flowKey(s);
      if (s.owner !== undefined) this.remember(this.owners, key, s.owner, OWNER_MEMORY);
      const r = this.assembler.push(key, s.seq, s.payload);
      if (r.status !== 'hello') continue;
      const random = Buffer.from(r.hello.random).toString('hex');
      if (this.seenRandoms.has(random)) {
        this.randomDuplicates++;
        continue;
      }
      this.remember(this.seenRandoms, random, true, RANDOM_MEMORY);
      out.push(this.toEvent(s, r.hello, this.owners.get(key)));
    }
    this.events += out.length;
    return out;
  }

  private toEvent(s: SniSegment, hello: ClientHello, owner: SniOwner | undefined): SniEvent {
    return {
      timestamp: monotonicToEpochMs(s.tsNs),
      proc: owner === undefined
        ? { pid: 0, tid: 0, comm: '' }
        : { pid: owner.pid, tid: owner.tid, comm: owner.comm, uid: owner.uid, gid: owner.gid, mntns: owner.mntns, netns: owner.netns },
      name: hello.serverName,
      alpn: hello.alpn,
      tlsVersion: tlsVersionName(hello.highestVersion),
      src: formatEndpoint(s.family, s.saddr, s.sport),
      dst: formatEndpoint(s.family, s.daddr, s.dport),
      direction: owner === undefined ? 'in' : 'out',
      ech: hello.ech,
      hello,
    };
  }

  async *[Symbol.asyncIterator](): AsyncIterator<SniEvent[]> {
    for await (const batch of this.reader) {
      const evs = this.process(batch);
      if (evs.length > 0) yield evs;
    }
  }

  /** Stops: detaches everything, reads what the kernel already queued (iteration then ends). */
  async close(): Promise<void> {
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
    for (const l of this.links) l.close();
    this.links.length = 0;
    await this.reader.close();
    this.finalKernelStats = this.kernelStats();
    this.obj.close();
  }
}
