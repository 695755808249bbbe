// SPDX-License-Identifier: Apache-2.0
/**
 * Keeps a network gadget's packet sockets in step with what is in scope: the host's network
 * namespace when the host is in scope, and each in-scope container's, added and removed as
 * containers come and go. Containers sharing a namespace (pods, --network host) share one
 * socket, released when the last of them stops.
 */
import { existsSync } from 'node:fs';
import { matches, includesHost, hasContainerFilter, type ContainerSelector } from '../containers/selector.js';
import { NetnsDiscovery } from '../containers/netns-discovery.js';
import type { ContainerIndex, ContainerIndexEvent } from '../containers/index.js';
import type { ContainerInfo } from '../containers/types.js';
import { errorMessage } from '../errors.js';
import { hostNetnsPath } from '../proc/namespaces.js';
import type { NetnsWatcher } from './definition.js';

export type { NetnsWatcher } from './definition.js';


export class NetnsScope {
  /** netns inode → ids of in-scope containers (and "host"/"pid:N") using it */
  private readonly users = new Map<number, Set<string>>();
  private unsubscribe: (() => void) | undefined;
  /** Unfiltered: every namespace on the host, containers' or not (ip netns, unshare -n, CNI). */
  private discovery: NetnsDiscovery | undefined;

  constructor(
    private readonly gadget: NetnsWatcher,
    private readonly selector: ContainerSelector,
    private readonly index: ContainerIndex | undefined,
    private readonly warn: (msg: string) => void,
  ) {}

  /** Watches what is in scope now and follows the index from here on. */
  start(): void {
    if (includesHost(this.selector) && !this.selector.pids?.length) {
      this.add('host', hostNetnsPath());
    }
    for (const pid of this.selector.pids ?? []) this.add(`pid:${pid}`, `/proc/${pid}/ns/net`);
    if (this.watchesEveryNamespace()) {
      this.discovery = new NetnsDiscovery({
        onAdded: (ns) => this.add(`netns:${ns.inode}`, ns.path, ns.inode),
        onRemoved: (inode) => this.remove(`netns:${inode}`, inode),
        // scoped to containers without the start hook, the point is a new pod's first packets:
        // its namespace (held by its pause process, its CNI pin not visible from an agent's pod)
        // must be found before its first container runs, so /proc is read every 100 ms, not 1 s
        ...(hasContainerFilter(this.selector) ? { procIntervalMs: 100 } : {}),
      });
      this.discovery.start();
    }
    if (this.index === undefined) return;
    for (const c of this.index.all()) this.onContainer({ type: 'added', container: c });
    this.unsubscribe = this.index.subscribe((e) => this.onContainer(e));
  }

  /**
   * Every namespace on the host is watched when the scope is the whole host (unfiltered), and
   * also when the scope names containers but the index learns containers only after they start
   * (no start hook: an agent in a pod, a kernel without fanotify permission events, the hook
   * turned off). Then a container's first packets come before the index knows it is in scope;
   * they are caught in its namespace all the same, wait in the session's late binding until the
   * index knows the container, and are kept or dropped by the scope there (counted either way).
   */
  watchesEveryNamespace(): boolean {
    if (this.selector.host === true || (this.selector.pids?.length ?? 0) > 0) return false;
    if (!hasContainerFilter(this.selector)) return true;
    return this.index !== undefined && this.index.hookStatus().active === false;
  }

  private inScope(c: ContainerInfo): boolean {
    // -p narrows to processes: their namespaces are watched already
    return !this.selector.pids?.length && matches(this.selector, c);
  }

  private onContainer(e: ContainerIndexEvent): void {
    const c = e.container;
    if (e.type === 'removed' || !this.inScope(c)) {
      this.remove(c.id, c.netns);
      return;
    }
    if (e.type === 'updated' && e.previous.netns !== c.netns) this.remove(c.id, e.previous.netns);
    this.add(c.id, `/proc/${c.pid}/ns/net`, c.netns);
  }

  private add(user: string, nsPath: string | undefined, knownInode?: number): void {
    if (knownInode !== undefined && this.users.get(knownInode)?.has(user)) return;
    try {
      const inode = this.gadget.watchNetns(nsPath);
      let set = this.users.get(inode);
      if (set === undefined) this.users.set(inode, (set = new Set()));
      set.add(user);
    } catch (e) {
      // The container may have exited between the event and now: not an error for the trace.
      if (existsSync(nsPath ?? '/proc/self/ns/net')) this.warn(`cannot watch the network of ${user}: ${errorMessage(e)}`);
    }
  }

  private remove(user: string, inode: number): void {
    const set = this.users.get(inode);
    if (set === undefined || !set.delete(user)) return;
    if (set.size === 0) {
      this.users.delete(inode);
      this.gadget.unwatchNetns(inode);
    }
  }

  /** Network namespaces watched now. */
  watched(): number[] {
    return [...this.users.keys()];
  }

  stop(): void {
    this.discovery?.stop();
    this.discovery = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }
}
