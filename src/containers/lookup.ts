// SPDX-License-Identifier: Apache-2.0
/**
 * The maps behind the index's per-event lookups: one `Map` per key kernel events carry, kept
 * consistent by adding and deleting entries only here.
 */
import type { ContainerInfo, RuntimeName } from './types.js';

const NO_CONTAINERS: readonly ContainerInfo[] = Object.freeze([]);

/** Identity of a container across clients: containerd ids are unique per namespace only. */
export function containerKey(runtime: RuntimeName, runtimeNamespace: string | undefined, id: string): string {
  return `${runtime}/${runtimeNamespace ?? ''}/${id}`;
}

export function keyOfContainer(c: ContainerInfo): string {
  return containerKey(c.runtime, c.runtimeNamespace, c.id);
}

export class ContainerLookup {
  private readonly byKeyMap = new Map<string, ContainerInfo>();
  private readonly byMntnsMap = new Map<number, ContainerInfo>();
  private readonly byNetnsMap = new Map<number, readonly ContainerInfo[]>();
  private readonly byInitPidMap = new Map<number, ContainerInfo>();
  private readonly byCgroupIdMap = new Map<bigint, ContainerInfo>();
  private readonly byCgroupPathMap = new Map<string, ContainerInfo>();
  private readonly byIdMap = new Map<string, ContainerInfo>();

  /** `hostNetns()`: containers sharing the host's network namespace are not listed under it. */
  constructor(private readonly hostNetns: () => number | undefined) {}

  get size(): number {
    return this.byKeyMap.size;
  }

  values(): IterableIterator<ContainerInfo> {
    return this.byKeyMap.values();
  }

  byKey(key: string): ContainerInfo | undefined {
    return this.byKeyMap.get(key);
  }

  byMntns(inode: number): ContainerInfo | undefined {
    return this.byMntnsMap.get(inode);
  }

  byNetns(inode: number): readonly ContainerInfo[] {
    return this.byNetnsMap.get(inode) ?? NO_CONTAINERS;
  }

  byInitPid(pid: number): ContainerInfo | undefined {
    return this.byInitPidMap.get(pid);
  }

  byCgroupId(id: bigint): ContainerInfo | undefined {
    return this.byCgroupIdMap.get(id);
  }

  byCgroupPath(path: string): ContainerInfo | undefined {
    return this.byCgroupPathMap.get(path);
  }

  byId(id: string): ContainerInfo | undefined {
    return this.byIdMap.get(id);
  }

  add(c: ContainerInfo): void {
    this.byKeyMap.set(keyOfContainer(c), c);
    this.byMntnsMap.set(c.mntns, c);
    if (c.netns !== this.hostNetns()) this.byNetnsMap.set(c.netns, [...this.byNetns(c.netns), c]);
    this.byInitPidMap.set(c.pid, c);
    if (c.cgroupId !== undefined) this.byCgroupIdMap.set(c.cgroupId, c);
    if (c.cgroupPath !== '') this.byCgroupPathMap.set(c.cgroupPath, c);
    if (!this.byIdMap.has(c.id)) this.byIdMap.set(c.id, c);
  }

  /** Removes `c` if it is the entry held for its key; returns whether it was. */
  delete(c: ContainerInfo): boolean {
    const key = keyOfContainer(c);
    if (this.byKeyMap.get(key) !== c) return false;
    this.byKeyMap.delete(key);
    if (this.byMntnsMap.get(c.mntns) === c) this.byMntnsMap.delete(c.mntns);
    const rest = this.byNetns(c.netns).filter((x) => x !== c);
    if (rest.length > 0) this.byNetnsMap.set(c.netns, rest);
    else this.byNetnsMap.delete(c.netns);
    if (this.byInitPidMap.get(c.pid) === c) this.byInitPidMap.delete(c.pid);
    if (c.cgroupId !== undefined && this.byCgroupIdMap.get(c.cgroupId) === c) this.byCgroupIdMap.delete(c.cgroupId);
    if (this.byCgroupPathMap.get(c.cgroupPath) === c) this.byCgroupPathMap.delete(c.cgroupPath);
    if (this.byIdMap.get(c.id) === c) {
      this.byIdMap.delete(c.id);
      // Another runtime's container with the same id (rare: containerd namespaces) takes over.
      for (const other of this.byKeyMap.values()) {
        if (other.id === c.id) {
          this.byIdMap.set(c.id, other);
          break;
        }
      }
    }
    return true;
  }
}
