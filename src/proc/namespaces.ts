// SPDX-License-Identifier: Apache-2.0
/**
 * Namespace identities of a process. The inode number behind `/proc/PID/ns/<kind>` is what BPF
 * programs see (`task->nsproxy->net_ns->ns.inum`), so it is the key that joins kernel events
 * to containers.
 */
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
