// SPDX-License-Identifier: Apache-2.0
/**
 * Typed, synchronous helpers over /proc. A process that is gone (or goes away while being read)
 * gives `undefined`, never an exception.
 */
export { DEFAULT_PROC_ROOT } from './read.js';
export { hostNamespaces, hostNetnsPath, namespaceInode, parseNamespaceLink, processNamespaces, type NamespaceKind, type ProcessNamespaces } from './namespaces.js';
export {
  cgroup2MountPoint, cgroupIdOfPath, cgroupMemberships, parseCgroup2MountPoint, parseProcCgroup, primaryCgroupPath,
  unifiedCgroupPath, type CgroupMembership,
} from './cgroup.js';
export { listPids, namespacedPids, processAlive, parseProcStatus, processComm, processStatus, type ProcessStatus } from './process.js';
