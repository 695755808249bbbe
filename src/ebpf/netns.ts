// SPDX-License-Identifier: Apache-2.0
/**
 * Network namespaces by path: their inode (what BPF programs see as `net->ns.inum`), and
 * running a synchronous function with this thread inside one — setns into the target, run,
 * setns back, nothing else runs between (Node runs JavaScript on this one thread).
 */
import { statSync } from 'node:fs';
import { TlscopeError } from '../errors.js';
import { CLONE_NEWNET, ENOENT, O_CLOEXEC, O_RDONLY } from '../constants.js';
import { c, errno, strerror } from './native.js';
import { kernelError } from './errors.js';

/** This thread's own network namespace. */
export const OWN_NETNS_PATH = '/proc/thread-self/ns/net';

/** Network-namespace inode of a /proc/PID/ns/net path (or any nsfs path). */
export function netnsInode(nsPath: string): number {
  return statSync(nsPath).ino;
}

/** Runs `fn` with this thread inside the network namespace at `nsPath`, then comes back. */
export function inNetns<T>(nsPath: string, fn: () => T): T {
  const self = c.open(OWN_NETNS_PATH, O_RDONLY | O_CLOEXEC) as number;
  if (self < 0) throw kernelError('open own network namespace', errno());
  const target = c.open(nsPath, O_RDONLY | O_CLOEXEC) as number;
  if (target < 0) {
    const e = errno();
    c.close(self);
    throw new TlscopeError('ERR_NETNS', `open network namespace ${nsPath}: ${strerror(e)}`, { hint: e === ENOENT ? 'the process or container has exited' : 'run as root' });
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
