// SPDX-License-Identifier: Apache-2.0
/**
 * pid → mount namespace, remembered briefly so a burst of events from one process costs one
 * readlink. Bounded in size (oldest first out, as a Map keeps insertion order) and in age,
 * because pids are reused: after `maxAgeMs` the namespace is read again.
 */
import { PermissionError } from '../errors.js';
import { namespaceInode } from '../proc/namespaces.js';

export class PidMountNamespaceCache {
  private readonly entries = new Map<number, { readonly mntns: number; readonly at: number }>();

  constructor(
    private readonly maxEntries = 16384,
    private readonly maxAgeMs = 2000,
    private readonly procRoot?: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** The mount namespace of `pid`, or undefined when the process is gone (or refuses to be read). */
  get(pid: number): number | undefined {
    const t = this.now();
    const hit = this.entries.get(pid);
    if (hit !== undefined && t - hit.at < this.maxAgeMs) return hit.mntns;
    const mntns = this.read(pid);
    this.entries.delete(pid);
    if (mntns === undefined) return undefined;
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(pid, { mntns, at: t });
    return mntns;
  }

  private read(pid: number): number | undefined {
    try {
      return namespaceInode(pid, 'mnt', this.procRoot);
    } catch (e) {
      if (e instanceof PermissionError) return undefined;
      throw e;
    }
  }

  /** Forget a pid (its process exited), so a reuse of the number is read afresh. */
  forget(pid: number): void {
    this.entries.delete(pid);
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }
}
