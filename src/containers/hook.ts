// SPDX-License-Identifier: Apache-2.0
/**
 * The container start hook: learns a container between its creation and its start, while
 * the runtime waits, so that every tracer is ready before the container's first instruction.
 *
 * How (the approach of Inspektor Gadget's container hook, written anew): an OCI runtime
 * (runc, crun) is exec'd with `create --bundle B --pid-file P ID`; it sets the container up,
 * leaves its first process waiting in its init, writes P and exits. Its caller (containerd's
 * shim for docker and containerd, conmon for podman) reads P and only then asks for the start.
 * A fanotify FAN_ACCESS_PERM mark on P's directory makes that read wait for our answer. In
 * the meantime the container is put in the index (name from the bundle's config.json, docker's
 * own record or conmon's command line; namespaces and cgroup from /proc/PID), every subscriber
 * of the index runs (packet sockets in its network namespace, probes on its TLS libraries,
 * BPF filter maps) and may return a Promise; the answer comes when all of them have settled,
 * or at the deadline.
 *
 * Bounds: the deadline is DEFAULT_HOOK_DEADLINE_MS (100 ms) from the read; it is enforced by
 * the worker thread (hook-worker.ts), which owns the fanotify group and never waits for the
 * main event loop: a main loop blocked for seconds delays a container start by the deadline
 * at most. A tlscope that dies (even by SIGKILL) closes the group, and the kernel allows
 * whatever was waiting at once. A start answered at the deadline is counted (`expired`).
 *
 * Not covered: runtimes other than runc/crun at the usual paths (kata, gVisor's runsc),
 * cri-o (uses the same path; untested here), rootless runtimes (their pid files live in the
 * user's runtime dir; works when tlscope is root), kernels without fanotify permission events
 * (CONFIG_FANOTIFY_ACCESS_PERMISSIONS): there the index learns from runtime events, after the
 * start, as before (doctor says so).
 */
import { Worker } from 'node:worker_threads';
import { errorMessage } from '../errors.js';
import { signalEventFd } from '../ebpf/fanotify.js';
import { containerdDisplayName } from './containerd.js';
import { HOOK_SLOTS, type HookStartFacts, type HookWorkerData, type HookWorkerMessage } from './hook-worker.js';
import { bundleOwner, conmonName, labelsFromAnnotations, readDockerRecord } from './oci.js';
import type { RuntimeContainer } from './types.js';

/** How long a container start waits for tlscope at most. */
export const DEFAULT_HOOK_DEADLINE_MS = 100;

/** Where OCI runtimes are looked for (the first of each inode is marked). */
export const RUNTIME_PATHS: readonly string[] = [
  '/usr/bin/runc', '/usr/sbin/runc', '/usr/local/bin/runc', '/usr/local/sbin/runc', '/bin/runc', '/sbin/runc',
  '/usr/bin/crun', '/usr/sbin/crun', '/usr/local/bin/crun', '/usr/local/sbin/crun', '/bin/crun',
  '/usr/libexec/podman/runc', '/usr/libexec/podman/crun', '/usr/lib/cri-o-runc/sbin/runc', '/run/torcx/unpack/docker/bin/runc',
];

export interface HookStats {
  /** Starts held (pid files read while watched). */
  readonly held: number;
  /** Answered because every subscriber was done. */
  readonly released: number;
  /** Answered at the deadline: the container ran before tlscope was ready for it. */
  readonly expired: number;
  /** Starts whose pid file was watched before runc's init exec was let go (race-free). */
  readonly guarded: number;
  /**
   * Watches placed when the pid file existed already: the start may have gone unheld (the
   * machine was too busy for the hook to read the runtime's command line in time).
   */
  readonly late: number;
  /** Time between the hold and its answer, each start (the last 4096). */
  readonly heldMs: readonly number[];
}

export interface ContainerHookOptions {
  /**
   * Called for every container about to start; the start waits until the returned Promise
   * settles (or the deadline). A rejection is reported through `onNote` and lets it go too.
   */
  readonly onStart: (container: RuntimeContainer) => Promise<void> | void;
  readonly deadlineMs?: number;
  readonly runtimePaths?: readonly string[];
  /** Tests only: see HookWorkerData. */
  readonly guardInitExec?: boolean;
  readonly settleDelayMs?: number;
  /** Things worth a line with -v (a config.json that could not be read, a subscriber that failed). */
  readonly onNote?: (message: string) => void;
  /** docker's data root (for the name of a container it is starting). */
  readonly dockerDataRoot?: string;
}

/** The RuntimeContainer the facts a hold gave describe, or undefined for an unknown layout. */
export function containerFromHook(facts: HookStartFacts, dockerDataRoot?: string): RuntimeContainer | undefined {
  const owner = bundleOwner(facts.create.bundle, facts.spec, facts.create.id);
  if (owner === undefined) return undefined;
  let labels: Record<string, string> = labelsFromAnnotations(facts.spec.annotations);
  let name = owner.id.slice(0, 12);
  let image = '';
  switch (owner.runtime) {
    case 'docker': {
      const rec = readDockerRecord(owner.id, dockerDataRoot);
      if (rec !== undefined) {
        name = rec.name || name;
        image = rec.image;
        labels = { ...rec.labels };
      }
      break;
    }
    case 'podman':
      name = conmonName(facts.readerArgv) ?? name;
      break;
    case 'containerd':
      name = containerdDisplayName(owner.id, labels);
      break;
    case 'cri-o':
      name = labels['io.kubernetes.container.name'] ?? name;
      break;
  }
  return {
    runtime: owner.runtime,
    id: owner.id,
    name,
    image,
    labels,
    pid: facts.pid,
    ...(owner.runtimeNamespace === undefined ? {} : { runtimeNamespace: owner.runtimeNamespace }),
    ...(facts.spec.process === undefined ? {} : { entry: facts.spec.process }),
  };
}

