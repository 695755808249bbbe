// SPDX-License-Identifier: Apache-2.0
/**
 * The container index every gadget enriches with: running containers of every runtime, looked
 * up in O(1) by what kernel events carry — mount namespace, network namespace, cgroup id — or
 * by pid.
 *
 * How it stays current:
 * - each runtime's API is listed at start() and followed through its event stream (see
 *   session.ts); a container that starts is in the index as soon as its runtime says so;
 * - a cheap rescan every second (`rescanIntervalMs`) drops entries whose first process is gone
 *   (a missed stop) and looks at processes that appeared since the last rescan: one whose mount
 *   namespace is unknown and whose cgroup path names a container is resolved through its
 *   runtime, or — when that runtime cannot be asked — indexed from the cgroup path alone.
 */
import { setMaxListeners } from 'node:events';
import { errorMessage, TlscopeError } from '../errors.js';
import { cgroupIdOfPath, cgroupMemberships, primaryCgroupPath, unifiedCgroupPath, type CgroupMembership } from '../proc/cgroup.js';
import { hostNamespaces, namespaceInode, processNamespaces, type ProcessNamespaces } from '../proc/namespaces.js';
import { DEFAULT_CONTAINERD_NAMESPACES, type CgroupContainerRef } from './cgroup-path.js';
import { createRuntimeClients } from './clients.js';
import { ClosedError } from './errors.js';
import { k8sIdentityFromLabels } from './k8s.js';
import { containerKey, ContainerLookup, keyOfContainer } from './lookup.js';
import { PidMountNamespaceCache } from './pid-cache.js';
import { ProcScanner } from './proc-scan.js';
import { AsyncQueue } from './queue.js';
import { ContainerHook, DEFAULT_HOOK_DEADLINE_MS, type HookStats } from './hook.js';
import { DEFAULT_SESSION_TIMING, RuntimeSession, type RuntimeWarning, type SessionSink, type SessionTiming } from './session.js';
import type { ContainerInfo, RuntimeClient, RuntimeContainer, RuntimeEvent, RuntimeName } from './types.js';

/** Something the index could not do; each is reported once, never per event. */
export type ContainerIndexWarning =
  /** A runtime's socket exists but its API fails (once per breakage; absent runtimes are silent). */
  | ({ readonly kind: 'runtime' } & RuntimeWarning)
  /** /proc could not be read (not root?): the rescan fallback is off until restart. */
  | { readonly kind: 'proc'; readonly error: TlscopeError }
  /** The container start hook could not start although the kernel has fanotify permission events. */
  | { readonly kind: 'hook'; readonly error: TlscopeError };
export type ContainerIndexEvent =
  | { readonly type: 'added'; readonly container: ContainerInfo }
  | { readonly type: 'removed'; readonly container: ContainerInfo }
  /** Same container, better or newer facts (e.g. known from its cgroup first, then from its runtime). */
  | { readonly type: 'updated'; readonly container: ContainerInfo; readonly previous: ContainerInfo };

/**
 * Called on every change. A listener may return a Promise (attach probes, open packet
 * sockets, fill BPF maps): for a container learnt by the start hook, the container's start
 * waits until every listener's Promise has settled, up to the hook's deadline.
 */
// `unknown`, not `void | Promise<void>`: a listener written as `(e) => list.push(e)` stays valid;
// only a returned thenable is waited for.
export type ContainerIndexListener = (event: ContainerIndexEvent) => unknown;

/** An event this close (ms) to a namespace's change of hands counts for the newer holder. */
const RECYCLE_SLACK_MS = 5;
/** How long a removed container's namespace is remembered for late attribution (ms). */
const RETIRED_KEEP_MS = 30_000;

/** One process of a container as /proc showed it, for a container described after it exited. */
interface Sighting {
  readonly pid: number;
  readonly ns: ProcessNamespaces;
  readonly cgroups: CgroupMembership[];
}

/** The container start hook's state: whether containers are known before they start. */
export interface HookStatus {
  /** The hook is watching the runtimes' starts now. */
  readonly active: boolean;
  /** Why not, when it is not. */
  readonly reason?: string;
  /** The OCI runtime binaries watched. */
  readonly runtimes: readonly string[];
  readonly deadlineMs: number;
  readonly stats: HookStats;
}

