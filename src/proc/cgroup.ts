// SPDX-License-Identifier: Apache-2.0
/**
 * Control-group membership of a process. Runtimes name a container's cgroup after its id, so
 * the path identifies the container even when its runtime cannot be asked; the cgroup v2 id
 * (the inode of the cgroup directory) is what `bpf_get_current_cgroup_id()` returns.
 */
import { statSync } from 'node:fs';
import { DEFAULT_PROC_ROOT, readProcText } from './read.js';

/** One line of /proc/PID/cgroup: `hierarchy-id:controller,list:/path`. */
export interface CgroupMembership {
  readonly hierarchyId: number;
  /** Empty for the cgroup v2 (unified) line `0::/path`; `name=systemd` style names are kept. */
  readonly controllers: readonly string[];
  readonly path: string;
}

export function parseProcCgroup(text: string): CgroupMembership[] {
  const out: CgroupMembership[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    // The path may itself contain ':' so split only at the first two.
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const hierarchyId = Number(line.slice(0, first));
    if (!Number.isInteger(hierarchyId)) continue;
    const list = line.slice(first + 1, second);
    out.push({ hierarchyId, controllers: list === '' ? [] : list.split(','), path: line.slice(second + 1) });
  }
  return out;
}

/**
 * The path that best names the process's cgroup: the unified (v2) one when it says more than
 * `/` (pure v2, or hybrid where runtimes also place the process there), else the v1
 * `name=systemd` hierarchy, else the first v1 controller hierarchy.
 */
export function primaryCgroupPath(memberships: readonly CgroupMembership[]): string | undefined {
  const unified = memberships.find((m) => m.hierarchyId === 0 && m.controllers.length === 0);
  if (unified !== undefined && unified.path !== '/') return unified.path;
  const systemd = memberships.find((m) => m.controllers.includes('name=systemd'));
  if (systemd !== undefined && systemd.path !== '/') return systemd.path;
  const v1 = memberships.find((m) => m.hierarchyId !== 0 && m.path !== '/');
  return v1?.path ?? unified?.path ?? memberships[0]?.path;
}

/** The unified (v2) path alone, which is what the BPF cgroup id refers to. */
export function unifiedCgroupPath(memberships: readonly CgroupMembership[]): string | undefined {
  return memberships.find((m) => m.hierarchyId === 0 && m.controllers.length === 0)?.path;
}

export function cgroupMemberships(pid: number, procRoot = DEFAULT_PROC_ROOT): CgroupMembership[] | undefined {
  const text = readProcText(`${procRoot}/${pid}/cgroup`);
  return text === undefined ? undefined : parseProcCgroup(text);
}

/** Where cgroup2 is mounted (`/sys/fs/cgroup` on pure v2, `/sys/fs/cgroup/unified` on hybrid). */
export function parseCgroup2MountPoint(mountinfo: string): string | undefined {
  for (const line of mountinfo.split('\n')) {
    // "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw"
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const fsType = line.slice(sep + 3).split(' ')[0];
    if (fsType !== 'cgroup2') continue;
    const fields = line.slice(0, sep).split(' ');
    if (fields[3] !== '/') continue; // a bind mount of a sub-tree: paths would not line up
    return fields[4]?.replace(/\\040/g, ' ');
  }
  return undefined;
}

const mountPointCache = new Map<string, string | null>();

export function cgroup2MountPoint(procRoot = DEFAULT_PROC_ROOT): string | undefined {
  let cached = mountPointCache.get(procRoot);
  if (cached === undefined) {
    const mountinfo = readProcText(`${procRoot}/self/mountinfo`);
    cached = (mountinfo === undefined ? undefined : parseCgroup2MountPoint(mountinfo)) ?? null;
    mountPointCache.set(procRoot, cached);
  }
  return cached ?? undefined;
}

/**
 * The cgroup v2 id of a unified path: the inode number of its directory. Undefined when there
 * is no cgroup2 mount or the cgroup is gone (containers remove theirs on exit).
 */
export function cgroupIdOfPath(unifiedPath: string, procRoot = DEFAULT_PROC_ROOT): bigint | undefined {
  const mount = cgroup2MountPoint(procRoot);
  if (mount === undefined) return undefined;
  try {
    return statSync(`${mount}${unifiedPath === '/' ? '' : unifiedPath}`, { bigint: true }).ino;
  } catch {
    return undefined;
  }
}
