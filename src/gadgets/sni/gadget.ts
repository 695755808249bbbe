// SPDX-License-Identifier: Apache-2.0
/**
 * trace sni: TLS server names asked for on the host. The kernel forwards ClientHello
 * segments (bpf/sni.bpf.c); here they are reassembled per flow, parsed, deduplicated and
 * turned into events (pipeline.ts). This module never prints: it yields batches of SniEvent.
 */
import { BpfObject, type BpfLink } from '../../ebpf/object.js';
import { RingBufReader } from '../../ebpf/ringbuf.js';
import { openPacketSocket, type PacketSocket } from '../../ebpf/packet.js';
import { requireFeature } from '../../ebpf/features.js';
import type { AssemblerDropReason } from '../../protocols/clienthello-assembler.js';
import { decodeSniSegment, type SniSegment } from './decode.js';
import { SniPipeline, type SniEvent } from './pipeline.js';

export type { SniEvent } from './pipeline.js';

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

export class SniGadget implements AsyncIterable<SniEvent[]> {
  private readonly obj: BpfObject;
  private readonly links: BpfLink[] = [];
  private readonly sockets = new Map<number, PacketSocket>();
  private readonly reader: RingBufReader<SniSegment>;
  private readonly pipeline = new SniPipeline();

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
    requireFeature('tp_tcp_sendmsg_locked');
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
    const p = this.pipeline.stats();
    return {
      events: p.events,
      lost: this.reader.lost(),
      segments: p.segments,
      duplicates: p.duplicates,
      dropped: p.dropped,
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

  /** Feeds segments, returns the events they complete. */
  process(batch: readonly SniSegment[]): SniEvent[] {
    return this.pipeline.process(batch);
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
