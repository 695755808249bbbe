// SPDX-License-Identifier: Apache-2.0
/**
 * What every tracing command shares: the scope flags (runtimes, containers, pods, pids, host),
 * output flags, and the pipeline kernel events → enrich (container index) → scope filter →
 * --filter → render, with a summary (events, lost) on exit. Commands stay thin.
 */
import { ContainerIndex } from '../containers/index.js';
import { matches, parseSelectorFlags, hasContainerFilter, SCOPE_HELP, type ContainerSelector } from '../containers/selector.js';
import type { ContainerInfo } from '../containers/types.js';
import { PermissionError, TlscopeError, UsageError, errorMessage } from '../errors.js';
import { c } from '../ebpf/native.js';
import { requireCapabilities } from '../gadgets/catalog.js';
import { defaultVisible, type CommonEvent, type CommonField } from '../fields/common.js';
import { selectFields } from '../fields/field.js';
import { parseFilter } from '../fields/filter.js';
import { NetnsScope, type NetnsWatcher } from '../gadgets/netns-scope.js';
import { ColumnWriter } from '../output/columns.js';
import { JsonWriter } from '../output/json.js';
import { bool, helpText, int, list, parse, str, type OptionSpecs, type ParsedValues } from './args.js';
import type { CommandContext } from './context.js';

export const scopeOptions: OptionSpecs = {
  runtimes: { type: 'string', short: 'r', arg: 'LIST', multiple: true, description: 'container runtimes to trace: docker,containerd,podman,cri-o (default all)' },
  containername: { type: 'string', short: 'c', arg: 'NAME', multiple: true, description: 'only these containers (repeatable or comma-separated)' },
  host: { type: 'boolean', description: 'include the host (alone: only the host)' },
  pid: { type: 'string', short: 'p', arg: 'PID', multiple: true, description: 'only these processes (host pids)' },
  'k8s-namespace': { type: 'string', arg: 'NS', description: 'only pods in this Kubernetes namespace' },
  'k8s-podname': { type: 'string', arg: 'POD', description: 'only this pod' },
  'k8s-containername': { type: 'string', arg: 'NAME', description: 'only this container of a pod spec' },
  'k8s-selector': { type: 'string', arg: 'K=V,…', multiple: true, description: 'only pods with these labels' },
};

