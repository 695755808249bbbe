// SPDX-License-Identifier: Apache-2.0
/**
 * A session runs one gadget for one front end (the CLI, the node agent, the web UI), in
 * process: it checks the parameters, owns start, stop and the timeout, the container index,
 * the scope (and late binding), enrichment as ordered operators, filtering, and it yields
 * typed event batches with stats, warnings and misses as data. It never prints and imports
 * nothing from a front end.
 *
 * Event path: gadget → its stages (e.g. --http pairing) → attribution by mount namespace
 * (late binding: see late-binding.ts) → scope → container/pod enrichment → operators →
 * --filter → predicate → messages (or a synchronous sink).
 */
import { existsSync } from 'node:fs';
import { ContainerIndex, type ContainerIndexEvent } from '../containers/index.js';
import { hasContainerFilter, matches, type ContainerSelector } from '../containers/selector.js';
import type { ContainerInfo } from '../containers/types.js';
import { errorMessage, PermissionError, UsageError } from '../errors.js';
import { isPrivileged } from '../ebpf/privileges.js';
import { COMMAND_CAPABILITIES, requireCapabilities } from '../gadgets/catalog.js';
import type { CommonEvent, CommonField } from '../fields/common.js';
import { parseFilter } from '../fields/filter.js';
import type { GadgetContext, GadgetDefinition, GadgetInstance, ParamValues, ScopeAdapter, Stage } from '../gadgets/definition.js';
import { NetnsScope } from '../gadgets/netns-scope.js';
import { parseParams } from '../gadgets/params.js';
import { DEFAULT_HOLD, LateBinding, type HoldBounds } from './late-binding.js';

export type SessionMessage<E> =
  | { type: 'events'; events: E[] }
  | { type: 'warning'; code: string; text: string }
  /** said as it happens; verbose ones are for -v (what gets traced) */
  | { type: 'info'; code: string; text: string; verbose: boolean }
  | { type: 'stats'; stats: SessionStats; final: boolean };

export interface SessionProblem {
  code: string;
  text: string;
  hint?: string;
}

export interface SessionStats {
  /** events yielded (or handed to the sink) */
  shown: number;
  /** events the kernel could not queue: ring buffer full */
  lost: number;
  /** other events not shown (or shown without attribution), reason → count */
  misses: Record<string, number>;
  /** attributed, but outside the scope */
  outOfScope: number;
  /** dropped by --filter, the query or the predicate */
  filtered: number;
  /** waiting for late binding now */
  held: number;
  /** -c names that never appeared */
  missingContainers: string[];
  /** why the run did not do what was asked, for the front end to turn into an exit status */
  problems: SessionProblem[];
}

/** Enrichment after the container/pod one, in order (e.g. the node name, in the agent). */
export interface EnrichOperator<E> {
  name: string;
  enrich(e: E): void;
}

export interface SessionOptions<E> {
  /** raw (text from flags) or typed values by parameter name; checked against the definition */
  params?: Readonly<Record<string, unknown>>;
  scope?: ContainerSelector;
  /** Inspektor Gadget's --filter syntax, over the gadget's fields */
  filter?: string;
  /** extra in-process filter (the CEL query compiles to one) */
  predicate?: (e: E) => boolean;
  operators?: readonly EnrichOperator<E>[];
  timeoutMs?: number;
  signal?: AbortSignal;
  /** shared index (the agent runs several sessions on one); the session then does not close it */
  index?: ContainerIndex;
  /** with -v: verbose info messages and the gadget's own details */
  verbose?: boolean;
  /** the fields as -o json wants them (no preview columns) */
  view?: { json?: boolean };
  /**
   * Synchronous delivery: batches go here instead of into 'events' messages. Gadgets that
   * hand out views of their ring (capture's packets) need one; events are valid only during
   * the call. flush is called after each drain that delivered something.
   */
  sink?: { events(batch: E[]): void; flush?(): void };
  /** late binding bounds (default 2 s, 10000 events) */
  hold?: Partial<HoldBounds>;
}

const UNATTRIBUTED = { runtimeName: '?', containerId: '?', containerName: '?' } as const;
const STATS_INTERVAL_MS = 1000;
const HOLD_TICK_MS = 100;
const INDEX_CLOSE_MS = 2000;
/** How much longer than --timeout the start (index, programs, probes) may take before the session gives up. */
const START_BOUND_MS = 60_000;
const WAKE = Symbol('wake');

