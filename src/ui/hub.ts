// SPDX-License-Identifier: Apache-2.0
/**
 * Where the sessions' messages meet the pages: entries go into the ring and out to every open
 * view (a page's stream with its query). A view that reads too slowly gets its oldest unsent
 * entries dropped, and counted, instead of growing the server's memory.
 */
import type { CommonEvent } from '../fields/common.js';
import type { Field } from '../fields/field.js';
import type { TlsHttpEvent } from '../gadgets/tls/http.js';
import type { Redactor } from '../protocols/redact.js';
import { EntryMaker } from './entries.js';
import type { Entry, UiSessionStats, UiStats } from './protocol.js';
import { compileViewQuery, type GadgetFields, type ViewQuery } from './query.js';
import { EntryRing } from './ring.js';

/** The engine's SessionMessage, as far as the UI reads it. */
export type SourceMessage<E> =
  | { type: 'events'; events: E[] }
  | { type: 'warning'; code: string; text: string }
  | { type: 'info'; code: string; text: string }
  | { type: 'stats'; stats: UiSessionStats; final?: boolean };

export interface SourceSpec<E extends CommonEvent> {
  /** gadget name, e.g. 'trace tls' */
  gadget: string;
  fields: readonly Field<E>[];
  /** fields of the HTTP exchanges paired from this gadget's TLS calls */
  httpFields?: readonly Field<TlsHttpEvent>[];
  /** masks the headers of the exchanges this hub pairs (HTTP/2's are compressed in the raw calls) */
  redactor?: Redactor;
  messages: AsyncIterable<SourceMessage<E>>;
  /** the node of each event (a cluster's: its k8s.node; its pids are that node's, not this host's); default: the hub's node */
  nodeOf?: (e: E) => string | undefined;
}

/** Where a view writes; false: the socket's buffer is full, wait for `drain`. */
export interface ViewSink {
  write(entries: Entry[]): boolean;
}

export interface ViewOptions {
  query: ViewQuery | undefined;
  /** unsent entries kept while the page is slow (default 5000) */
  maxQueued?: number;
}

export class View {
  matched = 0;
  queryFiltered = 0;
  dropped = 0;
  private queue: Entry[] = [];
  private blocked = false;
  private readonly maxQueued: number;

  constructor(private readonly sink: ViewSink, readonly opts: ViewOptions) {
    this.maxQueued = opts.maxQueued ?? 5000;
  }

  offer(e: Entry): void {
    if (this.opts.query !== undefined && !this.opts.query.match(e)) {
      this.queryFiltered++;
      return;
    }
    this.matched++;
    this.queue.push(e);
    if (this.queue.length > this.maxQueued) {
      const over = this.queue.length - this.maxQueued;
      this.queue.splice(0, over);
      this.dropped += over;
    }
  }

  /** Sends what is queued unless the sink is still full. */
  flush(): void {
    if (this.blocked || this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    if (!this.sink.write(batch)) this.blocked = true;
  }

  /** The sink drained: send on. */
  drained(): void {
    this.blocked = false;
    this.flush();
  }

  get queued(): number {
    return this.queue.length;
  }
}

export interface HubOptions {
  ring: EntryRing;
  node: string | undefined;
  /** what the page's header names instead of the node (a cluster: its context) */
  label?: string;
  /** ms between sends to the views (default 100) */
  flushMs?: number;
}

export class UiHub {
  readonly ring: EntryRing;
  private readonly views = new Set<View>();
  private readonly sessions: Record<string, UiSessionStats> = {};
  private readonly warnings: string[] = [];
  private readonly notes: string[] = [];
  private readonly started = Date.now();
  private readonly timer: NodeJS.Timeout;
  readonly gadgets: string[] = [];
  /** each gadget's fields: the names a view's query sees */
  readonly fieldSets: GadgetFields[] = [];
  /** what the page's header names instead of the node (a cluster: its context) */
  label: string | undefined;

