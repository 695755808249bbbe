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
import { PermissionError, TlscopeError } from '../errors.js';
import { cgroupIdOfPath, cgroupMemberships, primaryCgroupPath, unifiedCgroupPath } from '../proc/cgroup.js';
import { namespaceInode, processNamespaces, type ProcessNamespaces } from '../proc/namespaces.js';
import { listPids } from '../proc/process.js';
import { containerFromCgroupPath, DEFAULT_CONTAINERD_NAMESPACES, type CgroupContainerRef } from './cgroup-path.js';
import { createRuntimeClients } from './clients.js';
import { ClosedError } from './errors.js';
import { k8sIdentityFromLabels } from './k8s.js';
import { PidMountNamespaceCache } from './pid-cache.js';
import { AsyncQueue } from './queue.js';
import { DEFAULT_SESSION_TIMING, RuntimeSession, type RuntimeWarning, type SessionSink, type SessionTiming } from './session.js';

/** Something the index could not do; each is reported once, never per event. */
export type ContainerIndexWarning =
  /** A runtime's socket exists but its API fails (once per breakage; absent runtimes are silent). */
  | ({ readonly kind: 'runtime' } & RuntimeWarning)
  /** /proc could not be read (not root?): the rescan fallback is off until restart. */
  | { readonly kind: 'proc'; readonly error: TlscopeError };
import type { ContainerInfo, RuntimeClient, RuntimeContainer, RuntimeEvent, RuntimeName } from './types.js';

export type ContainerIndexEvent =
  | { readonly type: 'added'; readonly container: ContainerInfo }
  | { readonly type: 'removed'; readonly container: ContainerInfo }
  /** Same container, better or newer facts (e.g. known from its cgroup first, then from its runtime). */
  | { readonly type: 'updated'; readonly container: ContainerInfo; readonly previous: ContainerInfo };

export type ContainerIndexListener = (event: ContainerIndexEvent) => void;

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
}

/** How long a process in an unknown, non-host mount namespace keeps being looked at (runtimes join the cgroup a moment after creating the namespaces). */
const SUSPECT_WINDOW_MS = 3000;
/** Mount namespaces found not to be containers are remembered up to this many. */
const MAX_IGNORED_MNTNS = 4096;
const NO_CONTAINERS: readonly ContainerInfo[] = Object.freeze([]);

/**
 * The host's namespaces: those of pid 1 when we may read them (tlscope on the host, or in a pod
 * with hostPID), else our own (pid 1 can be a supervisor that refuses even root).
 */
function hostNamespaces(procRoot: string | undefined): ProcessNamespaces | undefined {
  try {
    const init = processNamespaces(1, procRoot);
    if (init !== undefined) return init;
  } catch (e) {
    if (!(e instanceof PermissionError)) throw e;
  }
  return processNamespaces(process.pid, procRoot);
}

/** A namespace inode, or undefined when the process is gone or refuses to be looked at. */
function readableMntns(pid: number, procRoot: string | undefined): number | undefined {
  try {
    return namespaceInode(pid, 'mnt', procRoot);
  } catch (e) {
    if (e instanceof PermissionError) return undefined;
    throw e;
  }
}

function keyOf(runtime: RuntimeName, runtimeNamespace: string | undefined, id: string): string {
  return `${runtime}/${runtimeNamespace ?? ''}/${id}`;
}

function keyOfInfo(c: ContainerInfo): string {
  return keyOf(c.runtime, c.runtimeNamespace, c.id);
}

