// SPDX-License-Identifier: Apache-2.0
/**
 * The exec gate's own thread (see exec-gate.ts). It owns one fanotify group with
 * FAN_OPEN_EXEC_PERM marks on the host's mounts and answers every event itself: an exec of a
 * file it has not answered before is held until the main thread has looked at the file (and
 * attached probes), or until the deadline, whichever is first; then the file's inode gets an
 * ignore mark, so later execs of it are not held at all. Any error: allowed at once.
 * Closing the group (also when tlscope dies) allows whatever still waits.
 */
import { fstatSync, readlinkSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { processStatus } from '../proc/process.js';
import {
  closeFd, drainEventFd, FAN_MARK_ADD, FAN_MARK_IGNORED_MASK, FAN_MARK_MOUNT, FAN_OPEN_EXEC_PERM, FanotifyGroup, openEventFd, pollReadable,
} from '../ebpf/fanotify.js';

export interface ExecGateWorkerData {
  readonly deadlineMs: number;
  readonly mounts: readonly string[];
  /** tlscope's own pid: its own execs (and its children's) are never held (it may wait for them). */
  readonly selfPid: number;
  /** Int32Array: [0] stop flag, [1 + slot] the generation the main thread released. */
  readonly control: SharedArrayBuffer;
}

export type ExecGateMessage =
  | { readonly type: 'ready'; readonly wakeFd: number; readonly marked: readonly string[] }
  | { readonly type: 'fatal'; readonly message: string }
  /** An exec held: the file is /proc/self/fd/`fd` until answered; `dev`/`ino` say which file it must be. */
  | { readonly type: 'exec'; readonly slot: number; readonly generation: number; readonly fd: number; readonly dev: number; readonly ino: number; readonly path: string; readonly pid: number }
  | { readonly type: 'answered'; readonly slot: number; readonly generation: number; readonly heldMs: number; readonly expired: boolean; readonly path: string }
  /** Answered without a hold (tlscope's own, a full table, an unreadable file). */
  | { readonly type: 'passed'; readonly why: string };

export const EXEC_GATE_SLOTS = 256;

interface Hold {
  readonly slot: number;
  readonly generation: number;
  readonly fd: number;
  readonly path: string;
  readonly since: number;
  readonly deadline: number;
}

const post = (m: ExecGateMessage): void => parentPort?.postMessage(m);

function run(data: ExecGateWorkerData): void {
  const control = new Int32Array(data.control);
  let group: FanotifyGroup;
  try {
    group = FanotifyGroup.open();
  } catch (e) {
    post({ type: 'fatal', message: e instanceof Error ? e.message : String(e) });
    return;
  }
  const wakeFd = openEventFd();
  const marked = data.mounts.filter((m) => group.tryMark(FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_OPEN_EXEC_PERM, m));
  post({ type: 'ready', wakeFd, marked });
  const holds = new Map<number, Hold>();
  let generation = 0;
  let nextSlot = 0;
  const events = Buffer.alloc(64 * 1024);
  const pollScratch = Buffer.alloc(16);
  const drain = Buffer.alloc(8);

  /** Allows the exec; later execs of the same inode are not reported (the mark goes when it is modified). */
  const allow = (fd: number): void => {
    group.answer(fd);
    group.tryMark(FAN_MARK_ADD | FAN_MARK_IGNORED_MASK, FAN_OPEN_EXEC_PERM, `/proc/self/fd/${fd}`);
    closeFd(fd);
  };

  const answerHolds = (now: number): void => {
    for (const h of holds.values()) {
      const released = Atomics.load(control, 1 + h.slot) === h.generation;
      if (!released && now < h.deadline) continue;
      allow(h.fd);
      holds.delete(h.slot);
      post({ type: 'answered', slot: h.slot, generation: h.generation, heldMs: now - h.since, expired: !released, path: h.path });
    }
  };

  try {
    while (Atomics.load(control, 0) === 0) {
      let now = performance.now();
      let timeout = 1000;
      for (const h of holds.values()) timeout = Math.min(timeout, Math.max(0, h.deadline - now));
      const [fan, wake] = pollReadable([group.fd, wakeFd], Math.ceil(timeout), pollScratch);
      if (wake) drainEventFd(wakeFd, drain);
      now = performance.now();
      if (fan) {
        for (;;) {
          const batch = group.read(events);
          if (batch.length === 0) break;
          for (const ev of batch) {
            if (ev.fd < 0) continue; // queue overflow marker: nothing to answer
            if ((ev.mask & FAN_OPEN_EXEC_PERM) === 0) {
              group.answer(ev.fd);
              closeFd(ev.fd);
              continue;
            }
            let why: string | undefined;
            let dev = 0;
            let ino = 0;
            let path = '';
            try {
              if (ev.pid === data.selfPid || processStatus(ev.pid)?.ppid === data.selfPid) why = 'tlscope\'s own';
              else if (holds.size >= EXEC_GATE_SLOTS) why = 'too many held at once';
              else {
                const st = fstatSync(ev.fd);
                dev = st.dev;
                ino = st.ino;
                path = readlinkSync(`/proc/self/fd/${ev.fd}`);
              }
            } catch (e) {
              why = `unreadable: ${e instanceof Error ? e.message : String(e)}`;
            }
            if (why !== undefined) {
              group.answer(ev.fd);
              closeFd(ev.fd);
              post({ type: 'passed', why });
              continue;
            }
            while (holds.has(nextSlot)) nextSlot = (nextSlot + 1) % EXEC_GATE_SLOTS;
            const slot = nextSlot;
            nextSlot = (nextSlot + 1) % EXEC_GATE_SLOTS;
            generation = (generation + 1) | 0 || 1;
            holds.set(slot, { slot, generation, fd: ev.fd, path, since: now, deadline: now + data.deadlineMs });
            post({ type: 'exec', slot, generation, fd: ev.fd, dev, ino, path, pid: ev.pid });
          }
        }
      }
      answerHolds(performance.now());
    }
  } finally {
    // Closing the group allows whatever still waits; nothing is ever left held.
    group.close();
    for (const h of holds.values()) closeFd(h.fd);
    closeFd(wakeFd);
  }
}

if (parentPort !== null && workerData !== undefined) run(workerData as ExecGateWorkerData);