  constructor(private readonly opts: HubOptions) {
    this.ring = opts.ring;
    this.label = opts.label;
    this.timer = setInterval(() => this.flush(), opts.flushMs ?? 100);
    this.timer.unref();
  }

  /** what the page's header names */
  get node(): string | undefined {
    return this.label ?? this.opts.node;
  }

  /** Reads a session's messages until they end. */
  async run<E extends CommonEvent>(spec: SourceSpec<E>): Promise<void> {
    this.register(spec);
    // one maker (HTTP pairing state) per node: pids and connections are per node
    const makers = new Map<string | undefined, EntryMaker<E>>();
    const makerOf = (node: string | undefined): EntryMaker<E> => {
      let m = makers.get(node);
      if (m === undefined) makers.set(node, (m = new EntryMaker<E>(spec.gadget, spec.fields, node, spec.httpFields, spec.redactor, spec.nodeOf !== undefined)));
      return m;
    };
    const nodeOf = spec.nodeOf;
    for await (const m of spec.messages) {
      if (m.type === 'events') {
        if (nodeOf === undefined) this.add(makerOf(this.opts.node).make(m.events));
        else {
          // runs of one node's events, in the batch's (time) order
          let i = 0;
          while (i < m.events.length) {
            const node = nodeOf(m.events[i] as E);
            let j = i + 1;
            while (j < m.events.length && nodeOf(m.events[j] as E) === node) j++;
            this.add(makerOf(node).make(m.events.slice(i, j)));
            i = j;
          }
        }
      } else if (m.type === 'stats') this.sessions[spec.gadget] = m.stats;
      else if (m.type === 'info') this.note(`${spec.gadget}: ${m.text}`);
      else this.warn(`${spec.gadget}: ${m.text}`);
    }
  }

  /** Makes a gadget's fields known to queries (run() does it; call it before, to check a query early). */
  register<E extends CommonEvent>(spec: Pick<SourceSpec<E>, 'gadget' | 'fields' | 'httpFields'>): void {
    if (this.gadgets.includes(spec.gadget)) return;
    this.gadgets.push(spec.gadget);
    this.fieldSets.push({ gadget: spec.gadget, fields: spec.fields, ...(spec.httpFields === undefined ? {} : { httpFields: spec.httpFields }) });
  }

  /** A view's query over the registered gadgets' fields (CEL, as --query); throws QueryError. */
  compile(text: string): ViewQuery {
    return compileViewQuery(text, this.fieldSets);
  }

  warn(text: string): void {
    if (this.warnings.includes(text)) return;
    this.warnings.push(text);
    if (this.warnings.length > 20) this.warnings.shift();
  }

  note(text: string): void {
    this.notes.push(text);
    if (this.notes.length > 20) this.notes.shift();
  }

  add(pending: ReturnType<EntryMaker<CommonEvent>['make']>): void {
    for (const p of pending) {
      const e = this.ring.push(p.entry, p.detail, p.bytes);
      for (const v of this.views) v.offer(e);
    }
  }

  /** A new view, first given the kept entries after `afterSeq` that its query matches. */
  open(sink: ViewSink, opts: ViewOptions, afterSeq = 0): View {
    const v = new View(sink, opts);
    for (const item of this.ring.values(afterSeq)) v.offer(item.entry);
    this.views.add(v);
    v.flush();
    return v;
  }

  close(v: View): void {
    this.views.delete(v);
  }

  flush(): void {
    for (const v of this.views) v.flush();
  }

  stats(view?: View): UiStats {
    return {
      sessions: { ...this.sessions },
      ring: { size: this.ring.size, capacity: this.ring.capacity, evicted: this.ring.evicted },
      view: { matched: view?.matched ?? 0, queryFiltered: view?.queryFiltered ?? 0, dropped: view?.dropped ?? 0 },
      warnings: [...this.warnings],
      notes: [...this.notes],
      uptimeMs: Date.now() - this.started,
    };
  }

  stop(): void {
    clearInterval(this.timer);
    this.views.clear();
  }
}
