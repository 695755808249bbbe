// SPDX-License-Identifier: Apache-2.0
/**
 * AF_PACKET sockets inside a network namespace, by one path. A socket filter sees a
 * namespace's traffic only when its packet socket was created inside that namespace, so:
 * socket() inside the target (netns.ts), then the filter (and a ring) on the unbound socket,
 * and only then bind to every protocol, so that nothing is queued before the filter is in
 * place. Closing the socket detaches the filter; nothing here outlives the process.
 *
 * Two users: trace sni (an eBPF socket filter, SO_ATTACH_BPF, events out through a BPF ring
 * buffer: openPacketSocket) and capture (a classic filter compiled by libpcap,
 * SO_ATTACH_FILTER, packets out through a TPACKET_V3 ring: CaptureSocket).
 */
import { TlscopeError } from '../errors.js';
import {
  AF_PACKET, ENODEV, ETH_P_ALL, PACKET_STATISTICS, SIOCGIFINDEX, SIOCGIFNAME, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_RAW, SOL_PACKET, SOL_SOCKET, SO_ATTACH_FILTER, SO_RCVBUF,
} from '../constants.js';
import { addressOf, c, errno, pageSize } from './native.js';
import { kernelError } from './errors.js';
import { EpollWaiter } from './epoll.js';
import { inNetns, netnsInode, OWN_NETNS_PATH } from './netns.js';
import type { BpfProgram } from './program.js';
import { SLL, TpacketRing, type TpacketV3Walker } from './tpacket.js';

export interface PacketSocketOptions {
  /** A network namespace (`/proc/PID/ns/net`); default ours. */
  nsPath?: string;
  /** Only this interface, by name in that namespace; default every interface. */
  interfaceName?: string;
  /** Only this interface, by index; default every interface. */
  ifindex?: number;
  /**
   * Runs on the socket before it is bound: attach the filter, set up a ring. May return an
   * undo, run when a later step fails.
   */
  configure(fd: number): (() => void) | void;
}

/** A bound AF_PACKET socket (SOCK_RAW, every protocol) living in one network namespace. */
export class PacketSocket {
  /** the bound interface, 0 for all */
  readonly ifindex: number;
  private readonly names = new Map<number, string>();
  private open = true;

  private constructor(readonly fd: number, readonly netns: number, ifindex: number) {
    this.ifindex = ifindex;
  }

  /** socket() in the namespace, interface lookup, configure(), bind — the only way one is made. */
  static open(opts: PacketSocketOptions): PacketSocket {
    const nsPath = opts.nsPath ?? OWN_NETNS_PATH;
    const made = (): { fd: number; err: number } => {
      const fd = c.socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) as number;
      return { fd, err: fd < 0 ? errno() : 0 };
    };
    const { fd, err } = opts.nsPath === undefined ? made() : inNetns(opts.nsPath, made);
    if (fd < 0) throw kernelError('open packet socket', err);
    let undo: (() => void) | void = undefined;
    try {
      const netns = netnsInode(nsPath);
      let ifindex = opts.ifindex ?? 0;
      if (opts.interfaceName !== undefined) {
        ifindex = interfaceIndex(fd, opts.interfaceName);
        if (ifindex === 0) {
          throw new TlscopeError('ERR_NO_INTERFACE', `no interface ${JSON.stringify(opts.interfaceName)} in network namespace ${netns}`, { hint: 'list them with `ip -n NS link` or `nsenter -t PID -n ip link`; leave -i out for every interface' });
        }
      }
      undo = opts.configure(fd);
      const sll = Buffer.alloc(SLL.size); // struct sockaddr_ll: family, protocol (be16), ifindex
      sll.writeUInt16LE(AF_PACKET, 0);
      sll.writeUInt16BE(ETH_P_ALL, 2);
      sll.writeInt32LE(ifindex, 4);
      if ((c.bind(fd, sll, sll.length) as number) < 0) throw kernelError('bind packet socket', errno());
      return new PacketSocket(fd, netns, ifindex);
    } catch (e) {
      if (undo) undo();
      c.close(fd);
      throw e;
    }
  }

  /** The name of an interface of the socket's namespace (cached); `if<N>` once it is gone. */
  interfaceName(ifindex: number): string {
    let n = this.names.get(ifindex);
    if (n === undefined) {
      n = (this.open ? interfaceNameOf(this.fd, ifindex) : undefined) ?? `if${ifindex}`;
      this.names.set(ifindex, n);
    }
    return n;
  }

  get isOpen(): boolean {
    return this.open;
  }

  /** Closes the socket (the filter goes with it); idempotent. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    c.close(this.fd);
  }
}

/**
 * A packet socket with an eBPF socket filter (`program`) attached, receiving every protocol on
 * every interface (or `ifindex`) of the namespace at `nsPath` (default: ours). Its own receive
 * queue stays small: the program hands what it sees to a BPF ring buffer and passes nothing.
 */
