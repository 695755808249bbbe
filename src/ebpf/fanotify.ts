// SPDX-License-Identifier: Apache-2.0
/**
 * fanotify(7) permission events: a group whose marks make the kernel hold an exec or a read
 * until this process answers FAN_ALLOW (or closes the group, which allows everything pending —
 * so a tlscope killed by SIGKILL never leaves a runtime waiting). Used by the container start
 * hook and the exec gate (src/containers/hook*.ts), both answered from a worker thread.
 *
 * Layouts (include/uapi/linux/fanotify.h):
 *   struct fanotify_event_metadata { u32 event_len; u8 vers; u8 reserved; u16 metadata_len;
 *                                    u64 mask; s32 fd; s32 pid; }            24 bytes, vers 3
 *   struct fanotify_response       { s32 fd; u32 response; }                  8 bytes
 *   struct pollfd                  { int fd; short events; short revents; }    8 bytes
 */
import { AT_FDCWD, EAGAIN, EFD_CLOEXEC, EFD_NONBLOCK, EINTR, O_CLOEXEC, O_LARGEFILE, O_RDONLY, POLLIN } from '../constants.js';
import { KernelError } from './errors.js';
import { c, errno } from './native.js';

export const FAN_CLOEXEC = 0x1;
export const FAN_NONBLOCK = 0x2;
export const FAN_CLASS_CONTENT = 0x4;
export const FAN_UNLIMITED_QUEUE = 0x10;
export const FAN_UNLIMITED_MARKS = 0x20;

export const FAN_MARK_ADD = 0x1;
export const FAN_MARK_REMOVE = 0x2;
export const FAN_MARK_DONT_FOLLOW = 0x4;
export const FAN_MARK_ONLYDIR = 0x8;
export const FAN_MARK_MOUNT = 0x10;
export const FAN_MARK_IGNORED_MASK = 0x20;
export const FAN_MARK_FLUSH = 0x80;
export const FAN_MARK_FILESYSTEM = 0x100;

export const FAN_ACCESS = 0x1;
export const FAN_OPEN = 0x20;
export const FAN_OPEN_PERM = 0x10000;
export const FAN_ACCESS_PERM = 0x20000;
export const FAN_OPEN_EXEC_PERM = 0x40000;
export const FAN_EVENT_ON_CHILD = 0x08000000;

export const FAN_ALLOW = 0x1;
export const FAN_DENY = 0x2;
/** An event for which the kernel could not open the file: nothing to answer with an fd. */
export const FAN_NOFD = -1;

const METADATA_VERSION = 3;
const METADATA_LEN = 24;

export interface FanotifyEvent {
  /** FAN_* bits that happened. */
  readonly mask: number;
  /** An fd of the file, opened for this process; the caller answers with it, then closes it. */
  readonly fd: number;
  /** The process that caused the event (its thread group). */
  readonly pid: number;
}

/** One fanotify group of class FAN_CLASS_CONTENT (permission events). */
export class FanotifyGroup {
  private closed = false;
  private readonly response = Buffer.alloc(8);

  private constructor(readonly fd: number) {}

  /**
   * A non-blocking group whose event fds are opened read-only. Throws KernelError (EPERM
   * without CAP_SYS_ADMIN; EINVAL where the kernel lacks CONFIG_FANOTIFY_ACCESS_PERMISSIONS).
   */
  static open(): FanotifyGroup {
    const fd = c.fanotify_init(FAN_CLOEXEC | FAN_NONBLOCK | FAN_CLASS_CONTENT | FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS, O_RDONLY | O_LARGEFILE | O_CLOEXEC) as number;
    if (fd < 0) throw new KernelError('fanotify_init(FAN_CLASS_CONTENT)', errno(), 'fanotify permission events need CAP_SYS_ADMIN and CONFIG_FANOTIFY_ACCESS_PERMISSIONS');
    return new FanotifyGroup(fd);
  }

  /** fanotify_mark(2) on `path`; throws KernelError with the errno. */
  mark(flags: number, mask: number, path: string): void {
    const r = c.fanotify_mark(this.fd, flags, BigInt(mask), AT_FDCWD, path) as number;
    if (r < 0) throw new KernelError(`fanotify_mark ${path}`, errno());
  }

  /** Like mark(), but says whether it worked (for best-effort marks and removals). */
  tryMark(flags: number, mask: number, path: string): boolean {
    return (c.fanotify_mark(this.fd, flags, BigInt(mask), AT_FDCWD, path) as number) === 0;
  }

  /** Events queued now (none when the queue is empty: the group is non-blocking). */
  read(buf: Buffer): FanotifyEvent[] {
    const n = Number(c.read(this.fd, buf, buf.length));
    if (n < 0) {
      const e = errno();
      if (e === EAGAIN || e === EINTR) return [];
      throw new KernelError('read fanotify events', e);
    }
    const out: FanotifyEvent[] = [];
    let off = 0;
    while (off + METADATA_LEN <= n) {
      const len = buf.readUInt32LE(off);
      if (len < METADATA_LEN || buf.readUInt8(off + 4) !== METADATA_VERSION) break;
      out.push({ mask: Number(buf.readBigUInt64LE(off + 8)), fd: buf.readInt32LE(off + 16), pid: buf.readInt32LE(off + 20) });
      off += len;
    }
    return out;
  }

  /** Answers a permission event (FAN_ALLOW unless `deny`); the caller still closes `fd`. */
  answer(fd: number, deny = false): void {
    if (fd < 0 || this.closed) return;
    this.response.writeInt32LE(fd, 0);
    this.response.writeUInt32LE(deny ? FAN_DENY : FAN_ALLOW, 4);
    c.write(this.fd, this.response, 8);
  }

  /** Closes the group: the kernel allows every event still waiting for an answer. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    c.close(this.fd);
  }
}

/** A non-blocking eventfd: another thread writes to it to wake a poll(). */
export function openEventFd(): number {
  const fd = c.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) as number;
  if (fd < 0) throw new KernelError('eventfd', errno());
  return fd;
}

/** Drains an eventfd's counter (after poll said it is readable). */
export function drainEventFd(fd: number, scratch: Buffer): void {
  c.read(fd, scratch, 8);
}

/** Adds one to an eventfd's counter (wakes whoever polls it). Safe from any thread. */
export function signalEventFd(fd: number): void {
  const one = Buffer.alloc(8);
  one.writeBigUInt64LE(1n);
  c.write(fd, one, 8);
}

export function closeFd(fd: number): void {
  if (fd >= 0) c.close(fd);
}

/**
 * poll(2) for input on `fds`, up to `timeoutMs` (-1: forever). Returns which are readable.
 * Blocks the calling thread: meant for the gate's worker thread, never the main one.
 */
export function pollReadable(fds: readonly number[], timeoutMs: number, scratch: Buffer): boolean[] {
  for (let i = 0; i < fds.length; i++) {
    scratch.writeInt32LE(fds[i]!, i * 8);
    scratch.writeInt16LE(POLLIN, i * 8 + 4);
    scratch.writeInt16LE(0, i * 8 + 6);
  }
  const r = c.poll(scratch, fds.length, Math.max(-1, Math.floor(timeoutMs))) as number;
  if (r < 0) {
    const e = errno();
    if (e === EINTR) return fds.map(() => false);
    throw new KernelError('poll', e);
  }
  return fds.map((_, i) => (scratch.readInt16LE(i * 8 + 6) & ~0) !== 0);
}
