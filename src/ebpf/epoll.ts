// SPDX-License-Identifier: Apache-2.0
/**
 * The one epoll waiter: an epoll set whose epoll_wait runs on koffi's worker thread, so the
 * event loop never blocks. At most one wait is outstanding; close() waits for it to come back
 * before the set's fd is closed (closing a watched fd removes it from the set by itself).
 * Used by the BPF ring buffer reader (ringbuf.ts) and the capture sockets' poller
 * (packet-socket.ts).
 */
import { EPOLLIN, EPOLL_CLOEXEC, EPOLL_CTL_ADD } from '../constants.js';
import { c, errno } from './native.js';
import { kernelError } from './errors.js';

/** struct epoll_event is packed on x86-64: u32 events @0, u64 data @4; 12 bytes. */
const EVENT_SIZE = 12;

export class EpollWaiter {
  private epfd: number;
  private pending = false;
  private done: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly events: Buffer;

  /** @param maxEvents ready fds one wait reports at most */
  constructor(private readonly maxEvents = 8) {
    this.epfd = c.epoll_create1(EPOLL_CLOEXEC) as number;
    if (this.epfd < 0) throw kernelError('epoll_create1', errno());
    this.events = Buffer.alloc(EVENT_SIZE * maxEvents);
  }

  /** Watches `fd` for input. */
  add(fd: number): void {
    const ev = Buffer.alloc(EVENT_SIZE);
    ev.writeUInt32LE(EPOLLIN, 0);
    ev.writeUInt32LE(fd, 4);
    if ((c.epoll_ctl(this.epfd, EPOLL_CTL_ADD, fd, ev) as number) < 0) throw kernelError('epoll_ctl', errno());
  }

  /** Whether a wait is outstanding. */
  get waiting(): boolean {
    return this.pending;
  }

  /**
   * Starts one wait of up to `timeoutMs` unless one is outstanding (or the waiter is closed);
   * `then` gets the number of ready fds (0: it timed out); it runs also when close() began
   * meanwhile, so it checks its owner's state.
   */
  wait(timeoutMs: number, then: (ready: number) => void): void {
    if (this.closed || this.pending) return;
    this.pending = true;
    this.done = new Promise((resolve) => {
      c.epoll_wait.async(this.epfd, this.events, this.maxEvents, timeoutMs, (_err: unknown, n: number) => {
        this.pending = false;
        resolve();
        then(n);
      });
    });
  }

  /** Waits for the outstanding wait to return, then closes the set. */
  async close(): Promise<void> {
    if (this.closed) return this.done;
    this.closed = true;
    await this.done;
    c.close(this.epfd);
    this.epfd = -1;
  }
}