export class ContainerHook {
  private worker: Worker | undefined;
  private wakeFd = -1;
  private readonly control = new SharedArrayBuffer(4 * (1 + HOOK_SLOTS));
  private readonly controlView = new Int32Array(this.control);
  private readonly deadlineMs: number;
  private counts = { held: 0, released: 0, expired: 0, guarded: 0, late: 0 };
  private readonly heldMs: number[] = [];
  private marked: readonly string[] = [];
  private closed = false;
  private exited: Promise<void> | undefined;

  constructor(private readonly options: ContainerHookOptions) {
    this.deadlineMs = options.deadlineMs ?? DEFAULT_HOOK_DEADLINE_MS;
  }

  /** The runtime binaries being watched (empty: none is installed, nothing will be held). */
  get runtimes(): readonly string[] {
    return this.marked;
  }

  stats(): HookStats {
    return { ...this.counts, heldMs: [...this.heldMs] };
  }

  /** Starts the worker; resolves once the runtimes carry their marks. Rejects where fanotify cannot do it. */
  start(): Promise<void> {
    const data: HookWorkerData = {
      deadlineMs: this.deadlineMs,
      runtimePaths: this.options.runtimePaths ?? RUNTIME_PATHS,
      control: this.control,
      ...(this.options.guardInitExec === undefined ? {} : { guardInitExec: this.options.guardInitExec }),
      ...(this.options.settleDelayMs === undefined ? {} : { settleDelayMs: this.options.settleDelayMs }),
    };
    const worker = new Worker(new URL('./hook-worker.js', import.meta.url), { workerData: data });
    this.worker = worker;
    worker.unref(); // it never keeps tlscope alive; close() stops it
    this.exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    return new Promise((resolve, reject) => {
      let ready = false;
      worker.on('message', (m: HookWorkerMessage) => {
        switch (m.type) {
          case 'ready':
            this.wakeFd = m.wakeFd;
            this.marked = m.marked;
            ready = true;
            resolve();
            break;
          case 'fatal':
            reject(new Error(m.message));
            break;
          case 'start':
            this.counts.held++;
            this.onStart(m.slot, m.generation, m.facts);
            break;
          case 'answered':
            if (m.expired) this.counts.expired++;
            else this.counts.released++;
            if (this.heldMs.length >= 4096) this.heldMs.shift();
            this.heldMs.push(m.heldMs);
            break;
          case 'guarded':
            this.counts.guarded++;
            break;
          case 'watch':
            if (m.late) {
              this.counts.late++;
              this.options.onNote?.(`container ${m.id}: its pid file was written before the hook could watch it; its start may not have waited`);
            }
            break;
          case 'note':
            this.options.onNote?.(m.message);
            break;
        }
      });
      worker.once('error', (e) => {
        if (!ready) reject(e);
        else this.options.onNote?.(`container start hook stopped: ${errorMessage(e)}`);
      });
      worker.once('exit', (code) => {
        this.wakeFd = -1; // closed by the worker: never write to whatever reuses the number
        if (!ready) reject(new Error(`container start hook ended (${code}) before it was ready`));
      });
    });
  }

  private onStart(slot: number, generation: number, facts: HookStartFacts): void {
    const release = (): void => {
      if (this.closed || this.wakeFd < 0) return;
      Atomics.store(this.controlView, 1 + slot, generation);
      signalEventFd(this.wakeFd);
    };
    let container: RuntimeContainer | undefined;
    try {
      container = containerFromHook(facts, this.options.dockerDataRoot);
    } catch (e) {
      this.options.onNote?.(`container ${facts.create.id}: ${errorMessage(e)}`);
    }
    if (container === undefined) {
      release();
      return;
    }
    let result: Promise<void> | void;
    try {
      result = this.options.onStart(container);
    } catch (e) {
      this.options.onNote?.(`container ${container.name}: ${errorMessage(e)}`);
      release();
      return;
    }
    if (result === undefined) {
      release();
      return;
    }
    // The worker answers at the deadline anyway; this timer only stops waiting for a Promise that never settles.
    const timer = setTimeout(release, this.deadlineMs);
    timer.unref();
    result.then(
      () => {
        clearTimeout(timer);
        release();
      },
      (e: unknown) => {
        clearTimeout(timer);
        this.options.onNote?.(`container ${container?.name}: ${errorMessage(e)}`);
        release();
      },
    );
  }

  /** Stops the worker; anything it still holds is allowed as its fanotify group closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.worker === undefined) return;
    // unref'd while it runs; waited for now, or the process would end with this await pending
    this.worker.ref();
    Atomics.store(this.controlView, 0, 1);
    if (this.wakeFd >= 0) signalEventFd(this.wakeFd);
    const timer = setTimeout(() => void this.worker?.terminate(), 2000);
    timer.unref();
    await this.exited;
    clearTimeout(timer);
  }
}