export function openPacketSocket(program: BpfProgram, opts: { nsPath?: string; ifindex?: number } = {}): PacketSocket {
  return PacketSocket.open({
    ...opts,
    configure: (fd) => {
      const small = Buffer.alloc(4);
      small.writeInt32LE(4096, 0);
      c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, small, 4);
      program.attachToSocket(fd);
    },
  });
}

/** Packets the kernel dropped on a packet socket since the last call (PACKET_STATISTICS). */
export function packetDrops(fd: number): { packets: number; drops: number } {
  const buf = Buffer.alloc(8);
  const len = [8];
  if ((c.getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, buf, len) as number) < 0) throw kernelError('read packet statistics', errno());
  return { packets: buf.readUInt32LE(0), drops: buf.readUInt32LE(4) };
}

/** SO_ATTACH_FILTER with a classic BPF program (struct sock_fprog: u16 len @0, pointer @8). */
export function attachClassicFilter(fd: number, program: Buffer): void {
  const insns = Buffer.from(program); // kept alive across the call
  const fprog = Buffer.alloc(16);
  fprog.writeUInt16LE(insns.length / 8, 0);
  fprog.writeBigUInt64LE(BigInt(addressOf(insns)), 8);
  const r = c.setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, fprog, 16) as number;
  const e = errno();
  void insns;
  if (r < 0) throw kernelError('attach the capture filter', e);
}

/** struct ifreq: ifr_name[16] @0, union @16 (ifr_ifindex int). Resolved in the socket's namespace. */
function interfaceIndex(fd: number, name: string): number {
  if (Buffer.byteLength(name) > 15) return 0;
  const ifr = Buffer.alloc(40);
  ifr.write(name, 0, 'utf8');
  if ((c.ioctl(fd, SIOCGIFINDEX, ifr) as number) < 0) {
    const e = errno();
    if (e === ENODEV) return 0;
    throw kernelError(`look up interface ${name}`, e);
  }
  return ifr.readInt32LE(16);
}

function interfaceNameOf(fd: number, ifindex: number): string | undefined {
  const ifr = Buffer.alloc(40);
  ifr.writeInt32LE(ifindex, 16);
  if ((c.ioctl(fd, SIOCGIFNAME, ifr) as number) < 0) return undefined;
  const end = ifr.indexOf(0);
  return ifr.subarray(0, end < 0 || end > 16 ? 16 : end).toString('utf8');
}

// ---- capture sockets: a classic filter and a TPACKET_V3 ring -----------------------------------

export interface CaptureSocketOptions {
  /** A network namespace (`/proc/PID/ns/net`); default ours. */
  nsPath?: string;
  /** Only this interface (a name in that namespace); default every interface. */
  interfaceName?: string;
  /** The classic BPF program (CompiledFilter.program). */
  filter: Buffer;
  /** Ring block size in bytes: a power-of-two number of pages (default 1 MiB). */
  blockSize?: number;
  /** Blocks in the ring (default 8). */
  blockCount?: number;
  /** A block that holds packets is handed over after this many ms even when not full (default 8). */
  retireMs?: number;
}

