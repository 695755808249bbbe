// SPDX-License-Identifier: Apache-2.0
/**
 * AF_PACKET sockets inside other network namespaces. A socket filter sees a namespace's
 * traffic only when its packet socket was created inside that namespace, so: setns into the
 * target, socket(), setns back — synchronously on this one thread, nothing else runs between —
 * then attach the filter and only then bind to all protocols, so nothing is queued before
 * the filter is in place. Closing the socket detaches the filter.
 */
import { statSync } from 'node:fs';
import { TlscopeError } from '../errors.js';
import { c, errno, strerror, CLONE_NEWNET, O_CLOEXEC, O_RDONLY } from './native.js';
import { kernelError, type BpfProgram } from './object.js';

/** Packet-socket constants (linux/if_packet.h, linux/socket.h), shared with capture.ts. */
export const AF_PACKET = 17;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const SOCK_NONBLOCK = 0o4000;
export const ETH_P_ALL = 0x0003;
export const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
export const SOL_PACKET = 263;
export const PACKET_STATISTICS = 6;

export interface PacketSocket {
  readonly fd: number;
  /** inode of the network namespace the socket lives in */
  readonly netns: number;
  close(): void;
}

/** Network-namespace inode of a /proc/PID/ns/net path (or any nsfs path). */
export function netnsInode(nsPath: string): number {
  return statSync(nsPath).ino;
}

/** Runs `fn` with this thread inside the network namespace at `nsPath`, then comes back. */
export function inNetns<T>(nsPath: string, fn: () => T): T {
  const self = c.open('/proc/thread-self/ns/net', O_RDONLY | O_CLOEXEC) as number;
  if (self < 0) throw kernelError('open own network namespace', errno());
  const target = c.open(nsPath, O_RDONLY | O_CLOEXEC) as number;
  if (target < 0) {
    const e = errno();
    c.close(self);
    throw new TlscopeError('ERR_NETNS', `open network namespace ${nsPath}: ${strerror(e)}`, { hint: e === 2 ? 'the process or container has exited' : 'run as root' });
  }
  try {
    if ((c.setns(target, CLONE_NEWNET) as number) < 0) throw kernelError(`enter network namespace ${nsPath}`, errno());
    try {
      return fn();
    } finally {
      if ((c.setns(self, CLONE_NEWNET) as number) < 0) {
        // Staying in the wrong namespace would silently corrupt everything after: stop now.
        process.stderr.write(`tlscope: fatal: cannot return to the original network namespace: ${strerror(errno())}\n`);
        process.exit(70);
      }
    }
  } finally {
    c.close(target);
    c.close(self);
  }
}

/**
 * A packet socket with `program` attached, receiving every protocol on every interface (or
 * `ifindex`) of the namespace at `nsPath` (default: ours).
 */
export function openPacketSocket(program: BpfProgram, opts: { nsPath?: string; ifindex?: number } = {}): PacketSocket {
  const nsPath = opts.nsPath ?? '/proc/thread-self/ns/net';
  const make = (): number => c.socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) as number;
  const fd = opts.nsPath === undefined ? make() : inNetns(opts.nsPath, make);
  if (fd < 0) throw kernelError('open packet socket', errno());
  try {
    const small = Buffer.alloc(4);
    small.writeInt32LE(4096, 0);
    c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, small, 4);
    program.attachToSocket(fd);
    // struct sockaddr_ll: u16 family, be16 protocol, i32 ifindex, u16 hatype, u8 pkttype, u8 halen, u8 addr[8]
    const sll = Buffer.alloc(20);
    sll.writeUInt16LE(AF_PACKET, 0);
    sll.writeUInt16BE(ETH_P_ALL, 2);
    sll.writeInt32LE(opts.ifindex ?? 0, 4);
    if ((c.bind(fd, sll, sll.length) as number) < 0) throw kernelError('bind packet socket', errno());
    const netns = netnsInode(nsPath);
    let open = true;
    return {
      fd,
      netns,
      close: () => {
        if (open) c.close(fd);
        open = false;
      },
    };
  } catch (e) {
    c.close(fd);
    throw e;
  }
}

/** Packets the kernel dropped on a packet socket since the last call (PACKET_STATISTICS). */
export function packetDrops(fd: number): { packets: number; drops: number } {
  const buf = Buffer.alloc(8);
  const len = [8];
  if ((c.getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, buf, len) as number) < 0) throw kernelError('read packet statistics', errno());
  return { packets: buf.readUInt32LE(0), drops: buf.readUInt32LE(4) };
}
