// SPDX-License-Identifier: Apache-2.0
/**
 * The index's fallback when runtime events are missed or a runtime cannot be asked: a cheap pass
 * over /proc (one readdir, then one readlink per *new* process) that finds
 * - entries whose first process is gone (or whose pid now belongs to something else), and
 * - processes in an unknown, non-host mount namespace whose cgroup path names a container.
 * Processes in a private mount namespace without a container cgroup (yet: runtimes join the
 * cgroup a moment after creating the namespaces) are looked at again for a few seconds, then
 * their namespace is remembered as not a container.
 */
import { PermissionError } from '../errors.js';
import { cgroupMemberships, primaryCgroupPath } from '../proc/cgroup.js';
import { namespaceInode } from '../proc/namespaces.js';
import { listPids } from '../proc/process.js';
import { containerFromCgroupPath, type CgroupContainerRef } from './cgroup-path.js';
import type { ContainerInfo } from './types.js';

const SUSPECT_WINDOW_MS = 3000;
/** Mount namespaces found not to be containers are remembered up to this many. */
const MAX_IGNORED_MNTNS = 4096;
/** An event's unknown pid is looked at once per this long at most. */
const LOOK_AGAIN_MS = 100;
const MAX_LOOKED_AT = 4096;

/** Reads that treat "not allowed to look" like "gone": pid 1 or a supervisor may refuse even root. */
function permitted<T>(read: () => T | undefined): T | undefined {
  try {
    return read();
  } catch (e) {
    if (e instanceof PermissionError) return undefined;
    throw e;
  }
}

/** What the scanner needs from the index. */
export interface ScanTarget {
  entries(): Iterable<ContainerInfo>;
  isIndexedMntns(mntns: number): boolean;
  hostMntns(): number | undefined;
  readonly containerdNamespaces: ReadonlySet<string>;
  /** An entry's first process is gone. */
  gone(c: ContainerInfo): void;
  /** A process whose cgroup names a container the index does not hold. */
  found(ref: CgroupContainerRef, pid: number, mntns: number): void;
}

export class ProcScanner {
  /** pids looked at by the last pass, so the next one only examines new processes. */
  private seenPids = new Set<number>();
  /** Undecided processes: pid → when first seen. */
  private readonly suspects = new Map<number, number>();
  /** pid → when an event made us look at it last (suspect()). */
  private readonly lookedAt = new Map<number, number>();
  /**
   * Mount namespaces that are not containers → a pid that was in it. Namespace inode numbers are
   * recycled once a namespace is freed, so an entry only holds while that pid is still there.
   */
  private readonly ignored = new Map<number, number>();

  constructor(
    private readonly target: ScanTarget,
    private readonly procRoot: string | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * A pid seen in an event whose mount namespace is unknown: looked at now, while it most likely
   * still runs (a short-lived container's process may be gone by the next pass, and with it what
   * /proc says about its cgroup), then again on the next passes for a while. At most one look per
   * pid every LOOK_AGAIN_MS however many of its events come.
   */
  suspect(pid: number, mntns: number): void {
    if (mntns === this.target.hostMntns()) return;
    const t = this.now();
    const last = this.lookedAt.get(pid);
    if (last !== undefined && t - last < LOOK_AGAIN_MS) return;
    if (this.lookedAt.size >= MAX_LOOKED_AT) this.lookedAt.clear();
    this.lookedAt.set(pid, t);
    // isIgnored, not ignored.has: inodes are recycled within milliseconds (a pod sandbox's, found
    // not to be a workload, is often the next pod's app container's)
    if (this.isIgnored(mntns, pid)) return;
    this.examine(pid, this.suspects.get(pid) ?? t);
  }

  /** Remember a mount namespace (with a process in it) as not a container: a pod sandbox, a service's private namespace. */
  ignore(mntns: number, pid: number): void {
    if (this.ignored.size >= MAX_IGNORED_MNTNS) this.ignored.clear();
    this.ignored.set(mntns, pid);
  }

  /** Whether `mntns` is known not to be a container, checking that the namespace has not been recycled. */
  private isIgnored(mntns: number, pid: number): boolean {
    const holder = this.ignored.get(mntns);
    if (holder === undefined) return false;
    if (holder === pid || permitted(() => namespaceInode(holder, 'mnt', this.procRoot)) === mntns) return true;
    this.ignored.delete(mntns);
    return false;
  }

  forgetIgnored(mntns: number): void {
    this.ignored.delete(mntns);
  }

  scan(): void {
    for (const c of [...this.target.entries()]) {
      let mntns: number | undefined;
      try {
        mntns = namespaceInode(c.pid, 'mnt', this.procRoot);
      } catch (e) {
        if (e instanceof PermissionError) continue; // a refusal is no proof of exit
        throw e;
      }
      if (mntns !== c.mntns) this.target.gone(c);
    }
    const pids = listPids(this.procRoot);
    const t = this.now();
    const current = new Set(pids);
    for (const pid of pids) {
      if (!this.seenPids.has(pid)) this.examine(pid, t);
    }
    for (const pid of this.lookedAt.keys()) if (!current.has(pid)) this.lookedAt.delete(pid);
    for (const [pid, since] of [...this.suspects]) {
      if (!current.has(pid)) {
        this.suspects.delete(pid);
      } else if (t - since > SUSPECT_WINDOW_MS) {
        this.suspects.delete(pid);
        const mntns = permitted(() => namespaceInode(pid, 'mnt', this.procRoot));
        if (mntns !== undefined && mntns !== this.target.hostMntns() && !this.target.isIndexedMntns(mntns)) this.ignore(mntns, pid);
      } else {
        this.examine(pid, since);
      }
    }
    this.seenPids = current;
  }

  private examine(pid: number, since: number): void {
    const mntns = permitted(() => namespaceInode(pid, 'mnt', this.procRoot));
    if (mntns === undefined || mntns === this.target.hostMntns() || this.target.isIndexedMntns(mntns) || this.isIgnored(mntns, pid)) {
      this.suspects.delete(pid);
      return;
    }
    const cgroups = permitted(() => cgroupMemberships(pid, this.procRoot));
    const path = cgroups === undefined ? undefined : primaryCgroupPath(cgroups);
    const ref = path === undefined ? undefined : containerFromCgroupPath(path, { containerdNamespaces: this.target.containerdNamespaces });
    if (ref === undefined) {
      if (!this.suspects.has(pid)) this.suspects.set(pid, since);
      return;
    }
    this.suspects.delete(pid);
    this.target.found(ref, pid, mntns);
  }
}