export interface ContainerHookSettings {
  /** How long a container start waits for the index's subscribers at most (default 100 ms). */
  readonly deadlineMs?: number;
  readonly runtimePaths?: readonly string[];
  /** Tests only (see hook-worker.ts): turn the race-free init-exec guard off, delay the fallback. */
  readonly guardInitExec?: boolean;
  readonly settleDelayMs?: number;
}

export interface ContainerIndexOptions {
  /** Runtime clients to follow (default: {@link createRuntimeClients}()). The index closes them. */
  readonly clients?: readonly RuntimeClient[];
  /** Runtimes that exist but fail, and an unreadable /proc, are reported here once. */
  readonly onWarning?: (warning: ContainerIndexWarning) => void;
  /** Period of the /proc rescan fallback; 0 disables it. Default 1000. */
  readonly rescanIntervalMs?: number;
  readonly procRoot?: string;
  /** Bound of the pid → mount-namespace cache used by byPid(). Default 16384. */
  readonly pidCacheSize?: number;
  readonly sessionTiming?: SessionTiming;
  /**
   * Learn containers from their runtime's create, before they start (hook.ts). Default: on
   * when running as root against the real /proc and the default runtime clients.
   */
  readonly hook?: boolean | ContainerHookSettings;
}

export class ContainerIndex {
  private readonly lookup = new ContainerLookup(() => this.hostNs?.net);
  /** Which session reported each entry (undefined: found by cgroup), for re-list clean-up. */
  private readonly owner = new Map<string, RuntimeSession | undefined>();
  private readonly listeners = new Set<ContainerIndexListener>();
  private readonly sessions: RuntimeSession[];
  private readonly clients: readonly RuntimeClient[];
  private readonly pidCache: PidMountNamespaceCache;
  private readonly controller = new AbortController();
  private readonly procRoot: string | undefined;
  private readonly rescanIntervalMs: number;
  private readonly onWarning: (w: ContainerIndexWarning) => void;
  private readonly containerdNamespaces = new Set(DEFAULT_CONTAINERD_NAMESPACES);
  private readonly scanner: ProcScanner;
  /** Container references being resolved through their runtime, so each is asked once. */
  private readonly resolving = new Set<string>();
  private rescanTimer: NodeJS.Timeout | undefined;
  private started: Promise<void> | undefined;
  private closed = false;
  private hostNs: ProcessNamespaces | undefined;
  private readonly hookSettings: ContainerHookSettings | undefined;
  private hook: ContainerHook | undefined;
  /** When each entry was learnt (ms), and what held each namespace before (see byMntns). */
  private readonly since = new Map<ContainerInfo, number>();
  private readonly retired = new Map<number, { container: ContainerInfo; since: number; until: number }[]>();
  private hookReason: string | undefined;
  /** Promises returned by listeners during the emit in progress (for the start hook to await). */
  private collecting: Promise<unknown>[] | undefined;

  constructor(options: ContainerIndexOptions = {}) {
    this.clients = options.clients ?? createRuntimeClients();
    this.procRoot = options.procRoot;
    this.rescanIntervalMs = options.rescanIntervalMs ?? 1000;
    this.onWarning = options.onWarning ?? (() => {});
    const hookDefault = options.clients === undefined && options.procRoot === undefined && process.getuid?.() === 0;
    const hook = options.hook ?? hookDefault;
    this.hookSettings = hook === false ? undefined : hook === true ? {} : hook;
    if (this.hookSettings === undefined) this.hookReason = 'off';
    // Every request to a runtime listens on this signal until it completes: when many containers
    // start at once, far more than the default 10 are in flight, and that is no leak.
    setMaxListeners(0, this.controller.signal);
    this.pidCache = new PidMountNamespaceCache(options.pidCacheSize ?? 16384, 2000, options.procRoot);
    const sink: SessionSink = {
      sync: (session, containers) => this.syncSession(session, containers),
      apply: (session, event) => this.applyEvent(session, event),
      warn: (w) => this.onWarning({ kind: 'runtime', ...w }),
    };
    this.scanner = new ProcScanner({
      entries: () => this.lookup.values(),
      isIndexedMntns: (mntns) => this.lookup.byMntns(mntns) !== undefined,
      hostMntns: () => this.hostNs?.mnt,
      containerdNamespaces: this.containerdNamespaces,
      gone: (c) => this.remove(c),
      found: (ref, pid, mntns) => this.resolve(ref, pid, mntns),
    }, options.procRoot);
    const timing = options.sessionTiming ?? DEFAULT_SESSION_TIMING;
    this.sessions = this.clients.map((c) => new RuntimeSession(c, sink, this.controller.signal, timing));
  }