export const outputOptions: OptionSpecs = {
  output: { type: 'string', short: 'o', arg: 'FORMAT', description: 'columns (default), json (one object per line) or jsonpretty' },
  fields: { type: 'string', arg: 'LIST', description: 'fields to show, e.g. pid,comm,name (see the field list below)' },
  filter: { type: 'string', short: 'F', arg: 'EXPR', description: "keep events where every term holds: 'name~\\.test$,proc.comm==curl'" },
  timeout: { type: 'string', short: 't', arg: 'SECONDS', description: 'stop after this many seconds (default: until Ctrl-C)' },
  verbose: { type: 'boolean', short: 'v', description: 'more detail on errors and in the summary' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

/** Keeps a gadget's kernel side in step with the scope as processes and containers come and go. */
export interface ScopeAdapter {
  start(): void;
  stop(): void;
}

/** A gadget that brings its own scope adapter (e.g. a ProcessScope for uprobe gadgets). */
export interface ScopeFollower {
  /** `note` is given with -v: things worth saying as they happen (what gets traced). */
  followScope(selector: ContainerSelector, index: ContainerIndex, warn: (msg: string) => void, note?: (msg: string) => void): ScopeAdapter;
}

interface TraceGadgetCore<E> extends AsyncIterable<E[]> {
  /** Numbers for the exit summary; `lost` is shown always. */
  stats(): { events: number; lost: bigint };
  /** Extra words for the summary with -v. */
  details?(): string;
  /** With -v, said once the scope is set up (what is being traced). */
  startedText?(): string;
  close(): Promise<void>;
}

/** Network gadgets watch network namespaces (driven by NetnsScope); others follow the scope themselves. */
export type TraceGadget<E> = TraceGadgetCore<E> & (NetnsWatcher | ScopeFollower);

export interface TraceSpec<E extends CommonEvent> {
  usage: string;
  summary: string;
  /** Paragraphs after the options in --help (what it hooks, examples). */
  about: string;
  /** The fields; a function when options change them (called with no values for --help). */
  fields: CommonField<E>[] | ((values: ParsedValues) => CommonField<E>[]);
  extraOptions?: OptionSpecs;
  /** Columns output: lines printed under an event's row (e.g. a hex dump), or undefined. */
  detail?(values: ParsedValues): ((e: E) => string | undefined) | undefined;
  open(values: ParsedValues, signal: AbortSignal): TraceGadget<E>;
}

function fieldsOf<E extends CommonEvent>(spec: TraceSpec<E>, values: ParsedValues): CommonField<E>[] {
  return typeof spec.fields === 'function' ? spec.fields(values) : spec.fields;
}

export function traceHelp<E extends CommonEvent>(spec: TraceSpec<E>): string {
  const fieldList = fieldsOf(spec, {}).map((f) => `  ${f.name.padEnd(28)}${f.description}`).join('\n');
  return helpText(spec.usage, spec.summary, { ...scopeOptions, ...outputOptions, ...spec.extraOptions }, `Scope: ${SCOPE_HELP}\n\n${spec.about}\n\nFields (for --fields, --filter and -o json):\n${fieldList}\n`);
}

/** The scope flags every command shares (absent ones are simply not set) → a checked selector. */
export function selectorFrom(v: ParsedValues): ContainerSelector {
  return parseSelectorFlags({
    ...(v.runtimes === undefined ? {} : { runtimes: list(v, 'runtimes') ?? [] }),
    ...(v.containername === undefined ? {} : { containername: list(v, 'containername') ?? [] }),
    ...(bool(v, 'host') ? { host: true } : {}),
    ...(v.pid === undefined ? {} : { pid: list(v, 'pid') ?? [] }),
    ...(str(v, 'k8s-namespace') === undefined ? {} : { k8sNamespace: str(v, 'k8s-namespace') as string }),
    ...(str(v, 'k8s-podname') === undefined ? {} : { k8sPodname: str(v, 'k8s-podname') as string }),
    ...(str(v, 'k8s-containername') === undefined ? {} : { k8sContainername: str(v, 'k8s-containername') as string }),
    ...(v['k8s-selector'] === undefined ? {} : { k8sSelector: list(v, 'k8s-selector') ?? [] }),
  });
}

function enrich<E extends CommonEvent>(e: E, index: ContainerIndex): ContainerInfo | undefined {
  const container = e.proc.mntns !== undefined ? index.byMntns(e.proc.mntns) : undefined;
  if (container !== undefined) {
    e.runtime = { runtimeName: container.runtime, containerId: container.id, containerName: container.name, containerImageName: container.image };
    if (container.k8s !== undefined) {
      e.k8s = { namespace: container.k8s.namespace, podName: container.k8s.podName, containerName: container.k8s.containerName, podUid: container.k8s.podUid };
    }
  }
  return container;
}

export async function runTrace<E extends CommonEvent>(spec: TraceSpec<E>, argv: string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, { ...scopeOptions, ...outputOptions, ...spec.extraOptions }, false);
  if (bool(values, 'help')) {
    ctx.out.write(traceHelp(spec));
    return 0;
  }
  void positionals;
  const selector = selectorFrom(values);
  const format = str(values, 'output') ?? 'columns';
  if (!['columns', 'json', 'jsonpretty'].includes(format)) throw new UsageError(`unknown output format "${format}"`, 'use columns, json or jsonpretty');
  const pods = selector.k8sNamespace !== undefined || selector.k8sPodName !== undefined || selector.k8sContainerName !== undefined || selector.k8sSelector !== undefined;
  const containers = hasContainerFilter(selector) || selector.host !== true;
  const fields = fieldsOf(spec, values);
  const shown = format === 'columns'
    ? selectFields(fields, str(values, 'fields'), defaultVisible({ containers, pods }))
    : selectFields(fields, str(values, 'fields'), () => true);
  const keep = parseFilter(fields, str(values, 'filter'));
  const detail = format === 'columns' ? spec.detail?.(values) : undefined;
  const timeout = int(values, 'timeout', { min: 1 });
  requireCapabilities(spec.usage.startsWith('tlscope trace sni') ? 'trace sni' : 'trace tls');

  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const timer = timeout === undefined ? undefined : setTimeout(onAbort, timeout * 1000);

  const warned = new Set<string>();
  const warn = (msg: string): void => {
    if (warned.has(msg)) return;
    warned.add(msg);
    ctx.err.write(`tlscope: warning: ${msg}\n`);
  };
  const index = new ContainerIndex({ onWarning: (w) => warn(w.kind === 'runtime' ? `${w.runtime}: ${errorMessage(w.error)}` : errorMessage(w.error)) });
  let gadget: TraceGadget<E> | undefined;
  let scope: ScopeAdapter | undefined;
  let lossTimer: NodeJS.Timeout | undefined;
  const missingNames = new Set(selector.containerNames ?? []);
  try {
    await index.start();
    for (const c of index.all()) missingNames.delete(c.name);
    const unsubscribeNames = index.subscribe((e) => {
      if (e.type !== 'removed') missingNames.delete(e.container.name);
    });
    if (missingNames.size > 0) {
      ctx.err.write(`tlscope: waiting for container${missingNames.size > 1 ? 's' : ''} ${[...missingNames].join(', ')} to start${timeout === undefined ? ' (Ctrl-C to stop)' : ` (up to ${timeout} s)`}\n`);
    }
    gadget = spec.open(values, stop.signal);
    const note = (msg: string): void => void ctx.err.write(`tlscope: ${msg}\n`);
    scope = 'followScope' in gadget ? gadget.followScope(selector, index, warn, ctx.verbose ? note : undefined) : new NetnsScope(gadget, selector, index, warn);
    scope.start();
    if (ctx.verbose && gadget.startedText) ctx.err.write(`tlscope: ${gadget.startedText()}\n`);
    const g = gadget;
    stop.signal.addEventListener('abort', () => void g.close(), { once: true });
    if (stop.signal.aborted) void g.close();

    // Losses are said as they happen on a long trace, not only in the summary.
    let lostSeen = 0n;
    lossTimer = setInterval(() => {
      const lost = g.stats().lost;
      if (lost > lostSeen) {
        ctx.err.write(`tlscope: warning: ${lost - lostSeen} events lost in the last second (${lost} in all): the ring buffer was full\n`);
        lostSeen = lost;
      }
    }, 1000);
    lossTimer.unref();

    const writer = format === 'columns' ? new ColumnWriter(shown, ctx.out) : new JsonWriter(shown, ctx.out, format === 'jsonpretty');
    if (writer instanceof ColumnWriter) writer.header();
    const hasPidFilter = (selector.pids?.length ?? 0) > 0;
    for await (const batch of gadget) {
      const out: E[] = [];
      for (const e of batch) {
        const container = enrich(e, index);
        const pid = e.proc.pid > 0 ? e.proc.pid : undefined;
        if (pid === undefined && hasPidFilter) continue;
        if (!matches(selector, container, pid)) continue; // unattributed events count as the host's
        if (keep(e)) out.push(e);
      }
      if (out.length === 0) continue;
      if (detail === undefined) writer.write(out);
      else {
        for (const e of out) {
          writer.write([e]);
          const text = detail(e);
          if (text) ctx.out.write(text.endsWith('\n') ? text : `${text}\n`);
        }
      }
    }
    unsubscribeNames();
    const st = gadget.stats();
    const lost = st.lost > 0n ? `, ${st.lost} lost (ring buffer full: raise --ring-size or narrow the scope)` : ', 0 lost';
    ctx.err.write(`tlscope: ${st.events} event${st.events === 1 ? '' : 's'}${lost}${ctx.verbose && gadget.details ? `; ${gadget.details()}` : ''}\n`);
    if (missingNames.size > 0) {
      throw new TlscopeError('ERR_NO_CONTAINER', `container${missingNames.size > 1 ? 's' : ''} ${[...missingNames].join(', ')} never appeared`, {
        hint: 'check the name with `tlscope containers` (or docker ps / ctr -n k8s.io containers ls / podman ps)',
      });
    }
    return 0;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    clearInterval(lossTimer);
    ctx.signal.removeEventListener('abort', onAbort);
    scope?.stop();
    await gadget?.close();
    await index.close();
  }
}
