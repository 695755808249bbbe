// SPDX-License-Identifier: Apache-2.0
/**
 * `kubectl tlscope ui`: the web UI of `tlscope ui` (the same hub, server, token and redaction)
 * over the whole cluster: one cluster stream (src/kube/stream.ts) per gadget — trace tls, its
 * credentials masked unless --no-redact, and trace sni — instead of local sessions. Each entry's
 * node is its event's k8s.node; each node's agent (running, gone, not ready) and counts are in
 * the stats the page shows, and what the streams say ("node X: agent gone (…)") in its warnings
 * and notes, as well as on stderr.
 */
import { TlscopeError, UsageError, errorMessage } from '../errors.js';
import type { CommonEvent } from '../fields/common.js';
import type { Field } from '../fields/field.js';
import { parseFilter } from '../fields/filter.js';
import type { GadgetDefinition } from '../gadgets/definition.js';
import { parseParams } from '../gadgets/params.js';
import { sniDefinition } from '../gadgets/sni/definition.js';
import { redactorOf, tlsDefinition } from '../gadgets/tls/definition.js';
import { UiHub, type SourceMessage, type SourceSpec } from '../ui/hub.js';
import type { UiSessionStats } from '../ui/protocol.js';
import { EntryRing } from '../ui/ring.js';
import { checkQuery, serveHub, UI_SERVE_OPTIONS, uiListen, uiParams } from '../ui/run.js';
import type { UiServer } from '../ui/server.js';
import { uiGadgetFields } from '../ui/sources.js';
import { clusterOptions, flag, help, parseFlags, str, traceOptions, type Specs, type Values } from './flags.js';
import type { RunRequest } from './proto.js';
import { openCluster, runClusterStream, selectorFromFlags, summaryLine, timeoutFromFlags, wireScope, type ClusterSummary, type NodeEvent, type NodeState } from './stream.js';
import { nodeField, type KubeContext } from './trace.js';

const { output: _output, fields: _fields, ...scopeOptions } = traceOptions;

const uiOptions: Specs = {
  ...scopeOptions,
  ...UI_SERVE_OPTIONS,
  query: { type: 'string', short: 'q', arg: 'EXPR', description: 'the query the page opens with (CEL, e.g. k8s.node == "n1" && http.status >= 500)' },
  'no-redact': { type: 'boolean', description: 'show credentials: by default the agents mask Authorization, Proxy-Authorization, Cookie, Set-Cookie and gRPC *-bin metadata, and so does the page' },
  ...clusterOptions,
};

const ABOUT = `Runs trace tls (plaintext, paired into HTTP/1, HTTP/2 and gRPC exchanges) and trace sni on
every node's agent (or --node NAME…), as kubectl tlscope trace does, and serves the page of
tlscope ui over them: each row with its node and pod, each node's agent (running, gone,
back) above the table. Served from this process only, on 127.0.0.1 unless --listen, and
only with the token in the URL it prints. Needs pods/portforward in the agents' namespace.

Examples:
  kubectl tlscope ui                          every node; open the URL it prints
  kubectl tlscope ui -n shop --port 0         pods of one namespace, any free port
  kubectl tlscope ui --node n1 -q 'http.status >= 500'`;

export function kubeUiUsage(): string {
  return help('kubectl tlscope ui [scope] [--port N] [--listen ADDR --tls-cert F --tls-key F | --insecure] [--query Q]', 'A live web UI of what the cluster\'s pods say over TLS, on every node.', uiOptions, ABOUT);
}