  /** Namespaces of the host (pid 1): processes there are in no container. */
  get hostNamespaces(): ProcessNamespaces | undefined {
    return this.hostNs;
  }

  /**
   * Lists every runtime, then keeps following them. Resolves when each runtime has been listed
   * (or found absent or broken, which `onWarning` reports) and the first rescan is done.
   */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError('container index'));
    this.started ??= (async () => {
      this.hostNs = hostNamespaces(this.procRoot);
      // The hook first: a container created while the runtimes are being listed is held, not missed.
      await this.startHook();
      await Promise.all(this.sessions.map((s) => s.start()));
      if (this.closed) return;
      if (this.rescanIntervalMs > 0) {
        this.rescan();
        this.rescanTimer = setInterval(() => this.rescan(), this.rescanIntervalMs);
        this.rescanTimer.unref();
      }
    })();
    return this.started;
  }

  /** Stops following, closes every client; no socket or timer stays open. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.rescanTimer);
    this.controller.abort();
    await this.hook?.close();
    await Promise.all(this.sessions.map((s) => s.stopped()));
    for (const c of this.clients) c.close();
    this.listeners.clear();
  }

  // ---- lookups (O(1); used per event) ----

  get size(): number {
    return this.lookup.size;
  }

  all(): ContainerInfo[] {
    return [...this.lookup.values()];
  }

  /**
   * The container in a mount namespace. With `atMs` (the event's wall-clock time): the one that
   * held the namespace then. Namespace inodes are recycled: a container that exits frees its
   * inode and the next one may get it within milliseconds, and the start hook indexes the new
   * one before its first instruction, so an event of the old one that is attributed a little late
   * must not take the new one's name (seen: 3 of 30 short-lived containerd containers).
   */
  byMntns(inode: number, atMs?: number): ContainerInfo | undefined {
    const current = this.lookup.byMntns(inode);
    if (atMs === undefined) return current;
    const since = current === undefined ? undefined : this.since.get(current);
    if (current !== undefined && (since === undefined || atMs >= since - RECYCLE_SLACK_MS)) return current;
    const past = this.retired.get(inode);
    if (past !== undefined) {
      for (let i = past.length - 1; i >= 0; i--) {
        const r = past[i]!;
        if (atMs >= r.since - RECYCLE_SLACK_MS && atMs <= r.until + RECYCLE_SLACK_MS) return r.container;
      }
    }
    return current;
  }

  /** Remembers a removed container's namespace for a while, for events attributed late. */
  private retire(c: ContainerInfo): void {
    const now = Date.now();
    const list = this.retired.get(c.mntns) ?? [];
    list.push({ container: c, since: this.since.get(c) ?? 0, until: now });
    while (list.length > 4) list.shift();
    this.retired.set(c.mntns, list);
    this.since.delete(c);
    for (const [ns, l] of this.retired) {
      const kept = l.filter((r) => now - r.until < RETIRED_KEEP_MS);
      if (kept.length === 0) this.retired.delete(ns);
      else if (kept.length !== l.length) this.retired.set(ns, kept);
    }
  }

  /**
   * Containers in a network namespace: several for a pod (its containers share one). Containers
   * run with the host's network are not listed under the host's namespace: traffic there is
   * the host's and cannot be attributed by namespace.
   */
  byNetns(inode: number): readonly ContainerInfo[] {
    return this.lookup.byNetns(inode);
  }

  byCgroupId(id: bigint): ContainerInfo | undefined {
    return this.lookup.byCgroupId(id);
  }

  byCgroupPath(path: string): ContainerInfo | undefined {
    return this.lookup.byCgroupPath(path);
  }

  /** By full container id (for containerd: unique within its namespace only; the first wins). */
  byId(id: string): ContainerInfo | undefined {
    return this.lookup.byId(id);
  }

  /**
   * The container of any process (not only a container's first one): its mount namespace is
   * read once from /proc and cached briefly. Undefined for host processes and vanished pids.
   */
  byPid(pid: number): ContainerInfo | undefined {
    const init = this.lookup.byInitPid(pid);
    if (init !== undefined) return init;
    const mntns = this.pidCache.get(pid);
    if (mntns === undefined) return undefined;
    const found = this.lookup.byMntns(mntns);
    // Possibly a container younger than its runtime event: let the next rescan look at it.
    if (found === undefined) this.scanner.suspect(pid, mntns);
    return found;
  }

  /**
   * An event of `pid` carried the mount namespace inode of `c` but another network namespace:
   * `c` may have exited and its inode been taken by a new container the index does not know
   * yet. When c's first process is no longer in that namespace, c is forgotten now (not at the
   * next rescan) and `pid` is looked at at once, so the new container can be named while the
   * event waits. A `c` still running is kept.
   */
  recheck(c: ContainerInfo, pid: number): void {
    if (this.lookup.byMntns(c.mntns) !== c || this.stillRunning(c)) return;
    this.remove(c);
    const mntns = this.pidCache.get(pid);
    if (mntns !== undefined) this.scanner.suspect(pid, mntns);
  }

  /** Tell the index a process exited, so its pid's cached namespace is not reused. */
  forgetPid(pid: number): void {
    this.pidCache.forget(pid);
  }

  // ---- notifications ----

  /** Calls `listener` on every change from now on; returns the function that unsubscribes. */
  subscribe(listener: ContainerIndexListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Changes from now on as an async iterator; ends when `signal` aborts or the index closes. */
  events(signal?: AbortSignal): AsyncIterable<ContainerIndexEvent> {
    let unsubscribe: () => void = () => {};
    const onAbort = (): void => queue.end();
    const queue = new AsyncQueue<ContainerIndexEvent>(() => {
      unsubscribe();
      signal?.removeEventListener('abort', onAbort);
      this.controller.signal.removeEventListener('abort', onAbort);
    });
    unsubscribe = this.subscribe((e) => queue.push(e));
    signal?.addEventListener('abort', onAbort, { once: true });
    this.controller.signal.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted || this.closed) queue.end();
    return queue;
  }

  /**
   * The first container (present now or added later) for which `predicate` holds. Rejects with
   * the signal's reason when `signal` aborts — pass `AbortSignal.timeout(ms)` to bound the wait.
   */
  waitFor(predicate: (c: ContainerInfo) => boolean, signal?: AbortSignal): Promise<ContainerInfo> {
    const present = this.all().find(predicate);
    if (present !== undefined) return Promise.resolve(present);
    return new Promise((resolve, reject) => {
      const finish = (): void => {
        unsubscribe();
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        finish();
        reject(signal?.reason);
      };
      const unsubscribe = this.subscribe((e) => {
        if (e.type !== 'removed' && predicate(e.container)) {
          finish();
          resolve(e.container);
        }
      });
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private emit(event: ContainerIndexEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        const r = listener(event);
        if (typeof r === 'object' && r !== null && typeof (r as PromiseLike<unknown>).then === 'function') {
          const p = Promise.resolve(r).catch((e: unknown) => {
            queueMicrotask(() => {
              throw e;
            });
          });
          this.collecting?.push(p);
        }
      } catch (e) {
        // A listener's bug must not stop the others or the index: surface it as uncaught.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  // ---- building entries ----

  /** Adds the kernel's view (namespaces, cgroup) to what a runtime said; undefined if the process is gone. */
  /**
   * The index entry for what a runtime says, with the namespaces and cgroups of its process. A
   * process that has exited meanwhile (a short-lived container the index learnt after it ran)
   * is described by `seen`, what /proc said of one of its processes while it ran, if given.
   */
  private describe(rc: RuntimeContainer, seen?: Sighting): ContainerInfo | undefined {
    // the runtime's pid while it is the container's (an exited task's pid may belong to another
    // process by now: then only what was seen counts)
    const live = rc.pid > 0 ? this.sighting(rc.pid, seen?.ns.mnt) : undefined;
    const facts = live ?? seen;
    if (facts === undefined) return undefined;
    const { pid, ns, cgroups } = facts;
    const unified = unifiedCgroupPath(cgroups);
    return {
      runtime: rc.runtime,
      id: rc.id,
      name: rc.name,
      image: rc.image,
      labels: rc.labels,
      pid,
      mntns: ns.mnt,
      netns: ns.net,
      cgroupPath: primaryCgroupPath(cgroups) ?? '',
      cgroupId: unified === undefined ? undefined : cgroupIdOfPath(unified, this.procRoot),
      k8s: k8sIdentityFromLabels(rc.labels, rc.podLabels),
      runtimeNamespace: rc.runtimeNamespace,
      source: 'runtime',
      ...(rc.entry === undefined ? {} : { entry: rc.entry }),
    };
  }

  private describeFromCgroup(ref: CgroupContainerRef & { runtime: RuntimeName }, pid: number): ContainerInfo | undefined {
    const info = this.describe({ runtime: ref.runtime, id: ref.id, name: ref.id.slice(0, 12), image: '', labels: {}, pid, ...(ref.runtimeNamespace === undefined ? {} : { runtimeNamespace: ref.runtimeNamespace }) });
    if (info === undefined) return undefined;
    const k8s = ref.podUid === undefined ? undefined : { namespace: '', podName: '', podUid: ref.podUid, containerName: '', podLabels: {} };
    return { ...info, k8s, source: 'cgroup' };
  }

  /**
   * Adds or refreshes an entry, keeping exactly one entry per container. A container is its
   * runtime + full id (+ containerd namespace), and it is its mount namespace: an entry already
   * held for either is the same container and is replaced (`updated`), never joined by a second
   * one (`added`). What a runtime said is never traded for what a cgroup path says while the
   * runtime's entry is alive: a fallback that lost a race to the runtime changes nothing.
   */
  private upsert(c: ContainerInfo, owner: RuntimeSession | undefined): void {
    if (this.closed) return;
    const key = keyOfContainer(c);
    let previous = this.lookup.byKey(key);
    const sameMntns = this.lookup.byMntns(c.mntns);
    if (sameMntns !== undefined && sameMntns !== previous) {
      // Known from its cgroup under another key: the path may not say what only the runtime knows
      // (a `cri-containerd-<id>.scope` path does not name the containerd namespace). Same runtime
      // and id prove it is this container even if the process that was seen has exited since.
      const foundByCgroup = sameMntns.source !== 'runtime' && c.source === 'runtime'
        && ((sameMntns.runtime === c.runtime && sameMntns.id === c.id) || this.stillRunning(sameMntns));
      if (foundByCgroup) {
        if (previous === undefined) previous = sameMntns;
        else this.remove(sameMntns);
      } else if (!this.stillRunning(sameMntns)) {
        this.remove(sameMntns); // gone; its namespace inode was recycled for this one
      } else if (previous === undefined) {
        // Reported already: by another client (containerd and its CRI plugin both configured),
        // or by its runtime before this cgroup-derived sighting.
        return;
      }
    }
    if (previous === undefined) {
      this.lookup.add(c);
      this.since.set(c, Date.now());
      this.noteNamespace(c);
      this.owner.set(key, owner);
      this.scanner.forgetIgnored(c.mntns);
      this.emit({ type: 'added', container: c });
      return;
    }
    if (previous.source !== 'cgroup' && c.source === 'cgroup' && this.stillRunning(previous)) return;
    // The hook seen after the runtime's answer (a re-created container): the answer says more.
    if (previous.source === 'runtime' && c.source === 'hook' && previous.pid === c.pid) return;
    if (previous === this.lookup.byKey(key) && previous.pid === c.pid && previous.source === c.source && previous.name === c.name) {
      this.owner.set(key, owner);
      return;
    }
    this.lookup.delete(previous);
    this.owner.delete(keyOfContainer(previous));
    this.lookup.add(c);
    this.since.set(c, previous.mntns === c.mntns ? (this.since.get(previous) ?? Date.now()) : Date.now());
    this.since.delete(previous);
    this.noteNamespace(c);
    this.owner.set(key, owner);
    this.scanner.forgetIgnored(c.mntns);
    this.emit({ type: 'updated', container: c, previous });
  }

  private remove(c: ContainerInfo): void {
    if (!this.lookup.delete(c)) return;
    this.retire(c);
    this.owner.delete(keyOfContainer(c));
    this.emit({ type: 'removed', container: c });
  }

  /** Whether an entry's first process is still in the entry's mount namespace. */
  private stillRunning(c: ContainerInfo): boolean {
    try {
      return namespaceInode(c.pid, 'mnt', this.procRoot) === c.mntns;
    } catch {
      return true; // not allowed to look: no proof of exit
    }
  }

  /** containerd namespaces seen so far make `/<namespace>/<id>` cgroup paths recognisable. */
  private noteNamespace(c: ContainerInfo): void {
    if (c.runtime === 'containerd' && c.runtimeNamespace !== undefined) this.containerdNamespaces.add(c.runtimeNamespace);
  }

  // ---- runtime sessions ----

  private syncSession(session: RuntimeSession, containers: readonly RuntimeContainer[]): void {
    const listed = new Set<string>();
    for (const rc of containers) {
      const info = this.describe(rc);
      if (info === undefined) continue;
      listed.add(keyOfContainer(info));
      this.upsert(info, session);
    }
    for (const c of [...this.lookup.values()]) {
      const key = keyOfContainer(c);
      if (this.owner.get(key) === session && !listed.has(key)) this.remove(c);
    }
  }

  private async applyEvent(session: RuntimeSession, event: RuntimeEvent): Promise<void> {
    const key = containerKey(session.client.name, event.runtimeNamespace, event.id);
    if (event.type === 'stop') {
      const c = this.lookup.byKey(key);
      if (c !== undefined) this.remove(c);
      return;
    }
    // What /proc says of the started process now, before the runtime is asked: a short-lived
    // container may have exited by the time the answer comes, and its events still need a name.
    const seen = event.pid === undefined ? undefined : this.sighting(event.pid);
    const rc = await session.client.inspect(event.id, event.runtimeNamespace, this.controller.signal, { exited: seen !== undefined });
    if (rc === undefined) return; // stopped again already, or not a workload (a pod sandbox)
    const info = this.describe(rc, seen);
    if (info !== undefined) this.upsert(info, session);
  }

  /** A process's namespaces and cgroups now, or undefined when it is gone. */
  private sighting(pid: number, mntns?: number): Sighting | undefined {
    const ns = processNamespaces(pid, this.procRoot);
    const cgroups = cgroupMemberships(pid, this.procRoot);
    if (ns === undefined || cgroups === undefined || (mntns !== undefined && ns.mnt !== mntns)) return undefined;
    return { pid, ns, cgroups };
  }

  // ---- the container start hook ----

  /** Whether containers are learnt before they start, and what the hook has held so far. */
  hookStatus(): HookStatus {
    const stats = this.hook?.stats() ?? { held: 0, released: 0, expired: 0, guarded: 0, late: 0, heldMs: [] };
    return {
      active: this.hook !== undefined,
      ...(this.hookReason === undefined ? {} : { reason: this.hookReason }),
      runtimes: this.hook?.runtimes ?? [],
      deadlineMs: this.hookSettings?.deadlineMs ?? DEFAULT_HOOK_DEADLINE_MS,
      stats,
    };
  }

  private async startHook(): Promise<void> {
    if (this.hookSettings === undefined) return;
    const hook = new ContainerHook({
      onStart: (rc) => this.learnStarting(rc),
      ...(this.hookSettings.deadlineMs === undefined ? {} : { deadlineMs: this.hookSettings.deadlineMs }),
      ...(this.hookSettings.runtimePaths === undefined ? {} : { runtimePaths: this.hookSettings.runtimePaths }),
      ...(this.hookSettings.guardInitExec === undefined ? {} : { guardInitExec: this.hookSettings.guardInitExec }),
      ...(this.hookSettings.settleDelayMs === undefined ? {} : { settleDelayMs: this.hookSettings.settleDelayMs }),
    });
    try {
      await hook.start();
      if (hook.runtimes.length === 0) {
        // nothing to hold: no runc or crun at the paths it looks at (a mount namespace that is
        // not the host's, or another runtime): containers are learnt after they start
        await hook.close();
        this.hookReason = 'no OCI runtime binary (runc, crun) found at the usual paths';
        return;
      }
      this.hook = hook;
      if (this.closed) await hook.close();
    } catch (e) {
      await hook.close();
      this.hookReason = errorMessage(e);
      // EINVAL: no fanotify permission events in this kernel (doctor says so); EPERM: not
      // privileged. Both mean "as before": learn from runtime events. Anything else is news.
      if (!/EINVAL|EPERM|errno (1|22)\b/.test(this.hookReason)) {
        this.onWarning({ kind: 'hook', error: new TlscopeError('ERR_HOOK', `container start hook: ${this.hookReason}`, { cause: e, hint: 'containers are learnt after they start; short-lived ones may be missed' }) });
      }
    }
  }

  /**
   * A container its runtime has created and is about to start (its first process waits): index
   * it and wait for every subscriber; the hook lets the runtime go when this settles.
   */
  private async learnStarting(rc: RuntimeContainer): Promise<void> {
    if (this.closed) return;
    const described = this.describe(rc);
    if (described === undefined) return;
    const info: ContainerInfo = { ...described, source: 'hook' };
    const pending: Promise<unknown>[] = [];
    const outer = this.collecting;
    this.collecting = pending;
    try {
      this.upsert(info, undefined);
    } finally {
      this.collecting = outer;
    }
    if (pending.length > 0) await Promise.all(pending);
  }

  // ---- the /proc rescan fallback ----

  /** One pass of the fallback; public so tests (and callers that know better) can run it now. */
  rescan(): void {
    if (this.closed) return;
    try {
      this.scanner.scan();
    } catch (e) {
      clearInterval(this.rescanTimer);
      this.rescanTimer = undefined;
      const error = e instanceof TlscopeError ? e : new TlscopeError('ERR_PROC', `rescan /proc: ${e instanceof Error ? e.message : String(e)}`, { cause: e, hint: 'run tlscope as root' });
      this.onWarning({ kind: 'proc', error });
    }
  }

  /** Asks the container's runtime about a container found by its cgroup; falls back to the cgroup alone. */
  private resolve(ref: CgroupContainerRef, pid: number, mntns: number): void {
    const candidates = this.sessions.filter((s) => s.state === 'healthy' && (ref.runtime === undefined || s.client.name === ref.runtime));
    const refKey = `${ref.runtime ?? '?'}/${ref.runtimeNamespace ?? ''}/${ref.id}`;
    if (candidates.length === 0) {
      if (ref.runtime === undefined) return; // kubelet cgroupfs layout and no runtime to ask: cannot name it
      const info = this.describeFromCgroup({ ...ref, runtime: ref.runtime }, pid);
      if (info !== undefined) this.upsert(info, undefined);
      return;
    }
    if (this.resolving.has(refKey)) return;
    this.resolving.add(refKey);
    // what /proc says of the process now: the runtime's answer may come after it has exited
    const seen = this.sighting(pid, mntns);
    void (async () => {
      try {
        for (const session of candidates) {
          // a process seen in it: its runtime may call it exited by now, its facts are still good
          const rc = await session.client.inspect(ref.id, ref.runtimeNamespace, this.controller.signal, { exited: seen !== undefined });
          if (rc === undefined) continue;
          const info = this.describe(rc, seen);
          if (info !== undefined) this.upsert(info, session);
          return;
        }
        // Every runtime that could own it says it is not a workload (a pod sandbox, say) — unless
        // its start event indexed it meanwhile (it was not running yet when asked).
        if (this.lookup.byMntns(mntns) === undefined) this.scanner.ignore(mntns, pid);
      } catch {
        if (this.closed) return;
        // The runtime failed right now; its session reports breakage. Index what the cgroup says.
        if (ref.runtime !== undefined) {
          const info = this.describeFromCgroup({ ...ref, runtime: ref.runtime }, pid);
          if (info !== undefined) this.upsert(info, undefined);
        }
      } finally {
        this.resolving.delete(refKey);
      }
    })();
  }
}

export { RUNTIME_NAMES, isRuntimeName } from './types.js';
export type { ContainerInfo, ContainerSource, K8sIdentity, Labels, RuntimeClient, RuntimeContainer, RuntimeEvent, RuntimeName } from './types.js';
export type { RuntimeWarning } from './session.js';
export { createRuntimeClients, DEFAULT_SOCKETS, type RuntimeClientOptions } from './clients.js';
export { DockerEngineClient, type DockerClientOptions } from './docker.js';
export { ContainerdClient, type ContainerdClientOptions } from './containerd.js';
export { CriClient, type CriClientOptions } from './cri.js';
export { containerFromCgroupPath, type CgroupContainerRef } from './cgroup-path.js';
export { k8sIdentityFromLabels, K8S_LABEL } from './k8s.js';
export {
  hasContainerFilter, includesHost, matches, matchesContainer, parseK8sSelector, parseSelectorFlags, runtimesInScope, SCOPE_HELP,
  type ContainerSelector, type SelectorFlags,
} from './selector.js';
export { RuntimeError } from './errors.js';
export { ContainerHook, containerFromHook, DEFAULT_HOOK_DEADLINE_MS, RUNTIME_PATHS, type ContainerHookOptions, type HookStats } from './hook.js';