export class ContainerIndex {
  private readonly byKeyMap = new Map<string, ContainerInfo>();
  private readonly owner = new Map<string, RuntimeSession | undefined>();
  private readonly byMntnsMap = new Map<number, ContainerInfo>();
  private readonly byNetnsMap = new Map<number, ContainerInfo[]>();
  private readonly byInitPidMap = new Map<number, ContainerInfo>();
  private readonly byCgroupIdMap = new Map<bigint, ContainerInfo>();
  private readonly byCgroupPathMap = new Map<string, ContainerInfo>();
  private readonly byIdMap = new Map<string, ContainerInfo>();
  private readonly listeners = new Set<ContainerIndexListener>();
  private readonly sessions: RuntimeSession[];
  private readonly clients: readonly RuntimeClient[];
  private readonly pidCache: PidMountNamespaceCache;
  private readonly controller = new AbortController();
  private readonly procRoot: string | undefined;
  private readonly rescanIntervalMs: number;
  private readonly onWarning: (w: ContainerIndexWarning) => void;
  private readonly containerdNamespaces = new Set(DEFAULT_CONTAINERD_NAMESPACES);
  /** pids looked at by the last rescan, so the next one only examines new processes. */
  private seenPids = new Set<number>();
  /** Processes in an unknown non-host mount namespace without a container cgroup yet: pid → first seen. */
  private readonly suspects = new Map<number, number>();
  private readonly ignoredMntns = new Set<number>();
  /** Container references being resolved through their runtime, so each is asked once. */
  private readonly resolving = new Set<string>();
  private rescanTimer: NodeJS.Timeout | undefined;
  private started: Promise<void> | undefined;
  private closed = false;
  private hostNs: ProcessNamespaces | undefined;

  constructor(options: ContainerIndexOptions = {}) {
    this.clients = options.clients ?? createRuntimeClients();
    this.procRoot = options.procRoot;
    this.rescanIntervalMs = options.rescanIntervalMs ?? 1000;
    this.onWarning = options.onWarning ?? (() => {});
    this.pidCache = new PidMountNamespaceCache(options.pidCacheSize ?? 16384, 2000, options.procRoot);
    const sink: SessionSink = {
      sync: (session, containers) => this.syncSession(session, containers),
      apply: (session, event) => this.applyEvent(session, event),
      warn: (w) => this.onWarning({ kind: 'runtime', ...w }),
    };
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
    await Promise.all(this.sessions.map((s) => s.stopped()));
    for (const c of this.clients) c.close();
    this.listeners.clear();
  }

  // ---- lookups (O(1); used per event) ----

  get size(): number {
    return this.byKeyMap.size;
  }

  all(): ContainerInfo[] {
    return [...this.byKeyMap.values()];
  }

  byMntns(inode: number): ContainerInfo | undefined {
    return this.byMntnsMap.get(inode);
  }