function intFlag(v: Values, name: string, min: number, max: number): number | undefined {
  const text = str(v, name);
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} wants a whole number from ${min} to ${max}, got "${text}"`);
  return n;
}

/** Pushed values read as an async iterable (the hub reads a source's messages so). */
class Channel<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private waiting: (() => void) | undefined;
  private ended = false;

  push(x: T): void {
    this.items.push(x);
    this.wake();
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      while (this.items.length > 0) yield this.items.shift() as T;
      if (this.ended) return;
      await new Promise<void>((resolve) => { this.waiting = resolve; });
    }
  }
}

/** The nodes' states as the page's session stats: their counts added up, and each node's line. */
export function nodeStats(nodes: readonly NodeState[]): UiSessionStats {
  const misses: Record<string, number> = {};
  for (const n of nodes) for (const [k, c] of Object.entries(n.misses)) misses[k] = (misses[k] ?? 0) + c;
  const sum = (f: (n: NodeState) => number): number => nodes.reduce((a, n) => a + f(n), 0);
  return {
    shown: sum((n) => n.shown),
    lost: sum((n) => n.lost),
    misses,
    outOfScope: sum((n) => n.outOfScope),
    filtered: sum((n) => n.filtered),
    held: sum((n) => n.held),
    problems: [],
    nodes: nodes.map((n) => ({
      node: n.node, state: n.state, gone: n.gone, shown: n.shown, lost: n.lost,
      ...(n.pod === undefined ? {} : { pod: n.pod }), ...(n.reason === undefined ? {} : { reason: n.reason }),
    })),
  };
}

export async function runKubeUi(argv: string[], ctx: KubeContext): Promise<number> {
  const { values: v } = parseFlags(argv, uiOptions);
  if (flag(v, 'help')) {
    ctx.out.write(kubeUiUsage());
    return 0;
  }
  // usage errors before anything talks to the cluster
  const selector = selectorFromFlags(v);
  const timeout = timeoutFromFlags(v);
  const filter = str(v, 'filter');
  const verbose = flag(v, 'verbose');
  const { host, port, tls } = uiListen({ port: intFlag(v, 'port', 0, 65535), listen: str(v, 'listen'), certFile: str(v, 'tls-cert'), keyFile: str(v, 'tls-key'), insecure: flag(v, 'insecure') });
  const ringEntries = intFlag(v, 'ring', 100, 1_000_000) ?? 10_000;
  const redact = !flag(v, 'no-redact');
  const query = str(v, 'query');
  const raw = uiParams(redact);
  const defs: GadgetDefinition<CommonEvent, unknown>[] = [tlsDefinition as never, sniDefinition as never];
  const gadgetFields = uiGadgetFields(defs.map((d) => d.name), raw);
  const node = nodeField<NodeEvent>() as unknown as Field<CommonEvent>;
  const specs = defs.map((def) => {
    const params = parseParams(def.params, raw[def.name] ?? {});
    def.validate?.(params, selector);
    const f = gadgetFields.find((g) => g.gadget === def.name) as (typeof gadgetFields)[number];
    parseFilter(f.fields, filter);
    const wire: Record<string, string> = {};
    for (const [k, x] of Object.entries(raw[def.name] ?? {})) wire[k] = String(x);
    const redactor = def.name === tlsDefinition.name ? redactorOf(params) : undefined;
    return {
      def,
      fields: [node, ...f.fields],
      ...(f.httpFields === undefined ? {} : { httpFields: [node, ...f.httpFields] }),
      ...(redactor === undefined ? {} : { redactor }),
      request: { gadget: def.name, params: wire, scope: wireScope(selector), filter: filter ?? '', timeout_ms: 0, verbose, json_view: true, max_queued_events: 0 } satisfies RunRequest,
    };
  });

  const hub = new UiHub({ ring: new EntryRing({ capacity: ringEntries, maxBytes: 256 << 20 }), node: undefined });
  for (const s of specs) hub.register({ gadget: s.def.name, fields: s.fields, ...(s.httpFields === undefined ? {} : { httpFields: s.httpFields as never }) });
  checkQuery(hub, query);

  const { cluster, allNodes, onlyNodes, context } = await openCluster(v);
  hub.label = `cluster ${context}`;

  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const timer = timeout === undefined ? undefined : setTimeout(onAbort, timeout * 1000);
  const say = (text: string): void => void ctx.err.write(`tlscope: ${text}\n`);
  let server: UiServer | undefined;
  try {
    server = await serveHub({ hub, host, port, tls, query, redact, name: 'kubectl tlscope ui', say: (t) => void ctx.out.write(t) });
    const streams = specs.map(async (s) => {
      const gadget = s.def.name;
      const channel = new Channel<SourceMessage<CommonEvent>>();
      const spec: SourceSpec<CommonEvent> = {
        gadget,
        fields: s.fields,
        ...(s.httpFields === undefined ? {} : { httpFields: s.httpFields as never }),
        ...(s.redactor === undefined ? {} : { redactor: s.redactor }),
        nodeOf: (e) => (e as NodeEvent).k8s?.node,
        messages: channel,
      };
      const reading = hub.run(spec);
      let summary: ClusterSummary | undefined;
      try {
        summary = await runClusterStream({
          cluster, allNodes, onlyNodes, selector, request: s.request, verbose, timeout: undefined, signal: stop.signal,
          emit: (m) => {
            if (m.type === 'events') channel.push({ type: 'events', events: m.events });
            else if (m.type === 'nodes') channel.push({ type: 'stats', stats: nodeStats(m.nodes) });
            else {
              say(`${gadget}: ${m.text}`);
              channel.push(m.level === 'warning' ? { type: 'warning', code: '', text: m.text } : { type: 'info', code: '', text: m.text });
            }
          },
        });
        const line = summaryLine(summary);
        say(`${gadget}: ${line}`);
        channel.push({ type: 'info', code: '', text: line });
        if (summary.problem !== undefined) {
          say(`${gadget}: ${summary.problem.message}`);
          channel.push({ type: 'warning', code: summary.problem.code, text: summary.problem.message });
        }
      } catch (e) {
        // this gadget's stream could not start (no agent anywhere): said; the other goes on
        say(`${gadget}: ${errorMessage(e)}`);
        channel.push({ type: 'warning', code: e instanceof TlscopeError ? e.code : 'ERR_INTERNAL', text: errorMessage(e) });
        throw e;
      } finally {
        channel.end();
        await reading;
      }
      return summary;
    });
    const results = await Promise.allSettled(streams);
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length === results.length) throw failed[0]?.reason;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    ctx.signal.removeEventListener('abort', onAbort);
    await server?.close();
    hub.stop();
  }
  return 0;
}