/** unknown: `stale` is the indexed container whose mount namespace inode the event carried, with another network namespace */
type Attribution = { kind: 'host' } | { kind: 'container'; c: ContainerInfo } | { kind: 'unknown'; mntns: number; stale?: ContainerInfo };

/** A process id that is not running is a usage error, not a silent empty trace. */
export function checkPids(selector: ContainerSelector, procRoot = '/proc'): void {
  for (const pid of selector.pids ?? []) {
    if (!existsSync(`${procRoot}/${pid}`)) throw new UsageError(`-p ${pid}: no such process`, 'give the host pid of a running process (ps -e, pgrep NAME)');
  }
}

export class Session<E = CommonEvent> implements AsyncIterable<SessionMessage<E>> {
  readonly fields: CommonField<E>[];
  readonly params: ParamValues;
  readonly selector: ContainerSelector;
  private readonly keep: (e: E) => boolean;
  private readonly stages: Stage<any, any>[];
  private index!: ContainerIndex;
  private readonly ownIndex: boolean;
  private readonly controller = new AbortController();
  private readonly late: LateBinding<E>;
  private instance: GadgetInstance<any> | undefined;
  private scopeAdapter: ScopeAdapter | undefined;
  private readonly queue: SessionMessage<E>[] = [];
  private wakePromise: Promise<void> | undefined;
  private wakeResolve: (() => void) | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private armTimeout: () => void = () => undefined;
  /** The start hook's counters when this session's index was ready (its misses are counted from there). */
  private hookBase: { expired: number; late: number } | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly missing: Set<string>;
  private readonly problems: SessionProblem[] = [];
  private readonly warned = new Set<string>();
  private readonly counts = { shown: 0, outOfScope: 0, filtered: 0, unattributed: 0, unattributedDropped: 0 };
  private lostSeen = 0;
  private stopping: Promise<SessionStats> | undefined;
  private closed = false;
  private finished = false;
  private iterating = false;
  private finalStats: SessionStats | undefined;
  private hostMnt: number | undefined;
  private readonly hasPidFilter: boolean;
  /** unattributed events are shown (as "?") only when the scope names no container */
  private readonly showUnattributed: boolean;

  private constructor(
    private readonly def: GadgetDefinition<E, any>,
    private readonly opts: SessionOptions<E>,
    params: ParamValues,
    selector: ContainerSelector,
  ) {
    this.params = params;
    this.selector = selector;
    this.fields = def.fields(params, opts.view);
    this.keep = parseFilter(this.fields, opts.filter);
    this.stages = def.stages?.(params) ?? [];
    this.ownIndex = opts.index === undefined;
    this.late = new LateBinding<E>(opts.hold);
    this.missing = new Set(selector.containerNames ?? []);
    this.hasPidFilter = (selector.pids?.length ?? 0) > 0;
    this.showUnattributed = !hasContainerFilter(selector) && selector.host !== true;
  }

  /**
   * Checks the parameters and scope (usage errors before anything needs root), loads and
   * attaches the gadget, and starts following the scope. Events flow once iterated.
   */
  static async start<E>(def: GadgetDefinition<E, any>, opts: SessionOptions<E> = {}): Promise<Session<E>> {
    const { params, selector } = Session.check(def, opts);
    const s = new Session<E>(def, opts, params, selector);
    await s.begin();
    return s;
  }

  /**
   * What start checks before it loads anything: parameters, scope (pids that do not exist),
   * fields and filter (usage errors, exit 2), then privileges. Throws; returns the checked values.
   */
  static check<E>(def: GadgetDefinition<E, any>, opts: Pick<SessionOptions<E>, 'params' | 'scope' | 'filter' | 'timeoutMs' | 'view'>): { params: ParamValues; selector: ContainerSelector } {
    const params = parseParams(def.params, opts.params ?? {});
    const selector = opts.scope ?? {};
    def.validate?.(params, selector);
    checkPids(selector);
    if (opts.timeoutMs !== undefined && !(opts.timeoutMs > 0)) throw new UsageError(`the timeout must be positive, got ${opts.timeoutMs} ms`);
    parseFilter(def.fields(params, opts.view), opts.filter);
    // a gadget with kernel requirements needs root (or the capabilities); a kernel-free one does not
    if (def.requirements.length > 0) {
      // exactly what this gadget lacks (measured per command, see COMMAND_CAPABILITIES)
      if (def.name in COMMAND_CAPABILITIES) requireCapabilities(def.name as keyof typeof COMMAND_CAPABILITIES);
      else if (!isPrivileged()) throw new PermissionError(`tlscope ${def.name} needs root`);
    }
    return { params, selector };
  }

