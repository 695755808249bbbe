// SPDX-License-Identifier: Apache-2.0
/**
 * capture: one filtered packet socket with a TPACKET_V3 ring per network namespace in scope
 * (NetnsScope adds and removes namespaces as containers come and go), all read as the kernel
 * hands blocks over (one epoll set for every socket). Packets are handed to a handler
 * synchronously, while their bytes are still in the ring (no copy here); the handler prints
 * or writes them and says when to stop. This module never prints.
 */
import { CaptureSocket, CapturePoller } from '../../ebpf/packet-socket.js';
import type { CompiledFilter } from '../../ebpf/pcap-filter.js';
import type { RingPacket } from '../../ebpf/tpacket.js';
import { netnsInode } from '../../ebpf/netns.js';
import type { NetnsWatcher } from '../netns-scope.js';
import type { FlowOwners } from './owners.js';

/** One namespace being captured. A namespace watched again later is a new target (new id). */
export interface CaptureTarget {
  readonly id: number;
  readonly netns: number;
  readonly nsPath: string;
  readonly socket: CaptureSocket;
}

export interface PacketHandler {
  /** One packet, valid only during the call. Return false to stop the capture (a count was reached). */
  packet(p: RingPacket, target: CaptureTarget): boolean;
  /** After each drain that delivered packets: write what was laid out. */
  flush(): void;
  targetAdded?(target: CaptureTarget): void;
  targetRemoved?(target: CaptureTarget): void;
}

export interface CaptureOptions {
  filter: CompiledFilter;
  /** -i: only this interface in each namespace */
  interfaceName?: string;
  /** ring per namespace: block size (bytes, power of two) and count */
  blockSize?: number;
  blockCount?: number;
  /**
   * Many namespaces at once (every pod of a namespace): from the `after`-th namespace on,
   * rings get `blockCount` blocks instead, so memory stays bounded.
   */
  manyTargets?: { after: number; blockCount: number };
  /** a partly filled block is handed over after this many ms (latency of the output) */
  retireMs?: number;
  owners?: FlowOwners;
  handler: PacketHandler;
  /** called once when the handler asked to stop */
  onLimit?: () => void;
}

export interface CaptureStats {
  /** packets handed to the handler */
  delivered: number;
  received: number;
  dropped: number;
  freezes: number;
  /** packets the kernel flagged as following a loss */
  losing: number;
  targets: number;
  /** epoll wake-ups with a block ready, and reads done at once because more was ready */
  wakeups: number;
  rereads: number;
  /** looks on the event loop's own timer while traffic flowed (instead of an epoll wait) */
  timerChecks: number;
}

export class CaptureGadget implements NetnsWatcher {
  private readonly targets = new Map<number, CaptureTarget>();
  /**
   * Targets let go (their namespace's last container stopped), read once more after the ring's
   * retire timeout and closed then: the kernel hands the partly filled block over only at that
   * timeout, and a short-lived container's last packets (all of them, often) are in it. Out of
   * `targets` at once: a new namespace may reuse the inode right away.
   */
  private readonly retiring = new Map<CaptureTarget, NodeJS.Timeout>();
  private readonly poller: CapturePoller;
  private nextId = 1;
  private closedTotals = { received: 0, dropped: 0, freezes: 0, losing: 0 };
  private delivered = 0;
  private stopped = false;
  private limitHit = false;
  private closed = false;
  private targetsEver = 0;
  private readonly retireMs: number;

  constructor(private readonly opts: CaptureOptions) {
    this.retireMs = opts.retireMs ?? 8;
    this.poller = new CapturePoller(() => this.drainAll(), () => this.idle());
  }

  /** Starts capturing in the namespace at nsPath (default ours); idempotent by namespace inode. */
  watchNetns(nsPath?: string): number {
    const path = nsPath ?? '/proc/self/ns/net';
    const inode = netnsInode(path);
    if (this.targets.has(inode) || this.closed) return inode;
    const socket = CaptureSocket.open({
      ...(nsPath === undefined ? {} : { nsPath }),
      ...(this.opts.interfaceName === undefined ? {} : { interfaceName: this.opts.interfaceName }),
      filter: this.opts.filter.program,
      ...(this.opts.blockSize === undefined ? {} : { blockSize: this.opts.blockSize }),
      ...(this.ringBlocks() === undefined ? {} : { blockCount: this.ringBlocks() as number }),
      retireMs: this.retireMs,
    });
    const target: CaptureTarget = { id: this.nextId++, netns: socket.netns, nsPath: path, socket };
    this.targets.set(socket.netns, target);
    this.targetsEver++;
    this.poller.add(socket.fd);
    this.opts.handler.targetAdded?.(target);
    return socket.netns;
  }