  /**
   * Containers in a network namespace: several for a pod (its containers share one). Containers
   * run with the host's network are not listed under the host's namespace: traffic there is
   * the host's and cannot be attributed by namespace.
   */
  byNetns(inode: number): readonly ContainerInfo[] {
    return this.byNetnsMap.get(inode) ?? NO_CONTAINERS;
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

  /**
   * The container of any process (not only a container's first one): its mount namespace is
   * read once from /proc and cached briefly. Undefined for host processes and vanished pids.
   */
  byPid(pid: number): ContainerInfo | undefined {
    const init = this.byInitPidMap.get(pid);
    if (init !== undefined) return init;
    const mntns = this.pidCache.get(pid);
    if (mntns === undefined) return undefined;
    const found = this.byMntnsMap.get(mntns);
    if (found === undefined && mntns !== this.hostNs?.mnt && !this.ignoredMntns.has(mntns) && !this.suspects.has(pid)) {
      // Possibly a container younger than its runtime event: let the next rescan look at it.
      this.suspects.set(pid, Date.now());
    }
    return found;
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
        listener(event);
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
  private describe(rc: RuntimeContainer): ContainerInfo | undefined {
    const ns = processNamespaces(rc.pid, this.procRoot);
    const cgroups = cgroupMemberships(rc.pid, this.procRoot);
    if (ns === undefined || cgroups === undefined) return undefined;
    const unified = unifiedCgroupPath(cgroups);
    return {
      runtime: rc.runtime,
      id: rc.id,
      name: rc.name,
      image: rc.image,
      labels: rc.labels,
      pid: rc.pid,
      mntns: ns.mnt,
      netns: ns.net,
      cgroupPath: primaryCgroupPath(cgroups) ?? '',
      cgroupId: unified === undefined ? undefined : cgroupIdOfPath(unified, this.procRoot),
      k8s: k8sIdentityFromLabels(rc.labels, rc.podLabels),
      runtimeNamespace: rc.runtimeNamespace,
      source: 'runtime',
    };
  }

  private describeFromCgroup(ref: CgroupContainerRef & { runtime: RuntimeName }, pid: number): ContainerInfo | undefined {
    const info = this.describe({ runtime: ref.runtime, id: ref.id, name: ref.id.slice(0, 12), image: '', labels: {}, pid, ...(ref.runtimeNamespace === undefined ? {} : { runtimeNamespace: ref.runtimeNamespace }) });
    if (info === undefined) return undefined;
    const k8s = ref.podUid === undefined ? undefined : { namespace: '', podName: '', podUid: ref.podUid, containerName: '', podLabels: {} };
    return { ...info, k8s, source: 'cgroup' };
  }

  private index(c: ContainerInfo): void {
    this.byKeyMap.set(keyOfInfo(c), c);
    this.byMntnsMap.set(c.mntns, c);
    if (c.netns !== this.hostNs?.net) {
      const list = this.byNetnsMap.get(c.netns);
      this.byNetnsMap.set(c.netns, list === undefined ? [c] : [...list, c]);
    }
    this.byInitPidMap.set(c.pid, c);
    if (c.cgroupId !== undefined) this.byCgroupIdMap.set(c.cgroupId, c);
    if (c.cgroupPath !== '') this.byCgroupPathMap.set(c.cgroupPath, c);
    if (!this.byIdMap.has(c.id)) this.byIdMap.set(c.id, c);
    if (c.runtimeNamespace !== undefined && c.runtime === 'containerd') this.containerdNamespaces.add(c.runtimeNamespace);
  }

  private unindex(c: ContainerInfo): void {
    const key = keyOfInfo(c);
    this.byKeyMap.delete(key);
    this.owner.delete(key);
    if (this.byMntnsMap.get(c.mntns) === c) this.byMntnsMap.delete(c.mntns);
    const list = this.byNetnsMap.get(c.netns);
    if (list !== undefined) {
      const rest = list.filter((x) => x !== c);
      if (rest.length > 0) this.byNetnsMap.set(c.netns, rest);
      else this.byNetnsMap.delete(c.netns);
    }
    if (this.byInitPidMap.get(c.pid) === c) this.byInitPidMap.delete(c.pid);
    if (c.cgroupId !== undefined && this.byCgroupIdMap.get(c.cgroupId) === c) this.byCgroupIdMap.delete(c.cgroupId);
    if (this.byCgroupPathMap.get(c.cgroupPath) === c) this.byCgroupPathMap.delete(c.cgroupPath);
    if (this.byIdMap.get(c.id) === c) {
      this.byIdMap.delete(c.id);
      for (const other of this.byKeyMap.values()) {
        if (other.id === c.id) {
          this.byIdMap.set(c.id, other);
          break;
        }
      }
    }
  }

  /** Adds or refreshes an entry, keeping one entry per container (and per mount namespace). */
  private upsert(c: ContainerInfo, owner: RuntimeSession | undefined): void {
    if (this.closed) return;
    const key = keyOfInfo(c);
    const existing = this.byKeyMap.get(key);
    if (existing !== undefined) {
      if (existing.pid === c.pid && existing.source === c.source && existing.name === c.name) {
        this.owner.set(key, owner);
        return;
      }
      this.unindex(existing);
      this.index(c);
      this.owner.set(key, owner);
      this.emit({ type: 'updated', container: c, previous: existing });
      return;
    }
    const sameMntns = this.byMntnsMap.get(c.mntns);
    if (sameMntns !== undefined) {
      // Another client already reports this container (e.g. both containerd and its CRI plugin
      // were configured): keep the first, unless it came from a cgroup path only.
      if (sameMntns.source === 'runtime' || c.source === 'cgroup') return;
      this.remove(sameMntns);
    }
    this.index(c);
    this.owner.set(key, owner);
    this.ignoredMntns.delete(c.mntns);
    this.emit({ type: 'added', container: c });
  }

  private remove(c: ContainerInfo): void {
    if (this.byKeyMap.get(keyOfInfo(c)) !== c) return;
    this.unindex(c);
    this.emit({ type: 'removed', container: c });
  }

  // ---- runtime sessions ----

  private syncSession(session: RuntimeSession, containers: readonly RuntimeContainer[]): void {
    const listed = new Set<string>();
    for (const rc of containers) {
      const info = this.describe(rc);
      if (info === undefined) continue;
      listed.add(keyOfInfo(info));
      this.upsert(info, session);
    }
    for (const [key, c] of [...this.byKeyMap]) {
      if (this.owner.get(key) === session && !listed.has(key)) this.remove(c);
    }
  }

  private async applyEvent(session: RuntimeSession, event: RuntimeEvent): Promise<void> {
    const key = keyOf(session.client.name, event.runtimeNamespace, event.id);
    if (event.type === 'stop') {
      const c = this.byKeyMap.get(key);
      if (c !== undefined) this.remove(c);
      return;
    }
    const rc = await session.client.inspect(event.id, event.runtimeNamespace, this.controller.signal);
    if (rc === undefined) return; // stopped again already, or not a workload (a pod sandbox)
    const info = this.describe(rc);
    if (info !== undefined) this.upsert(info, session);
  }

  // ---- the /proc rescan fallback ----

  /** One pass of the fallback; public so tests (and callers that know better) can run it now. */
  rescan(): void {
    if (this.closed) return;
    try {
      this.rescanOnce();
    } catch (e) {
      clearInterval(this.rescanTimer);
      this.rescanTimer = undefined;
      const error = e instanceof TlscopeError ? e : new TlscopeError('ERR_PROC', `rescan /proc: ${e instanceof Error ? e.message : String(e)}`, { cause: e, hint: 'run tlscope as root' });
      this.onWarning({ kind: 'proc', error });
    }
  }

  private rescanOnce(): void {    // 1. Entries whose first process is gone (or whose pid now belongs to something else).
    for (const c of [...this.byKeyMap.values()]) {
      let mntns: number | undefined;
      try {
        mntns = namespaceInode(c.pid, 'mnt', this.procRoot);
      } catch (e) {
        if (e instanceof PermissionError) continue;
        throw e;
      }
      if (mntns !== c.mntns) this.remove(c);
    }
    // 2. Processes that appeared since the last pass, and earlier suspects still undecided.
    const pids = listPids(this.procRoot);
    const now = Date.now();
    const current = new Set(pids);
    for (const pid of pids) {
      if (!this.seenPids.has(pid)) this.examine(pid, now);
    }
    for (const [pid, since] of [...this.suspects]) {
      if (!current.has(pid)) {
        this.suspects.delete(pid);
      } else if (now - since > SUSPECT_WINDOW_MS) {
        // Still no container cgroup after the window: a private mount namespace (a systemd
        // service's, say), not a container. Remember the namespace, not only the pid.
        this.suspects.delete(pid);
        const mntns = readableMntns(pid, this.procRoot);
        if (mntns !== undefined && mntns !== this.hostNs?.mnt && !this.byMntnsMap.has(mntns)) this.ignoreMntns(mntns);
      } else {
        this.examine(pid, since);
      }
    }
    this.seenPids = current;
  }

  private examine(pid: number, since: number): void {
    const mntns = readableMntns(pid, this.procRoot);
    if (mntns === undefined || mntns === this.hostNs?.mnt || this.byMntnsMap.has(mntns) || this.ignoredMntns.has(mntns)) {
      this.suspects.delete(pid);
      return;
    }
    let cgroups: ReturnType<typeof cgroupMemberships>;
    try {
      cgroups = cgroupMemberships(pid, this.procRoot);
    } catch (e) {
      if (e instanceof PermissionError) return;
      throw e;
    }
    const path = cgroups === undefined ? undefined : primaryCgroupPath(cgroups);
    const ref = path === undefined ? undefined : containerFromCgroupPath(path, { containerdNamespaces: this.containerdNamespaces });
    if (ref === undefined) {
      // Not (yet) in a container's cgroup: look again for a few seconds, then give up on this pid.
      if (!this.suspects.has(pid)) this.suspects.set(pid, since);
      return;
    }
    this.suspects.delete(pid);
    this.resolve(ref, pid, mntns);
  }

  private ignoreMntns(mntns: number): void {
    if (this.ignoredMntns.size >= MAX_IGNORED_MNTNS) this.ignoredMntns.clear();
    this.ignoredMntns.add(mntns);
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
    void (async () => {
      try {
        for (const session of candidates) {
          const rc = await session.client.inspect(ref.id, ref.runtimeNamespace, this.controller.signal);
          if (rc === undefined) continue;
          const info = this.describe(rc);
          if (info !== undefined) this.upsert(info, session);
          return;
        }
        // Every runtime that could own it says it is not a workload (a pod sandbox, say).
        this.ignoreMntns(mntns);
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
