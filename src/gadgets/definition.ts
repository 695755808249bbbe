// SPDX-License-Identifier: Apache-2.0
/**
 * How a gadget declares itself: its parameters (from which the CLI's flags and --help, the
 * agent's request fields and the UI's controls are made), its fields, its kernel requirements
 * (doctor) and its lifecycle (open → an instance). A session (src/session/) runs it.
 */
import type { ContainerIndex } from '../containers/index.js';
import type { ContainerSelector } from '../containers/selector.js';
import type { FeatureName } from '../ebpf/features.js';
import type { CommonField } from '../fields/common.js';

export type ParamValue = string | number | boolean | readonly string[] | undefined;
/** Checked parameter values by name (absent: not given and no default). */
export type ParamValues = Readonly<Record<string, ParamValue>>;

export interface GadgetParam {
  /** CLI flag name (--NAME), agent request key, UI control id */
  name: string;
  /** size: bytes, written 4096, 64k or 4m */
  type: 'string' | 'int' | 'bool' | 'list' | 'size';
  /** one-letter CLI alias */
  short?: string;
  /** value placeholder in --help, e.g. MIB */
  arg?: string;
  default?: string | number | boolean | readonly string[];
  min?: number;
  max?: number;
  /** allowed values (string, or each element of a list) */
  choices?: readonly string[];
  /** what one choice is called in errors: "hook", "TLS stack" (default "value") */
  choiceNoun?: string;
  description: string;
  /** not a CLI flag of its own (the front end sets it: capture's expression is its positionals) */
  hidden?: boolean;
  /** further checks on a parsed value; throws UsageError */
  check?(v: ParamValue): void;
}

/** Keeps a gadget's kernel side in step with the scope as processes and containers come and go. */
export interface ScopeAdapter {
  start(): void;
  stop(): void;
}

/** Something that adds and removes packet sockets per network namespace (driven by NetnsScope). */
export interface NetnsWatcher {
  watchNetns(nsPath?: string): number;
  unwatchNetns(inode: number): void;
}

/**
 * How an instance's kernel side follows the scope: by network namespace (the session drives a
 * NetnsScope), or by itself (e.g. uprobes per process: it returns its own adapter).
 */
export type ScopeFollowing =
  | {
    kind: 'netns';
    watcher: NetnsWatcher;
    /** start before the container index has listed the runtimes (host, pids) */
    early?: boolean;
    /** a namespace could not be watched (also said as a warning) */
    onWatchError?(text: string): void;
  }
  | { kind: 'self'; follow(selector: ContainerSelector, index: ContainerIndex, warn: (text: string) => void, note?: (text: string) => void): ScopeAdapter };

/** What a session hands a gadget when it opens it. */
export interface GadgetContext<E = unknown> {
  /** aborted when the session stops */
  readonly signal: AbortSignal;
  readonly selector: ContainerSelector;
  readonly index: ContainerIndex;
  readonly verbose: boolean;
  warn(code: string, text: string): void;
  /** something worth saying as it happens (what gets traced); shown with -v */
  note(text: string): void;
  /** something to say always (capture: "listening on … of web") */
  info(code: string, text: string): void;
  /** for gadgets that deliver synchronously (capture: packets valid only during the call) */
  push(batch: E[]): void;
  /** after a drain that pushed something: the sink writes what it laid out */
  flush(): void;
  /** the gadget asks the session to stop (e.g. --count reached) */
  stop(): void;
  /** why the run did not do what was asked (e.g. nothing could be captured), said at the end */
  problem(p: { code: string; text: string; hint?: string }): void;
}

/** A running gadget: lifecycle only, never prints. */
export interface GadgetInstance<E> {
  /** batches of events; absent for gadgets that push through ctx.push */
  readonly events?: AsyncIterable<E[]>;
  readonly scope: ScopeFollowing;
  /** events the kernel could not queue (ring full) */
  lost(): number;
  /** other events that were not shown, by reason (e.g. 'oversized hello') */
  misses?(): Record<string, number>;
  /** with -v: said once the scope is set up */
  startedText?(): string;
  /** with -v: extra words for the summary */
  details?(): string;
  /** its own counters, for its own summary (capture: tcpdump's captured/received/dropped) */
  counters?(): Record<string, number>;
  /** called once the container index has listed the runtimes */
  indexReady?(): void;
  /** detaches everything and ends `events` after what the kernel already queued */
  close(): Promise<void>;
}

/** A stage between the gadget and the session's enrichment (e.g. trace tls --http pairing). */
export interface Stage<I, O> {
  readonly name: string;
  process(batch: readonly I[]): O[];
  /** at the end: what it still holds (a response cut off at exit) */
  flush?(): O[];
  /** what it counts, for the -v summary */
  details?(): string;
  /** what must be said at the end of every run, -v or not (e.g. that data was masked); undefined: nothing */
  summary?(): string | undefined;
  /** shown counts are what the stage makes: what it consumed is not "shown" */
}

export interface GadgetDefinition<E, Raw = E> {
  /** 'trace sni' | 'trace tls' | 'capture' */
  readonly name: string;
  /** one line, for `tlscope --help` */
  readonly oneLine: string;
  readonly usage: string;
  /** --help: what it shows; about: how, and examples */
  readonly summary: string;
  readonly about: string;
  readonly params: readonly GadgetParam[];
  /** the fields for these parameter values (called with defaults for --help); json: for -o json (no preview columns) */
  fields(params: ParamValues, view?: { json?: boolean }): CommonField<E>[];
  /** columns output: lines printed under an event's row (a hex dump), for these parameters */
  detail?(params: ParamValues): ((e: E) => string | undefined) | undefined;
  /** every group needs at least one supported feature (doctor, gadgetCatalog) */
  readonly requirements: readonly (readonly FeatureName[])[];
  /** whether its events carry a process (enriched, scoped and late-bound by mount namespace) */
  readonly processEvents: boolean;
  /** the stages its events pass through before the session's own, for these parameters */
  stages?(params: ParamValues): Stage<any, any>[];
  /** checks across parameters and scope before anything needs root; throws UsageError */
  validate?(params: ParamValues, selector: ContainerSelector): void;
  open(params: ParamValues, ctx: GadgetContext<Raw>): GadgetInstance<Raw> | Promise<GadgetInstance<Raw>>;
}
