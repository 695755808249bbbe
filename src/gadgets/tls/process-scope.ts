// SPDX-License-Identifier: Apache-2.0
/**
 * Keeps a process-scoped gadget (uprobes on the code processes run) in step with what is in
 * scope: it tells the gadget which processes to look at — those in scope now, those that start
 * later (a periodic /proc listing, plus exec/mmap hints from the kernel when the gadget has
 * them) — and which root filesystems to look into (the host's, each in-scope container's as
 * it starts) so libraries can be probed before a process maps them.
 *
 * The counterpart of NetnsScope for network gadgets; the trace runner uses whichever the
 * gadget asks for.
 */
import { readdirSync } from 'node:fs';
import type { ContainerIndex, ContainerIndexEvent } from '../../containers/index.js';
import { includesHost, matches, type ContainerSelector } from '../../containers/selector.js';
import type { ContainerEntry, ContainerInfo } from '../../containers/types.js';
import { errorMessage, PermissionError } from '../../errors.js';
import { DEFAULT_PROC_ROOT, listPids, namespaceInode } from '../../proc/index.js';

export interface ProcessWatcher {
  /** Look at what `pid` has mapped now (called again when it may have mapped more). */
  watchProcess(pid: number): void;
  /**
   * Look into a root filesystem (e.g. `/proc/PID/root`) for code worth probing before it runs;
   * `entry`, when known, is the program that is about to start in it.
   */
  watchRoot?(root: string, entry?: ContainerEntry): void;
  /** The process is gone. */
  forgetProcess?(pid: number): void;
  /** Kernel hints that a process exec'd or mapped code; returns the unsubscribe function. */
  onProcessHint?(listener: (pid: number) => void): () => void;
}

export interface ProcessScopeOptions {
  /** Period of the /proc listing that finds new processes (default 2000 ms; 0: none). */
  rescanMs?: number;
  procRoot?: string;
}

export class ProcessScope {
  private readonly seen = new Set<number>();
  private readonly unsubscribe: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly procRoot: string;
  private readonly rescanMs: number;

  constructor(
    private readonly watcher: ProcessWatcher,
    private readonly selector: ContainerSelector,
    private readonly index: ContainerIndex | undefined,
    private readonly warn: (msg: string) => void,
    opts: ProcessScopeOptions = {},
  ) {
    this.procRoot = opts.procRoot ?? DEFAULT_PROC_ROOT;
    this.rescanMs = opts.rescanMs ?? 2000;
  }

  private get pidList(): readonly number[] | undefined {
    return this.selector.pids?.length ? this.selector.pids : undefined;
  }

  /** Whether a process is in scope now. */
  inScope(pid: number): boolean {
    if (pid === process.pid) return false; // tlscope itself
    const pids = this.pidList;
    if (pids !== undefined) return pids.includes(pid);
    const container = this.index?.byPid(pid);
    return matches(this.selector, container, pid);
  }

  /** Watches what is in scope now, then follows processes and containers as they come. */
  start(): void {
    if (this.pidList === undefined && includesHost(this.selector)) this.root(this.hostRoot());
    if (this.index !== undefined && this.pidList === undefined) {
      for (const c of this.index.all()) this.onContainer({ type: 'added', container: c });
      this.unsubscribe.push(this.index.subscribe((e) => this.onContainer(e)));
    }
    this.rescan();
    const hints = this.watcher.onProcessHint?.((pid) => this.consider(pid, true));
    if (hints !== undefined) this.unsubscribe.push(hints);
    if (this.rescanMs > 0) {
      this.timer = setInterval(() => this.rescan(), this.rescanMs);
      this.timer.unref();
    }
  }

  /** Looks at a process (again when `force`) if it is in scope. */
  consider(pid: number, force = false): void {
    if (!force && this.seen.has(pid)) return;
    this.seen.add(pid);
    try {
      if (!this.inScope(pid)) return;
      this.watcher.watchProcess(pid);
    } catch (e) {
      // a process we may not look at (a sandbox's init, say) is not one we can trace either
      if (!(e instanceof PermissionError)) this.warn(`cannot look at process ${pid}: ${errorMessage(e)}`);
    }
  }

  /** The host's root: pid 1's (right even when tlscope runs in a host-pid container), else ours. */
  private hostRoot(): string {
    try {
      readdirSync(`${this.procRoot}/1/root/`);
      return `${this.procRoot}/1/root`;
    } catch {
      return `${this.procRoot}/self/root`;
    }
  }

  private mntnsOf(pid: number): number | undefined {
    try {
      return namespaceInode(pid, 'mnt', this.procRoot);
    } catch {
      return undefined;
    }
  }

  /** Lists /proc: new processes are considered, gone ones forgotten. */
  rescan(): void {
    const pids = this.pidList ?? listPids(this.procRoot);
    const now = new Set(pids);
    for (const pid of pids) this.consider(pid);
    for (const pid of this.seen) {
      if (!now.has(pid)) {
        this.seen.delete(pid);
        this.watcher.forgetProcess?.(pid);
      }
    }
  }

  private root(path: string, entry?: ContainerEntry): void {
    try {
      this.watcher.watchRoot?.(path, entry);
    } catch (e) {
      this.warn(`cannot look into ${path}: ${errorMessage(e)}`);
    }
  }

  private onContainer(e: ContainerIndexEvent): void {
    if (e.type === 'removed' || !matches(this.selector, e.container)) return;
    const c: ContainerInfo = e.container;
    this.root(`${this.procRoot}/${c.pid}/root`, c.entry);
    // its processes may have been seen (and skipped) before the index knew the container
    for (const pid of listPids(this.procRoot)) {
      if (this.mntnsOf(pid) === c.mntns) this.consider(pid, true);
    }
  }

  stop(): void {
    for (const u of this.unsubscribe) u();
    this.unsubscribe.length = 0;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}
