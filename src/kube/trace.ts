// SPDX-License-Identifier: Apache-2.0
/**
 * `kubectl tlscope trace sni|tls`: the cluster stream (src/kube/stream.ts: the same gadget
 * session on every node's agent, merged in time order, nodes gone and resumed) and a writer
 * (columns or JSON, with K8S.NODE) behind it; its lines on stderr, its summary at the end.
 */
import { TlscopeError, UsageError } from '../errors.js';
import { defaultVisible, type CommonField } from '../fields/common.js';
import { selectFields } from '../fields/field.js';
import { parseFilter } from '../fields/filter.js';
import type { GadgetDefinition } from '../gadgets/definition.js';
import { parseParams } from '../gadgets/params.js';
import { ColumnWriter, type Sink } from '../output/columns.js';
import { JsonWriter } from '../output/json.js';
import { clusterOptions, flag, help, paramSpecs, parseFlags, str, traceOptions } from './flags.js';
import type { RunRequest } from './proto.js';
import { openCluster, rawParams, runClusterStream, selectorFromFlags, summaryLine, timeoutFromFlags, wireScope, type NodeEvent } from './stream.js';

export interface KubeContext {
  out: Sink;
  err: Sink;
  signal: AbortSignal;
}

export function nodeField<E extends NodeEvent>(): CommonField<E> {
  return { name: 'k8s.node', column: 'K8S.NODE', width: 14, description: 'Kubernetes node the event was seen on', visible: true, group: 'k8s', get: (e) => e.k8s?.node };
}

export function traceUsage(def: GadgetDefinition<any, any>): string {
  const specs = { ...traceOptions, ...clusterOptions, ...paramSpecs(def.params) };
  return help(`kubectl tlscope ${def.name} [options]`, `${def.summary}\nOn every node (or --node NAME…), through each node's tlscope agent; events merged in time order.`, specs,
    'Scope flags are tlscope\'s (see `tlscope ' + def.name + ' --help`); pod filters are resolved by the API, and only the nodes\nthat run matching pods are asked. Needs pods/portforward in the agents\' namespace.');
}

export async function runKubeTrace<E extends NodeEvent>(def: GadgetDefinition<E, any>, argv: string[], ctx: KubeContext): Promise<number> {
  const specs = { ...traceOptions, ...clusterOptions, ...paramSpecs(def.params) };
  const { values: v } = parseFlags(argv, specs);
  if (flag(v, 'help')) {
    ctx.out.write(traceUsage(def));
    return 0;
  }
  const format = str(v, 'output') ?? 'columns';
  if (!['columns', 'json', 'jsonpretty'].includes(format)) throw new UsageError(`unknown output format "${format}"`, 'use columns, json or jsonpretty');
  const selector = selectorFromFlags(v);
  const timeout = timeoutFromFlags(v);
  const filter = str(v, 'filter');
  const verbose = flag(v, 'verbose');
  // usage errors before anything talks to the cluster
  const { raw, wire } = rawParams(def, v);
  const params = parseParams(def.params, raw);
  def.validate?.(params, selector);
  const view = { json: format !== 'columns' };
  const fields = [nodeField<E>(), ...def.fields(params, view)];
  parseFilter(def.fields(params, view), filter);
  const shown = format === 'columns'
    ? selectFields(fields, str(v, 'fields'), defaultVisible({ containers: false, pods: true }))
    : selectFields(fields, str(v, 'fields'), () => true);
  const { cluster, allNodes, onlyNodes } = await openCluster(v);

  const request: RunRequest = {
    gadget: def.name, params: wire, scope: wireScope(selector), filter: filter ?? '', timeout_ms: timeout === undefined ? 0 : timeout * 1000,
    verbose, json_view: view.json, max_queued_events: 0,
  };
  const writer = format === 'columns' ? new ColumnWriter(shown, ctx.out) : new JsonWriter(shown, ctx.out, format === 'jsonpretty');
  if (writer instanceof ColumnWriter) writer.header();
  const detail = format === 'columns' ? def.detail?.(params) : undefined;
  const say = (text: string): void => { ctx.err.write(`tlscope: ${text}\n`); };

  const flushEvents = (events: E[]): void => {
    if (events.length === 0) return;
    if (detail === undefined) writer.write(events);
    else {
      for (const e of events) {
        writer.write([e]);
        const text = detail(e);
        if (text) ctx.out.write(text.endsWith('\n') ? text : `${text}\n`);
      }
    }
  };

  const summary = await runClusterStream({
    cluster, allNodes, onlyNodes, selector, request, verbose, timeout, signal: ctx.signal,
    emit: (m) => {
      if (m.type === 'events') flushEvents(m.events as E[]);
      else if (m.type === 'say') say(m.text);
    },
  });
  say(summaryLine(summary));
  if (summary.problem !== undefined) throw summary.problem;
  if (summary.started.length === 0) throw new TlscopeError('ERR_NO_AGENT', 'no node\'s agent could run the trace', { hint: 'kubectl tlscope deploy, then check kubectl -n tlscope get pods' });
  return 0;
}
