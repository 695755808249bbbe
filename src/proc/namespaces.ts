// SPDX-License-Identifier: Apache-2.0
/**
 * Namespace identities of a process. The inode number behind `/proc/PID/ns/<kind>` is what BPF
 * programs see (`task->nsproxy->net_ns->ns.inum`), so it is the key that joins kernel events
 * to containers.
 */
import { PermissionError } from '../errors.js';
import { DEFAULT_PROC_ROOT, readProcLink } from './read.js';

export type NamespaceKind = 'mnt' | 'net' | 'pid' | 'uts' | 'ipc' | 'user' | 'cgroup';

export interface ProcessNamespaces {
  readonly mnt: number;
  readonly net: number;
  readonly pid: number;
}

/** Parses a namespace link target such as `net:[4026531840]` into its inode number. */
export function parseNamespaceLink(target: string): number | undefined {
  const m = /^[a-z_]+:\[(\d+)\]$/.exec(target);
  if (m?.[1] === undefined) return undefined;
  const inode = Number(m[1]);
  return Number.isSafeInteger(inode) ? inode : undefined;
}

/** The inode of one namespace of `pid`, or undefined when the process is gone. */
export function namespaceInode(pid: number, kind: NamespaceKind, procRoot = DEFAULT_PROC_ROOT): number | undefined {
  const target = readProcLink(`${procRoot}/${pid}/ns/${kind}`);
  return target === undefined ? undefined : parseNamespaceLink(target);
}

/** Mount, network and pid namespace inodes of `pid`; undefined when the process is gone. */
export function processNamespaces(pid: number, procRoot = DEFAULT_PROC_ROOT): ProcessNamespaces | undefined {
  const mnt = namespaceInode(pid, 'mnt', procRoot);
  if (mnt === undefined) return undefined;
  const net = namespaceInode(pid, 'net', procRoot);
  if (net === undefined) return undefined;
  const pidns = namespaceInode(pid, 'pid', procRoot);
  if (pidns === undefined) return undefined;
  return { mnt, net, pid: pidns };
}

/**
 * The one decision of which namespaces are the host's: those of pid 1 when we may read them
 * (tlscope on the host, or in a pod with hostPID), else our own. Returns whose they are.
 */
function hostSource(procRoot: string): { pid: number; ns: ProcessNamespaces } | undefined {
  try {
    const init = processNamespaces(1, procRoot);
    if (init !== undefined) return { pid: 1, ns: init };
  } catch (e) {
    if (!(e instanceof PermissionError)) throw e;
  }
  const own = processNamespaces(process.pid, procRoot);
  return own === undefined ? undefined : { pid: process.pid, ns: own };
}

/**
 * The host's namespaces, the one definition every layer uses (the container index keeps what
 * this said at its start): "the host" in a scope means processes in exactly these namespaces
 * (compared by inode).
 */
export function hostNamespaces(procRoot = DEFAULT_PROC_ROOT): ProcessNamespaces | undefined {
  return hostSource(procRoot)?.ns;
}

/** The path of the host's network namespace to enter (pid 1's), or undefined when the host's are our own. */
export function hostNetnsPath(procRoot = DEFAULT_PROC_ROOT): string | undefined {
  try {
    return hostSource(procRoot)?.pid === 1 ? `${procRoot}/1/ns/net` : undefined;
  } catch {
    return undefined;
  }
}