export interface CaptureSocketStats {
  /** packets that passed the filter (including those then dropped), as libpcap's ps_recv */
  received: number;
  /** packets the kernel dropped because the ring was full */
  dropped: number;
  /** times the queue was frozen (ring full) */
  freezes: number;
}

/** A packet socket with a classic filter and a TPACKET_V3 ring, living in one network namespace. */
export class CaptureSocket {
  readonly walker: TpacketV3Walker;
  private totals: CaptureSocketStats = { received: 0, dropped: 0, freezes: 0 };

  private constructor(private readonly socket: PacketSocket, private readonly ring: TpacketRing) {
    this.walker = ring.walker;
  }

  get fd(): number {
    return this.socket.fd;
  }

  /** inode of the socket's network namespace */
  get netns(): number {
    return this.socket.netns;
  }

  /** the bound interface, 0 for all */
  get ifindex(): number {
    return this.socket.ifindex;
  }

  /**
   * socket() inside the namespace, then: filter, TPACKET_V3, ring, mmap — and only then bind
   * to every protocol, so that nothing is queued before the filter is in place.
   */
  static open(opts: CaptureSocketOptions): CaptureSocket {
    const page = pageSize();
    const blockSize = opts.blockSize ?? 1 << 20;
    const blockCount = opts.blockCount ?? 8;
    if (blockSize < page || (blockSize & (blockSize - 1)) !== 0) throw new TlscopeError('ERR_CAPTURE', `ring block size ${blockSize} is not a power of two of at least a page`);
    if (blockCount < 2) throw new TlscopeError('ERR_CAPTURE', 'a capture ring needs at least 2 blocks');
    let ring: TpacketRing | undefined;
    const socket = PacketSocket.open({
      ...(opts.nsPath === undefined ? {} : { nsPath: opts.nsPath }),
      ...(opts.interfaceName === undefined ? {} : { interfaceName: opts.interfaceName }),
      configure: (fd) => {
        attachClassicFilter(fd, opts.filter);
        ring = TpacketRing.create(fd, { blockSize, blockCount, retireMs: opts.retireMs ?? 8 });
        return () => ring?.close();
      },
    });
    return new CaptureSocket(socket, ring as TpacketRing);
  }

  /** The name of an interface of the socket's namespace (cached); `if<N>` once it is gone. */
  interfaceName(ifindex: number): string {
    return this.socket.interfaceName(ifindex);
  }

  /** Counters since the socket was opened (PACKET_STATISTICS resets on read: they are summed). */
  stats(): CaptureSocketStats {
    if (this.socket.isOpen) {
      const buf = Buffer.alloc(12); // struct tpacket_stats_v3
      const len = [12];
      if ((c.getsockopt(this.socket.fd, SOL_PACKET, PACKET_STATISTICS, buf, len) as number) === 0) {
        // tp_packets already includes tp_drops (the kernel adds them when reporting)
        this.totals = {
          received: this.totals.received + buf.readUInt32LE(0),
          dropped: this.totals.dropped + buf.readUInt32LE(4),
          freezes: this.totals.freezes + buf.readUInt32LE(8),
        };
      }
    }
    return { ...this.totals };
  }

  get isOpen(): boolean {
    return this.socket.isOpen;
  }

  /** Size of the ring mapped for this socket. */
  get ringBytes(): number {
    return this.ring.bytes;
  }

  /** Reads the final counters, unmaps the ring and closes the socket (the filter goes with it). */
  close(): void {
    if (!this.socket.isOpen) return;
    this.stats();
    this.ring.close();
    this.socket.close();
  }
}

// ---- waiting for packets ------------------------------------------------------------------------

