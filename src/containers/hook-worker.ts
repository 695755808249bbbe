// SPDX-License-Identifier: Apache-2.0
/**
 * The container start hook's own thread (see hook.ts for the whole story). It owns one
 * fanotify group and answers every permission event itself, so nothing it holds ever depends
 * on the main event loop:
 *
 * 1. OCI runtime binaries (runc, crun) carry FAN_OPEN_EXEC_PERM marks. Each exec is allowed at
 *    once; when the exec has happened, its /proc/PID/cmdline says `create --bundle B --pid-file P`.
 * 2. The bundle's config.json is read, then P's directory gets a FAN_ACCESS_PERM mark for its
 *    children. The runtime writes P and exits; its caller (containerd-shim, conmon) reads P
 *    before it starts the container — and that read waits for this thread's answer, while the
 *    container's first process waits in the runtime's init for the start.
 * 3. The read is reported to the main thread ('start'); the answer comes when the main thread
 *    has told every subscriber (shared memory + an eventfd wake this thread), or at the
 *    deadline, whichever is first. The deadline is enforced here.
 *
 * This thread never reads a file by path inside a directory it marked (it would wait for
 * itself): config.json is read before the mark, the pid file through the event's own fd.
 */
import { existsSync, fstatSync, readFileSync, readlinkSync, readSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import {
  closeFd, drainEventFd, FAN_ACCESS_PERM, FAN_EVENT_ON_CHILD, FAN_MARK_ADD, FAN_MARK_IGNORED_MASK, FAN_MARK_REMOVE, FAN_OPEN_EXEC_PERM,
  FanotifyGroup, openEventFd, pollReadable, type FanotifyEvent,
} from '../ebpf/fanotify.js';
import { isSandbox, parseOciSpec, parsePidFile, parseRuntimeCommand, type OciSpec, type RuntimeCreate } from './oci.js';

export interface HookWorkerData {
  readonly deadlineMs: number;
  readonly runtimePaths: readonly string[];
  /** Hold runc's init exec until its pid file is watched (default true; off only to test the race). */
  readonly guardInitExec?: boolean;
  /** Tests: read a runtime's command line this much later than its exec (a busy machine). */
  readonly settleDelayMs?: number;
  /** Int32Array: [0] stop flag, [1 + slot] the generation the main thread released. */
  readonly control: SharedArrayBuffer;
}

/** What the worker learnt when a runtime's caller read a pid file (the container is created, not started). */
export interface HookStartFacts {
  readonly create: RuntimeCreate;
  readonly spec: OciSpec;
  /** The container's first process (waiting in the runtime's init). */
  readonly pid: number;
  /** argv of the process that read the pid file (containerd-shim, conmon). */
  readonly readerArgv: readonly string[];
}

export type HookWorkerMessage =
  | { readonly type: 'ready'; readonly wakeFd: number; readonly marked: readonly string[] }
  | { readonly type: 'fatal'; readonly message: string }
  | { readonly type: 'start'; readonly slot: number; readonly generation: number; readonly facts: HookStartFacts }
  | { readonly type: 'answered'; readonly slot: number; readonly generation: number; readonly heldMs: number; readonly expired: boolean }
  /**
   * A pid-file watch began; `late`: the pid file already existed when the mark was placed, so
   * its reader may have read it unheld (counted as a miss).
   */
  | { readonly type: 'watch'; readonly id: string; readonly late: boolean }
  /** runc's init exec was answered with the watch of its pid file in place: this start cannot race. */
  | { readonly type: 'guarded'; readonly id: string }
  | { readonly type: 'note'; readonly message: string };

export const HOOK_SLOTS = 1024;
/** How long a runtime exec is looked at until its new image shows in /proc (it is allowed already). */
const EXEC_SETTLE_MS = 500;
/** A pid file nobody read (the create failed) stops being watched after this. */
const WATCH_TTL_MS = 60_000;
const PID_FILE_MAX = 32;

interface Watch {
  readonly key: string;
  readonly dir: string;
  readonly create: RuntimeCreate;
  readonly spec: OciSpec;
  readonly since: number;
  readonly ignored: string[];
}

interface Hold {
  readonly slot: number;
  readonly generation: number;
  readonly fd: number;
  readonly since: number;
  readonly deadline: number;
}

const post = (m: HookWorkerMessage): void => parentPort?.postMessage(m);

function readArgv(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const parts = raw.split('\0');
    if (parts.at(-1) === '') parts.pop();
    return parts;
  } catch {
    return undefined;
  }
}

/** The parent's pid, from /proc/PID/stat (after the parenthesised comm). */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isInteger(ppid) && ppid > 0 ? ppid : undefined;
  } catch {
    return undefined;
  }
}

