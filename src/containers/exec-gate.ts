// SPDX-License-Identifier: Apache-2.0
/**
 * The exec gate: a never-seen executable is looked at before its first instruction. A
 * fanotify FAN_OPEN_EXEC_PERM mark on each of the host's mounts makes an exec of a file wait
 * for tlscope's answer; the subscriber (trace tls) reads the file and attaches its uprobes —
 * uprobes are per inode, so they are in place when the process starts — then the exec goes on.
 * Each inode is held once: once answered it carries an ignore mark (cleared by the kernel
 * when the file is modified, so a rewritten file is looked at again).
 *
 * Bounds: the deadline (DEFAULT_EXEC_GATE_DEADLINE_MS) is enforced by the worker thread
 * (exec-gate-worker.ts), which never waits for the main event loop; an exec let go at the
 * deadline is counted (`expired`). tlscope's own execs and its children's are never held.
 * Every error allows. A tlscope that dies closes the group: the kernel allows everything.
 *
 * Not covered: mounts made after the start, and other mount namespaces' mounts (containers
 * have the container start hook); kernels without fanotify permission events.
 */
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { errorMessage } from '../errors.js';
import { signalEventFd } from '../ebpf/fanotify.js';
import { EXEC_GATE_SLOTS, type ExecGateMessage, type ExecGateWorkerData } from './exec-gate-worker.js';

export const DEFAULT_EXEC_GATE_DEADLINE_MS = 2000;

/** File systems nobody executes from. */
const PSEUDO = new Set(['proc', 'sysfs', 'cgroup', 'cgroup2', 'tracefs', 'debugfs', 'securityfs', 'devpts', 'mqueue', 'bpf', 'pstore', 'configfs', 'fusectl', 'hugetlbfs', 'autofs', 'binfmt_misc', 'nsfs', 'efivarfs', 'rpc_pipefs']);

/** Mount points of this mount namespace worth a mark (from /proc/self/mountinfo). */
export function executableMounts(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const out = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    const point = f[4];
    const fstype = sep < 0 ? undefined : f[sep + 1];
    if (point === undefined || fstype === undefined || PSEUDO.has(fstype)) continue;
    out.add(point.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))));
  }
  return [...out];
}

export interface ExecGateStats {
  /** Execs held (first exec of each inode). */
  readonly held: number;
  /** Answered once the subscriber was done. */
  readonly released: number;
  /** Answered at the deadline: the program may have run before its probes. */
  readonly expired: number;
  /** Let go at once (tlscope's own, unreadable, too many held), by reason. */
  readonly passed: Readonly<Record<string, number>>;
}

export interface ExecGateOptions {
  /**
   * Called for every held exec with a path to the very file (valid during the call only) and
   * the path it was exec'd by; the exec waits until it returns (or the deadline).
   */
  readonly onExec: (file: string, name: string, pid: number) => void;
  readonly deadlineMs?: number;
  readonly mounts?: readonly string[];
  readonly onNote?: (message: string) => void;
}

export class ExecGate {
  private worker: Worker | undefined;
  private wakeFd = -1;
  private readonly control = new SharedArrayBuffer(4 * (1 + EXEC_GATE_SLOTS));
  private readonly controlView = new Int32Array(this.control);
  private readonly counts = { held: 0, released: 0, expired: 0 };
  private readonly passed: Record<string, number> = {};
  private marked: readonly string[] = [];
  private closed = false;
  private exited: Promise<void> | undefined;
  readonly deadlineMs: number;

  constructor(private readonly options: ExecGateOptions) {
    this.deadlineMs = options.deadlineMs ?? DEFAULT_EXEC_GATE_DEADLINE_MS;
  }

  /** The mounts whose execs are gated. */
  get mounts(): readonly string[] {
    return this.marked;
  }

  stats(): ExecGateStats {
    return { ...this.counts, passed: { ...this.passed } };
  }

  /** Starts the worker; resolves once the marks are in place. Rejects where fanotify cannot do it. */
  start(): Promise<void> {
    const data: ExecGateWorkerData = { deadlineMs: this.deadlineMs, mounts: this.options.mounts ?? executableMounts(), selfPid: process.pid, control: this.control };
    const worker = new Worker(new URL('./exec-gate-worker.js', import.meta.url), { workerData: data });
    this.worker = worker;
    worker.unref();
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    return new Promise((resolve, reject) => {
      let ready = false;
      worker.on('message', (m: ExecGateMessage) => {
        switch (m.type) {
          case 'ready':
            this.wakeFd = m.wakeFd;
            this.marked = m.marked;
            ready = true;
            if (m.marked.length === 0) reject(new Error('no mount could be marked'));
            else resolve();
            break;
          case 'fatal':
            reject(new Error(m.message));
            break;
          case 'exec':
            this.counts.held++;
            this.onExec(m);
            break;
          case 'answered':
            if (m.expired) {
              this.counts.expired++;
              this.options.onNote?.(`exec of ${m.path} let go at the exec gate's ${this.deadlineMs / 1000} s deadline, before its probes were in place`);
            } else this.counts.released++;
            break;
          case 'passed':
            this.passed[m.why] = (this.passed[m.why] ?? 0) + 1;
            break;
        }
      });
      worker.once('error', (e) => {
        if (!ready) reject(e);
        else this.options.onNote?.(`exec gate stopped: ${errorMessage(e)}`);
      });
      worker.once('exit', (code) => {
        this.wakeFd = -1;
        if (!ready) reject(new Error(`exec gate ended (${code}) before it was ready`));
      });
    });
  }

  private onExec(m: Extract<ExecGateMessage, { type: 'exec' }>): void {
    // Our own fd of the file, checked to be the one the worker holds (the worker may have let
    // it go at the deadline meanwhile, and its fd number been reused).
    let fd = -1;
    try {
      fd = openSync(`/proc/self/fd/${m.fd}`, 'r');
      const st = fstatSync(fd);
      if (st.dev === m.dev && st.ino === m.ino) this.options.onExec(`/proc/self/fd/${fd}`, m.path, m.pid);
    } catch (e) {
      this.options.onNote?.(`exec gate: ${m.path}: ${errorMessage(e)}`);
    } finally {
      if (fd >= 0) closeSync(fd);
      if (!this.closed && this.wakeFd >= 0) {
        Atomics.store(this.controlView, 1 + m.slot, m.generation);
        signalEventFd(this.wakeFd);
      }
    }
  }

  /** Stops the worker; anything it still holds is allowed as its fanotify group closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.worker === undefined) return;
    this.worker.ref();
    Atomics.store(this.controlView, 0, 1);
    if (this.wakeFd >= 0) signalEventFd(this.wakeFd);
    const timer = setTimeout(() => void this.worker?.terminate(), 2000);
    timer.unref();
    await this.exited;
    clearTimeout(timer);
  }
}