/** hot mode: the period of the looks while traffic flows, and how many empty looks end it */
const HOT_PERIOD_MS = 1;
const HOT_CHECKS = 10;
/** hot mode starts when two blocks come closer than this: below the 8 ms retire timeout, so a
 * trickle that the kernel's timer hands over block by block stays with epoll */
const HOT_WINDOW_MS = 6;

/**
 * Calls `onReady` when packets may be waiting on any of a set of capture sockets. Idle, it
 * waits in epoll (epoll_wait runs on koffi's worker thread, so the event loop never blocks)
 * until the kernel hands a block over. Then it reads, reads on at once (through setImmediate,
 * so that timers and I/O still get their turn) while more blocks are ready, and while traffic
 * flows looks again every HOT_PERIOD_MS on a timer of the event loop itself instead of going
 * back to epoll: a wait on the worker thread costs two thread wake-ups (the worker, then the
 * event loop) and an async call (~16 µs of CPU, ~100 µs of wall time on this loaded VM:
 * 20 000 calls, measured ad hoc), and on a loaded machine every wake-up waits for a core, so
 * the ring had to absorb two scheduling delays per block instead of one. Hot mode starts when
 * two blocks come less than HOT_WINDOW_MS apart and ends after HOT_CHECKS empty
 * looks in a row. The epoll wait times out every `waitMs` and
 * reads anyway, so a wake-up the kernel did not send costs at most that long.
 */
export class CapturePoller {
  private readonly epoll: EpollWaiter;
  private again = false;
  private closed = false;
  /** epoll waits that ended with a socket ready / reads scheduled at once because more was ready */
  readonly stats = { wakeups: 0, timeouts: 0, rereads: 0, timerChecks: 0 };

  /**
   * @param onReady reads what is ready
   * @param isIdle whether no socket has a block ready now
   */
  constructor(private readonly onReady: () => void, private readonly isIdle: () => boolean, private readonly waitMs = 100) {
    this.epoll = new EpollWaiter(8);
    this.arm();
  }

  /** Watches a socket (closing the socket removes it from epoll by itself). */
  add(fd: number): void {
    this.epoll.add(fd);
  }

  /** empty timer checks in a row since the last one that found a block (hot mode) */
  private coldChecks = HOT_CHECKS;
  /** when a look last found a block (performance.now()) */
  private lastFound = -Infinity;
  private hotTimer: NodeJS.Timeout | undefined;

  private tick(): void {
    if (this.closed) return;
    const found = !this.isIdle();
    this.onReady();
    if (!this.isIdle()) {
      this.coldChecks = 0;
      this.lastFound = performance.now();
      if (!this.again) {
        this.again = true;
        this.stats.rereads++;
        setImmediate(() => {
          this.again = false;
          this.tick();
        });
      }
      return;
    }
    // Blocks come often: look again on a short timer of the event loop's own instead of a wait
    // on the worker thread (one thread wake-up instead of two, no async call per block); after
    // HOT_CHECKS empty looks in a row, wait in epoll again. A trickle whose blocks the retire
    // timer hands over is left to epoll, so that it does not keep a 1 ms timer running.
    if (found) {
      const now = performance.now();
      this.coldChecks = now - this.lastFound < HOT_WINDOW_MS ? 0 : HOT_CHECKS;
      this.lastFound = now;
    } else this.coldChecks++;
    if (this.coldChecks < HOT_CHECKS) {
      this.stats.timerChecks++;
      this.hotTimer ??= setTimeout(() => {
        this.hotTimer = undefined;
        this.tick();
      }, HOT_PERIOD_MS);
      return;
    }
    this.arm();
  }

  private arm(): void {
    if (this.closed || this.epoll.waiting) return;
    this.epoll.wait(this.waitMs, (n) => {
      if (n > 0) this.stats.wakeups++;
      else this.stats.timeouts++;
      this.tick();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.hotTimer !== undefined) clearTimeout(this.hotTimer);
    await this.epoll.close();
  }
}