function cwdOf(pid: number | undefined): string {
  if (pid === undefined) return '/';
  try {
    return readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    return '/'; // relative paths stay unresolved; runtimes' callers pass absolute ones
  }
}

function identity(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

function run(data: HookWorkerData): void {
  const control = new Int32Array(data.control);
  let group: FanotifyGroup;
  try {
    group = FanotifyGroup.open();
  } catch (e) {
    post({ type: 'fatal', message: e instanceof Error ? e.message : String(e) });
    return;
  }
  const wakeFd = openEventFd();
  const marked: string[] = [];
  const runtimeFiles = new Set<string>();
  const runtimeExes = new Set<string>();
  for (const p of data.runtimePaths) {
    const id = identity(p);
    if (id === undefined || runtimeFiles.has(id)) continue;
    if (group.tryMark(FAN_MARK_ADD, FAN_OPEN_EXEC_PERM, p)) {
      runtimeFiles.add(id);
      marked.push(p);
      runtimeExes.add(p);
      try {
        runtimeExes.add(realpathSync(p));
      } catch {
        // the mark holds; the link is only used to recognise the exec'd image
      }
    }
  }
  post({ type: 'ready', wakeFd, marked });

  /** pid → when its runtime exec was allowed (its new cmdline is read once the exec is done). */
  const execs = new Map<number, number>();
  const watches = new Map<string, Watch>();
  const dirUsers = new Map<string, number>();
  const holds = new Map<number, Hold>();
  let generation = 0;
  let nextSlot = 0;
  const events = Buffer.alloc(64 * 1024);
  const pollScratch = Buffer.alloc(16);
  const drain = Buffer.alloc(8);
  const pidBuf = Buffer.alloc(PID_FILE_MAX);

  const unwatch = (w: Watch): void => {
    watches.delete(w.key);
    for (const f of w.ignored) group.tryMark(FAN_MARK_REMOVE | FAN_MARK_IGNORED_MASK, FAN_ACCESS_PERM, f);
    const n = (dirUsers.get(w.dir) ?? 1) - 1;
    if (n > 0) dirUsers.set(w.dir, n);
    else {
      dirUsers.delete(w.dir);
      group.tryMark(FAN_MARK_REMOVE, FAN_ACCESS_PERM | FAN_EVENT_ON_CHILD, w.dir);
    }
  };

  /** Watches a create's pid file; true when it is watched (now or already). */
  const watch = (create: RuntimeCreate): boolean => {
    let dir: string;
    try {
      dir = realpathSync(dirname(create.pidFile));
    } catch {
      return false; // the directory is gone: the create failed
    }
    const key = join(dir, basename(create.pidFile));
    if (watches.has(key)) return true;
    let spec: OciSpec;
    try {
      spec = parseOciSpec(readFileSync(join(create.bundle, 'config.json'), 'utf8'));
    } catch (e) {
      post({ type: 'note', message: `container ${create.id}: cannot read ${join(create.bundle, 'config.json')}: ${e instanceof Error ? e.message : String(e)}` });
      return false;
    }
    if (isSandbox(spec)) return false;
    if (!dirUsers.has(dir)) {
      if (!group.tryMark(FAN_MARK_ADD, FAN_ACCESS_PERM | FAN_EVENT_ON_CHILD, dir)) {
        post({ type: 'note', message: `container ${create.id}: cannot watch ${dir}` });
        return false;
      }
    }
    dirUsers.set(dir, (dirUsers.get(dir) ?? 0) + 1);
    // Fewer events for files its neighbours read often (best effort).
    const ignored: string[] = [];
    for (const f of ['config.json', 'log.json', 'options.json']) {
      const p = join(dir, f);
      if (existsSync(p) && group.tryMark(FAN_MARK_ADD | FAN_MARK_IGNORED_MASK, FAN_ACCESS_PERM, p)) ignored.push(p);
    }
    watches.set(key, { key, dir, create, spec, since: Date.now(), ignored });
    // The mark is in place now; a pid file there already may have been read before it was.
    post({ type: 'watch', id: create.id, late: existsSync(key) });
    return true;
  };

  const settleDelay = data.settleDelayMs ?? 0;
  const guard = data.guardInitExec !== false;
  const settleExecs = (now: number): void => {
    for (const [pid, since] of execs) {
      if (now - since < settleDelay) continue;
      let exe: string;
      try {
        exe = readlinkSync(`/proc/${pid}/exe`);
      } catch {
        execs.delete(pid); // gone
        continue;
      }
      if (!runtimeExes.has(exe)) {
        if (now - since > EXEC_SETTLE_MS + settleDelay) execs.delete(pid);
        continue;
      }
      const argv = readArgv(pid);
      const create = argv === undefined ? undefined : parseRuntimeCommand(argv, cwdOf(pid));
      execs.delete(pid);
      if (create !== undefined) watch(create);
    }
  };

  const onAccess = (ev: FanotifyEvent, now: number): void => {
    let path: string | undefined;
    try {
      path = readlinkSync(`/proc/self/fd/${ev.fd}`);
    } catch {
      path = undefined;
    }
    const w = path === undefined ? undefined : watches.get(path);
    if (w === undefined) {
      group.answer(ev.fd);
      closeFd(ev.fd);
      return;
    }
    let pid: number | undefined;
    try {
      if (fstatSync(ev.fd).size <= PID_FILE_MAX) {
        const n = readSync(ev.fd, pidBuf, 0, PID_FILE_MAX, 0);
        pid = parsePidFile(pidBuf.toString('utf8', 0, n));
      }
    } catch {
      pid = undefined;
    }
    unwatch(w);
    if (pid === undefined || holds.size >= HOOK_SLOTS) {
      group.answer(ev.fd);
      closeFd(ev.fd);
      return;
    }
    while (holds.has(nextSlot)) nextSlot = (nextSlot + 1) % HOOK_SLOTS;
    const slot = nextSlot;
    nextSlot = (nextSlot + 1) % HOOK_SLOTS;
    generation = (generation + 1) | 0 || 1;
    const hold: Hold = { slot, generation, fd: ev.fd, since: now, deadline: now + data.deadlineMs };
    holds.set(slot, hold);
    post({ type: 'start', slot, generation, facts: { create: w.create, spec: w.spec, pid, readerArgv: readArgv(ev.pid) ?? [] } });
  };

  const answerHolds = (now: number): void => {
    for (const h of holds.values()) {
      const released = Atomics.load(control, 1 + h.slot) === h.generation;
      if (!released && now < h.deadline) continue;
      group.answer(h.fd);
      closeFd(h.fd);
      holds.delete(h.slot);
      post({ type: 'answered', slot: h.slot, generation: h.generation, heldMs: now - h.since, expired: !released });
    }
  };

  try {
    while (Atomics.load(control, 0) === 0) {
      let now = performance.now();
      let timeout = 1000;
      for (const h of holds.values()) timeout = Math.min(timeout, Math.max(0, h.deadline - now));
      if (execs.size > 0) timeout = Math.min(timeout, 1);
      const [fan, wake] = pollReadable([group.fd, wakeFd], Math.ceil(timeout), pollScratch);
      if (wake) drainEventFd(wakeFd, drain);
      now = performance.now();
      if (fan) {
        for (;;) {
          const batch = group.read(events);
          if (batch.length === 0) break;
          for (const ev of batch) {
            if (ev.fd < 0) continue; // queue overflow marker: nothing to answer
            if ((ev.mask & FAN_OPEN_EXEC_PERM) !== 0) {
              // runc re-executes itself for the container's init (`/proc/self/exe init`) before
              // it writes the pid file, from a child that shares its parent's memory until the
              // exec: that child's cmdline is still `create --bundle B --pid-file P`. Held here,
              // the mark on P's directory is in place before P can exist: no race with a busy
              // machine. The first exec (the shim's, of runc) cannot say it yet: allowed at once,
              // its command line is read once the exec is done (the only way for crun).
              const argv = guard ? readArgv(ev.pid) : undefined;
              const create = argv === undefined ? undefined : parseRuntimeCommand(argv, cwdOf(parentOf(ev.pid)));
              if (create !== undefined && watch(create)) post({ type: 'guarded', id: create.id });
              group.answer(ev.fd);
              closeFd(ev.fd);
              if (create === undefined && !execs.has(ev.pid)) execs.set(ev.pid, Date.now());
            } else if ((ev.mask & FAN_ACCESS_PERM) !== 0) {
              onAccess(ev, now);
            } else {
              group.answer(ev.fd);
              closeFd(ev.fd);
            }
          }
        }
      }
      if (execs.size > 0) settleExecs(Date.now());
      answerHolds(performance.now());
      const wall = Date.now();
      for (const w of [...watches.values()]) if (wall - w.since > WATCH_TTL_MS) unwatch(w);
    }
  } finally {
    // Closing the group allows whatever still waits; nothing is ever left held.
    group.close();
    for (const h of holds.values()) closeFd(h.fd);
    closeFd(wakeFd);
  }
}

if (parentPort !== null && workerData !== undefined) run(workerData as HookWorkerData);