  private async begin(): Promise<void> {
    this.index = this.opts.index ?? new ContainerIndex({ onWarning: (w) => this.warn('runtime', w.kind === 'runtime' ? `${w.runtime}: ${errorMessage(w.error)}` : errorMessage(w.error)) });
    const { signal, timeoutMs } = this.opts;
    const onAbort = (): void => void this.stop();
    if (signal !== undefined) {
      if (signal.aborted) this.controller.abort();
      else signal.addEventListener('abort', onAbort, { once: true });
      this.controller.signal.addEventListener('abort', () => signal.removeEventListener('abort', onAbort), { once: true });
    }
    // The timeout counts from the moment the session listens (or begins waiting for the named
    // containers), not from the process's start: loading the programs can take seconds on a busy
    // host, and `--timeout 1` means one second of tracing. The start itself is bounded too.
    let armed = false;
    this.armTimeout = (): void => {
      if (armed || timeoutMs === undefined) return;
      armed = true;
      clearTimeout(startBound);
      this.timers.push(setTimeout(onAbort, timeoutMs));
    };
    const startBound = timeoutMs === undefined ? undefined : setTimeout(onAbort, timeoutMs + START_BOUND_MS);
    if (startBound !== undefined) this.timers.push(startBound);
    const stopped = new Promise<void>((resolve) => {
      if (this.controller.signal.aborted) resolve();
      else this.controller.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    try {
      const ctx = this.gadgetContext();
      // Network gadgets watching the host or pids need no index to find them: listen at once.
      let early = false;
      if (this.def.processEvents === false) {
        this.instance = await this.def.open(this.params, ctx);
        early = this.instance.scope.kind === 'netns' && this.instance.scope.early === true;
        if (early) {
          this.followScope();
          this.armTimeout();
        }
      }
      await Promise.race([this.index.start(), stopped]); // the timeout and Ctrl-C also while runtimes are slow
      this.hostMnt = this.index.hostNamespaces?.mnt;
      this.hookBase = this.index.hookStatus?.().stats;
      for (const c of this.index.all()) this.missing.delete(c.name);
      this.unsubscribe = this.index.subscribe((e) => this.onIndex(e));
      if (this.missing.size > 0) {
        const names = [...this.missing].join(', ');
        this.armTimeout();
        this.info('waiting', `waiting for container${this.missing.size > 1 ? 's' : ''} ${names} to start${timeoutMs === undefined ? ' (Ctrl-C to stop)' : ` (up to ${Math.round(timeoutMs / 1000)} s)`}`);
      }
      this.instance ??= await this.def.open(this.params, ctx);
      if (!early && !this.controller.signal.aborted) this.followScope();
      this.instance.indexReady?.();
      this.armTimeout();
      if (this.instance.startedText !== undefined) this.info('started', this.instance.startedText(), true);
    } catch (e) {
      this.controller.abort();
      for (const t of this.timers) clearTimeout(t);
      this.unsubscribe?.();
      this.scopeAdapter?.stop();
      await this.instance?.close().catch(() => undefined);
      if (this.ownIndex) await this.index.close();
      throw e;
    }
    if (this.controller.signal.aborted) {
      void this.stop();
      return;
    }
    const tick = setInterval(() => this.tick(), STATS_INTERVAL_MS);
    tick.unref();
    this.timers.push(tick);
    if (this.def.processEvents) {
      const hold = setInterval(() => this.expireHeld(Date.now()), HOLD_TICK_MS);
      hold.unref();
      this.timers.push(hold);
    }
  }

  private gadgetContext(): GadgetContext<any> {
    return {
      signal: this.controller.signal,
      selector: this.selector,
      index: this.index,
      verbose: this.opts.verbose === true,
      warn: (code, text) => this.warn(code, text),
      note: (text) => this.info('note', text, true),
      info: (code, text) => this.info(code, text),
      push: (batch) => this.handle(batch as unknown[]),
      flush: () => this.opts.sink?.flush?.(),
      stop: () => void this.stop(),
      problem: (p) => this.problems.push(p),
    };
  }

  private followScope(): void {
    const inst = this.instance as GadgetInstance<unknown>;
    const warn = (text: string): void => {
      if (inst.scope.kind === 'netns' && text.startsWith('cannot watch')) inst.scope.onWatchError?.(text);
      this.warn('scope', text);
    };
    this.scopeAdapter = inst.scope.kind === 'netns'
      ? new NetnsScope(inst.scope.watcher, this.selector, this.index, warn)
      : inst.scope.follow(this.selector, this.index, warn, this.opts.verbose ? (text) => this.info('note', text, true) : undefined);
    this.scopeAdapter.start();
  }

  // ---- messages ----

  private enqueue(m: SessionMessage<E>): void {
    this.queue.push(m);
    const r = this.wakeResolve;
    this.wakePromise = undefined;
    this.wakeResolve = undefined;
    r?.();
  }

  private wakeup(): Promise<void> {
    this.wakePromise ??= new Promise<void>((resolve) => { this.wakeResolve = resolve; });
    return this.wakePromise;
  }

  private warn(code: string, text: string): void {
    if (this.warned.has(text)) return;
    this.warned.add(text);
    this.enqueue({ type: 'warning', code, text });
  }

  private info(code: string, text: string, verbose = false): void {
    if (verbose && !this.opts.verbose) return;
    this.enqueue({ type: 'info', code, text, verbose });
  }

  private tick(): void {
    const lost = this.instance?.lost() ?? 0;
    if (lost > this.lostSeen) {
      this.enqueue({ type: 'warning', code: 'lost', text: `${lost - this.lostSeen} events lost in the last second (${lost} in all): the ring buffer was full` });
      this.lostSeen = lost;
    }
    if (this.iterating) this.enqueue({ type: 'stats', stats: this.stats(), final: false });
  }

  // ---- the event path ----

  private onIndex(e: ContainerIndexEvent): void {
    if (e.type === 'removed') return;
    this.missing.delete(e.container.name);
    if (this.late.waiting(e.container.mntns)) this.emit(this.scopeAll(this.late.release(e.container.mntns)));
  }

  /** A batch from the gadget (pulled from its events, or pushed). */
  private handle(raw: unknown[]): void {
    let batch: unknown[] = raw;
    for (const st of this.stages) batch = st.process(batch);
    if (batch.length === 0) return;
    if (!this.def.processEvents) {
      this.emit(batch as E[]);
      return;
    }
    const now = Date.now();
    const out: E[] = [];
    for (const e of batch as E[]) {
      const a = this.attribute(e);
      if (a.kind === 'unknown') {
        // the index may learn it from the process (its cgroup) on its next rescan
        const pid = (e as unknown as CommonEvent).proc.pid;
        if (pid > 0) {
          if (a.stale !== undefined) this.index.recheck(a.stale, pid);
          else this.index.byPid(pid);
        }
        for (const x of this.late.hold(e, a.mntns, now)) this.unattributed(x, out);
        continue;
      }
      this.scopeOne(e, a, out);
    }
    this.emit(out);
  }

  private attribute(x: E): Attribution {
    const e = x as unknown as CommonEvent;
    const mntns = e.proc.mntns;
    // no process behind it (a hello received from another host): as today, the host's side
    if (mntns === undefined || mntns === 0 || e.proc.pid <= 0) return { kind: 'host' };
    if (mntns === this.hostMnt) return { kind: 'host' };
    const c = this.index.byMntns(mntns, e.timestamp);
    // A container's processes share its network namespace. Mount namespace inodes are recycled
    // within milliseconds: an event of a new container that the index does not know yet can
    // carry the inode of one that has just exited (seen: a pod on another node of the test
    // cluster, same kernel, named as this node's pod). Its network namespace tells them apart:
    // it waits as unknown rather than take the old one's name.
    const otherNet = c !== undefined && e.proc.netns !== undefined && e.proc.netns !== 0 && c.netns !== 0 && e.proc.netns !== c.netns;
    if (c !== undefined && !otherNet) return { kind: 'container', c };
    if (this.hostMnt === undefined) return { kind: 'host' }; // no host namespaces known: nothing to hold for
    return otherNet ? { kind: 'unknown', mntns, stale: c } : { kind: 'unknown', mntns };
  }

  private scopeAll(events: E[]): E[] {
    const out: E[] = [];
    for (const e of events) {
      const a = this.attribute(e);
      if (a.kind === 'unknown') this.unattributed(e, out);
      else this.scopeOne(e, a, out);
    }
    return out;
  }

  private scopeOne(x: E, a: Attribution, out: E[]): void {
    const e = x as unknown as CommonEvent;
    const pid = e.proc.pid > 0 ? e.proc.pid : undefined;
    if (pid === undefined && this.hasPidFilter) {
      this.counts.outOfScope++;
      return;
    }
    const c = a.kind === 'container' ? a.c : undefined;
    if (!matches(this.selector, c, pid)) {
      this.counts.outOfScope++;
      return;
    }
    if (c !== undefined) {
      e.runtime = { runtimeName: c.runtime, containerId: c.id, containerName: c.name, containerImageName: c.image };
      if (c.k8s !== undefined) e.k8s = { namespace: c.k8s.namespace, podName: c.k8s.podName, containerName: c.k8s.containerName, podUid: c.k8s.podUid };
    }
    this.finishOne(x, out);
  }

  /** Held past the bounds, or at the end: never the host's. */
  private unattributed(x: E, out: E[]): void {
    const e = x as unknown as CommonEvent;
    const pid = e.proc.pid > 0 ? e.proc.pid : undefined;
    if (!this.showUnattributed || (pid !== undefined && this.hasPidFilter && !this.selector.pids?.includes(pid))) {
      this.counts.unattributedDropped++;
      return;
    }
    this.counts.unattributed++;
    e.runtime = { ...UNATTRIBUTED };
    this.finishOne(x, out);
  }

  private finishOne(e: E, out: E[]): void {
    for (const op of this.opts.operators ?? []) op.enrich(e);
    if (!this.keep(e) || (this.opts.predicate !== undefined && !this.opts.predicate(e))) {
      this.counts.filtered++;
      return;
    }
    out.push(e);
  }

  private expireHeld(now: number): void {
    if (this.late.size === 0) return;
    const out: E[] = [];
    for (const e of this.late.expire(now)) {
      // one last look: the index may have learned it without an event we matched
      const a = this.attribute(e);
      if (a.kind === 'unknown') this.unattributed(e, out);
      else this.scopeOne(e, a, out);
    }
    this.emit(out);
  }

  private emit(out: E[]): void {
    if (out.length === 0) return;
    this.counts.shown += out.length;
    if (this.opts.sink !== undefined) this.opts.sink.events(out);
    else this.enqueue({ type: 'events', events: out });
  }

  // ---- stats and stop ----

  stats(): SessionStats {
    if (this.finalStats !== undefined) return this.finalStats;
    const misses: Record<string, number> = { ...(this.instance?.misses?.() ?? {}) };
    if (this.counts.unattributed > 0) misses['unattributed'] = this.counts.unattributed;
    if (this.counts.unattributedDropped > 0) misses['unattributed, not in scope'] = this.counts.unattributedDropped;
    // The container start hook's own misses since this session began (the index may be shared).
    const hook = this.index?.hookStatus?.().stats;
    if (hook !== undefined && this.hookBase !== undefined) {
      const expired = hook.expired - this.hookBase.expired;
      const late = hook.late - this.hookBase.late;
      if (expired > 0) misses[`container start${expired === 1 ? '' : 's'} let go at the start hook's deadline (the workload may have run before its probes)`] = expired;
      if (late > 0) misses[`container start${late === 1 ? '' : 's'} the start hook reached late (possibly not held)`] = late;
    }
    return {
      shown: this.counts.shown,
      lost: this.instance?.lost() ?? 0,
      misses,
      outOfScope: this.counts.outOfScope,
      filtered: this.counts.filtered,
      held: this.late.size,
      missingContainers: [...this.missing],
      problems: [
        ...this.problems,
        ...(this.missing.size > 0 ? [{
          code: 'ERR_NO_CONTAINER',
          text: `container${this.missing.size > 1 ? 's' : ''} ${[...this.missing].join(', ')} never appeared`,
          hint: 'check the name with `tlscope containers` (or docker ps / ctr -n k8s.io containers ls / podman ps)',
        }] : []),
      ],
    };
  }

  /** The late binding bounds in use. */
  get holdBounds(): HoldBounds {
    return this.late.bounds ?? DEFAULT_HOLD;
  }

  /** The gadget's own words for the -v summary, and its stages'. */
  details(): string | undefined {
    const parts = [this.instance?.details?.(), ...this.stages.map((s) => s.details?.())].filter((x): x is string => x !== undefined && x !== '');
    return parts.length ? parts.join('; ') : undefined;
  }

  /** What the stages say at the end of every run, -v or not (e.g. how much --redact masked). */
  summaries(): string[] {
    return this.stages.map((s) => s.summary?.()).filter((x): x is string => x !== undefined && x !== '');
  }

  /** The gadget's own counters (capture: captured, received, dropped), when it has them. */
  gadgetCounters(): Record<string, number> {
    return this.instance?.counters?.() ?? {};
  }

  /** Detaches everything; the iterator ends after the final stats. Safe to call twice. */
  stop(): Promise<SessionStats> {
    this.stopping ??= (async () => {
      this.controller.abort();
      for (const t of this.timers) clearTimeout(t);
      this.unsubscribe?.();
      this.scopeAdapter?.stop();
      try {
        await this.instance?.close();
      } finally {
        this.closed = true;
        // pulled gadgets end their iteration after close(); the iterator finishes then
        if (!this.iterating || this.instance?.events === undefined) this.finish();
        this.enqueue({ type: 'info', code: 'stopped', text: '', verbose: true });
      }
      await this.finishedPromise;
      if (this.ownIndex) await this.closeIndex();
      return this.stats();
    })();
    return this.stopping;
  }

  /**
   * Closes the index with a deadline: a close that never settles (seen with the start hook's
   * close, which holds no handle, so the process would end with its exit status lost) must not
   * keep the session from ending. The timer is ref'd on purpose.
   */
  private async closeIndex(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), INDEX_CLOSE_MS); });
    const r = await Promise.race([this.index.close().then(() => 'closed' as const), late]);
    clearTimeout(timer);
    void r; // late: the run's result stands (the final stats were taken before)
  }

  private finishedResolve: (() => void) | undefined;
  private readonly finishedPromise = new Promise<void>((resolve) => { this.finishedResolve = resolve; });

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    const out: E[] = [];
    let tail: unknown[] = [];
    for (const st of this.stages) tail = [...st.process(tail), ...(st.flush?.() ?? [])];
    if (tail.length > 0) for (const e of this.scopeAll(tail as E[])) out.push(e);
    for (const e of this.late.drain()) {
      const a = this.attribute(e);
      if (a.kind === 'unknown') this.unattributed(e, out);
      else this.scopeOne(e, a, out);
    }
    this.emit(out);
    this.opts.sink?.flush?.();
    this.finalStats = this.stats();
    this.enqueue({ type: 'stats', stats: this.finalStats, final: true });
    this.finishedResolve?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<SessionMessage<E>> {
    if (this.iterating) throw new Error('a session is iterated once');
    this.iterating = true;
    const events = this.instance?.events?.[Symbol.asyncIterator]();
    let next = this.finished ? undefined : events?.next();
    try {
      yield* this.loop(events, next);
    } finally {
      this.iterating = false;
      if (this.closed) this.finish();
    }
  }

  private async *loop(events: AsyncIterator<unknown> | undefined, first: Promise<IteratorResult<unknown>> | undefined): AsyncGenerator<SessionMessage<E>> {
    let next = first;
    for (;;) {
      while (this.queue.length > 0) {
        const m = this.queue.shift() as SessionMessage<E>;
        if (m.type === 'info' && m.code === 'stopped') continue;
        yield m;
        if (m.type === 'stats' && m.final) return;
      }
      if (this.finished && this.queue.length === 0) return;
      if (next === undefined && this.closed) {
        this.finish();
        continue;
      }
      const wake = this.wakeup();
      if (next === undefined) {
        await wake;
        continue;
      }
      const r = await Promise.race([next, wake.then(() => WAKE)]);
      if (typeof r === 'symbol') continue;
      if (r.done === true) {
        next = undefined;
        if (this.closed) this.finish();
        else void this.stop(); // the gadget ended by itself (its signal)
        continue;
      }
      next = events?.next();
      this.handle(r.value as unknown[]);
    }
  }
}