  private ringBlocks(): number | undefined {
    const many = this.opts.manyTargets;
    if (many !== undefined && this.targets.size >= many.after) return many.blockCount;
    return this.opts.blockCount;
  }

  unwatchNetns(inode: number): void {
    const t = this.targets.get(inode);
    if (t === undefined) return;
    this.targets.delete(inode);
    if (this.stopped || this.closed) {
      this.release(t);
      return;
    }
    // what the kernel already handed over is read now, the rest after the retire timeout
    this.drainTarget(t);
    const timer = setTimeout(() => {
      this.retiring.delete(t);
      if (!this.stopped) {
        this.drainTarget(t);
        this.opts.handler.flush();
      }
      this.release(t);
    }, this.retireMs * 2 + 5);
    this.retiring.set(t, timer);
  }

  private release(t: CaptureTarget): void {
    const s = t.socket.stats();
    t.socket.close();
    this.closedTotals.received += s.received;
    this.closedTotals.dropped += s.dropped;
    this.closedTotals.freezes += s.freezes;
    this.closedTotals.losing += t.socket.walker.stats.losingPackets;
    this.opts.handler.targetRemoved?.(t);
  }

  watched(): CaptureTarget[] {
    return [...this.targets.values()];
  }

  /** Namespaces captured at some point. */
  get targetCount(): number {
    return this.targetsEver;
  }

  private idle(): boolean {
    for (const t of [...this.targets.values(), ...this.retiring.keys()]) if (t.socket.walker.ready()) return false;
    return true;
  }

  private drainTarget(t: CaptureTarget): boolean {
    const go = t.socket.walker.drain((p) => {
      this.delivered++;
      return this.opts.handler.packet(p, t);
    });
    if (!go) this.hitLimit();
    return go;
  }

  private drainAll(): void {
    if (this.stopped) return;
    let any = false;
    for (const t of [...this.targets.values(), ...this.retiring.keys()]) {
      if (!t.socket.walker.ready()) continue;
      if (!any) this.pollOwners(); // owners first: they name the packets' processes
      any = true;
      if (!this.drainTarget(t)) break;
    }
    if (any) this.opts.handler.flush();
    else if (performance.now() - this.ownersPolledAt > 100) this.pollOwners(); // keep their ring from filling
  }

  private ownersPolledAt = 0;

  private pollOwners(): void {
    this.ownersPolledAt = performance.now();
    this.opts.owners?.poll();
  }

  private hitLimit(): void {
    if (this.limitHit) return;
    this.limitHit = true;
    this.stopped = true;
    queueMicrotask(() => this.opts.onLimit?.());
  }

  stats(): CaptureStats {
    const s = { ...this.closedTotals };
    for (const t of [...this.targets.values(), ...this.retiring.keys()]) {
      const k = t.socket.stats();
      s.received += k.received;
      s.dropped += k.dropped;
      s.freezes += k.freezes;
      s.losing += t.socket.walker.stats.losingPackets;
    }
    return { delivered: this.delivered, ...s, targets: this.targetsEver, wakeups: this.poller.stats.wakeups, rereads: this.poller.stats.rereads, timerChecks: this.poller.stats.timerChecks };
  }

  /**
   * Stops: waits for the kernel to hand over its partly filled blocks (the ring's retire
   * timeout), reads them, then closes every socket. Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.stopped) {
      await new Promise((r) => setTimeout(r, this.retireMs * 2 + 5));
      this.drainAll();
      this.stopped = true;
    }
    await this.poller.close();
    for (const [t, timer] of this.retiring) {
      clearTimeout(timer);
      this.release(t);
    }
    this.retiring.clear();
    for (const t of this.targets.values()) this.release(t);
    this.targets.clear();
    this.opts.handler.flush();
  }
}
