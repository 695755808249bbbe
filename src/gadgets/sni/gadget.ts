// SPDX-License-Identifier: Apache-2.0
/**
 * trace sni: TLS server names asked for on the host. The kernel forwards ClientHello
 * segments (bpf/sni.bpf.c); here they are reassembled per flow, parsed, deduplicated and
 * turned into events (pipeline.ts). This module never prints: it yields batches of SniEvent.
 */
import { BpfObject } from '../../ebpf/object.js';
import type { BpfLink } from '../../ebpf/link.js';
import { RingBatchReader } from '../../ebpf/ringbuf.js';
import { openPacketSocket, type PacketSocket } from '../../ebpf/packet-socket.js';
import { probeFeature, requireFeature } from '../../ebpf/features.js';
import { ensureTracefs } from '../../ebpf/tracefs.js';
import type { AssemblerDropReason } from '../../protocols/clienthello-assembler.js';
import { SNI_OWNER_PROC, type SniOwner, type SniSegment } from './decode.js';
import { encodeTuple, IPPROTO_TCP } from '../../net/tuple.js';
import { decodeProc } from '../proc-record.js';
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
  /**
   * How the sending thread of a connection is found: the tcp_sendmsg_locked tracepoint
   * (Linux ≥ 6.16), or the entry of the system calls that send on a socket (write, writev,
   * sendto, sendmsg, sendmmsg; older kernels). Default: the tracepoint when the kernel has it.
   */
  ownerHook?: 'auto' | OwnerHook;
}

export type OwnerHook = 'tcp_sendmsg_locked' | 'syscalls';
export const OWNER_HOOKS: readonly OwnerHook[] = ['tcp_sendmsg_locked', 'syscalls'];
/** The system calls the fallback owner hook watches (tp/syscalls/sys_enter_<name>). */
export const OWNER_SYSCALLS = ['write', 'writev', 'sendto', 'sendmsg', 'sendmmsg'] as const;

/** The owner hook `auto` picks on this kernel (probes the tracepoint once, by attaching it). */
export function defaultOwnerHook(): OwnerHook {
  return probeFeature('tp_tcp_sendmsg_locked').supported ? 'tcp_sendmsg_locked' : 'syscalls';
}

/** In words, for -v and doctor. */
export function describeOwnerHook(hook: OwnerHook): string {
  return hook === 'tcp_sendmsg_locked'
    ? 'the tcp_sendmsg_locked tracepoint'
    : `the ${OWNER_SYSCALLS.join('/')} system call tracepoints (fallback for kernels before 6.16; io_uring, sendfile and splice sends are not attributed)`;
}

export class SniGadget implements AsyncIterable<SniEvent[]> {
  private readonly obj: BpfObject;
  private readonly links: BpfLink[] = [];
  private readonly sockets = new Map<number, PacketSocket>();
  private readonly reader: RingBatchReader;
  private readonly pipeline = new SniPipeline();
  /** how the sending thread is found on this run */
  readonly ownerHook: OwnerHook;

  private constructor(obj: BpfObject, opts: SniOptions, ownerHook: OwnerHook) {
    this.obj = obj;
    this.ownerHook = ownerHook;
    this.reader = new RingBatchReader(obj.map('events'), {
      lostCounter: obj.map('tlscope_lost'),
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    });
  }

  /** Loads and attaches the kernel side; add namespaces with watchNetns. */
  static open(opts: SniOptions = {}): SniGadget {
    requireFeature('ringbuf');
    requireFeature('socket_filter');
    const hook = opts.ownerHook === undefined || opts.ownerHook === 'auto' ? defaultOwnerHook() : opts.ownerHook;
    if (hook === 'tcp_sendmsg_locked') requireFeature('tp_tcp_sendmsg_locked');
    else {
      ensureTracefs();
      requireFeature('tracepoint');
    }
    // only the owner programs of the chosen hook are loaded: the tp_btf one does not load before 6.16
    const obj = BpfObject.load('sni', {
      programs: ['sni_socket', ...(hook === 'tcp_sendmsg_locked' ? ['sni_sendmsg'] : OWNER_SYSCALLS.map((n) => `sni_sys_${n}`))],
      ...(opts.ringBytes === undefined ? {} : { maxEntries: { events: opts.ringBytes } }),
    });
    let g: SniGadget | undefined;
    try {
      g = new SniGadget(obj, opts, hook);
      if (hook === 'tcp_sendmsg_locked') g.links.push(obj.program('sni_sendmsg').attachTrace());
      else for (const n of OWNER_SYSCALLS) g.links.push(obj.program(`sni_sys_${n}`).attachTracepoint('syscalls', `sys_enter_${n}`));
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
      decodeErrors: this.pipeline.decodeErrors,
    };
  }

  private finalKernelStats: Record<string, bigint> | undefined;

  /** Kernel-side counters (segments forwarded, hello starts, load errors, owners recorded). */
  kernelStats(): Record<string, bigint> {
    if (this.finalKernelStats !== undefined) return this.finalKernelStats;
    const m = this.obj.map('sni_stats');
    return { segmentsForwarded: m.sumU64(0), helloStarts: m.sumU64(1), loadErrors: m.sumU64(2), ownersRecorded: m.sumU64(3) };
  }

  /**
   * The owner the kernel holds for a TCP 4-tuple (addresses in network order, as packets carry
   * them), with when it was last recorded (CLOCK_MONOTONIC ns); undefined when none.
   */
  recordedOwner(t: { family: 4 | 6; saddr: ArrayLike<number>; daddr: ArrayLike<number>; sport: number; dport: number }): (SniOwner & { recordedNs: bigint }) | undefined {
    if (this.finalKernelStats !== undefined) return undefined;
    const v = this.obj.map('sni_owners').lookup(encodeTuple({ ...t, protocol: IPPROTO_TCP }));
    if (v === undefined) return undefined;
    const dv = new DataView(v.buffer, v.byteOffset, v.length);
    return { ...decodeProc(dv, SNI_OWNER_PROC), recordedNs: dv.getBigUint64(0, true) };
  }

  /** Feeds segments, returns the events they complete. */
  process(batch: readonly SniSegment[]): SniEvent[] {
    return this.pipeline.process(batch);
  }

  /** Batches of the ring, read in place (no object or copy per segment). */
  async *[Symbol.asyncIterator](): AsyncIterator<SniEvent[]> {
    for await (const batch of this.reader) {
      const evs = this.pipeline.processBatch(batch);
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
