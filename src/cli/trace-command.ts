// SPDX-License-Identifier: Apache-2.0
/**
 * A trace command: flags (scope, output, the gadget's parameters) → a session → a writer, and
 * the summary on exit. Every gadget command is this, given its definition.
 */
import { hasContainerFilter, SCOPE_HELP } from '../containers/selector.js';
import { TlscopeError, UsageError } from '../errors.js';
import { defaultVisible, type CommonEvent } from '../fields/common.js';
import { selectFields } from '../fields/field.js';
import type { GadgetDefinition, ParamValues } from '../gadgets/definition.js';
import { parseParams } from '../gadgets/params.js';
import { ColumnWriter } from '../output/columns.js';
import { compileQuery } from '../query/query.js';
import { queryOptionsFor } from '../query/vocabulary.js';
import { JsonWriter } from '../output/json.js';
import { Session, type SessionMessage, type SessionStats } from '../session/session.js';
import { bool, helpText, int, parse, str } from './args.js';
import type { CommandContext } from './context.js';
import { startCpuProfile } from './profile.js';
import { outputOptions, paramOptions, paramValuesFrom, scopeOptions, selectorFrom } from './scope.js';

/**
 * Something besides the printed output that takes the events the session shows, in the same
 * batches (trace tls -w's pcapng file); closed when the command ends, however it ends.
 */
export interface EventTap<E> {
  events(batch: readonly E[]): void;
  close(): void;
}

export interface TraceCommandOptions<E> {
  /** a tap for these (checked) parameter values, opened once the session has started */
  tap?(params: ParamValues): EventTap<E> | undefined;
}

export function traceHelp(def: GadgetDefinition<any, any>): string {
  const fields = def.fields(parseParams(def.params, {}));
  const fieldList = fields.map((f) => `  ${f.name.padEnd(28)}${f.description}`).join('\n');
  return helpText(def.usage, def.summary, { ...scopeOptions, ...outputOptions, ...paramOptions(def.params) }, `Scope: ${SCOPE_HELP}\n\n${def.about}\n\nFields (for --fields, --filter, --query and -o json):\n${fieldList}\n`);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** "N events shown", then every other count with its reason. */
export function summaryLine(st: SessionStats, holdMs: number): string {
  const parts = [`${plural(st.shown, 'event')} shown`];
  parts.push(st.lost > 0 ? `${st.lost} lost (ring buffer full: raise --ring-size or narrow the scope)` : '0 lost');
  if (st.outOfScope > 0) parts.push(`${st.outOfScope} out of scope`);
  if (st.filtered > 0) parts.push(`${st.filtered} filtered out`);
  for (const [reason, n] of Object.entries(st.misses)) {
    if (n === 0) continue;
    if (reason === 'unattributed') parts.push(`${n} unattributed (shown with container "?": its mount namespace was still unknown after ${holdMs / 1000} s)`);
    else if (reason === 'unattributed, not in scope') parts.push(`${n} unattributed and not shown (mount namespace unknown after ${holdMs / 1000} s; the scope names containers)`);
    else parts.push(`${n} ${reason}`);
  }
  return parts.join(', ');
}

export function problemError(st: SessionStats): TlscopeError | undefined {
  const p = st.problems[0];
  return p === undefined ? undefined : new TlscopeError(p.code, p.text, p.hint === undefined ? {} : { hint: p.hint });
}

export async function runTraceCommand<E extends CommonEvent>(def: GadgetDefinition<E, any>, argv: string[], ctx: CommandContext, opts: TraceCommandOptions<E> = {}): Promise<number> {
  const { values } = parse(argv, { ...scopeOptions, ...outputOptions, ...paramOptions(def.params) }, false);
  if (bool(values, 'help')) {
    ctx.out.write(traceHelp(def));
    return 0;
  }
  const flagSelector = selectorFrom(values);
  const format = str(values, 'output') ?? 'columns';
  if (!['columns', 'json', 'jsonpretty'].includes(format)) throw new UsageError(`unknown output format "${format}"`, 'use columns, json or jsonpretty');
  const timeout = int(values, 'timeout', { min: 1 });
  const verbose = ctx.verbose || bool(values, 'verbose');
  const filter = str(values, 'filter');
  // --fields is a usage error before anything loads
  const fields = def.fields(parseParams(def.params, paramValuesFrom(def.params, values)), { json: format !== 'columns' });
  selectFields(fields, str(values, 'fields'));
  // --query compiles once against the fields' types (a bad one is a usage error with its column)
  const queryText = str(values, 'query');
  const query = queryText === undefined ? undefined : compileQuery(queryText, fields, queryOptionsFor(def.name, fields));
  // `proc.pid == N` narrows the scope as -p N does (kernel filters and probes follow it)
  const selector = query?.pushdown.pids?.length && !flagSelector.pids?.length ? { ...flagSelector, pids: query.pushdown.pids } : flagSelector;
  const session = await Session.start(def, {
    params: paramValuesFrom(def.params, values),
    scope: selector,
    ...(filter === undefined ? {} : { filter }),
    ...(query === undefined ? {} : { predicate: (e: E) => query.predicate(e) }),
    ...(timeout === undefined ? {} : { timeoutMs: timeout * 1000 }),
    signal: ctx.signal,
    verbose,
    view: { json: format !== 'columns' },
  });
  const profile = await startCpuProfile();
  let tap: EventTap<E> | undefined;
  try {
    tap = opts.tap?.(session.params);
    const pods = selector.k8sNamespace !== undefined || selector.k8sPodName !== undefined || selector.k8sContainerName !== undefined || selector.k8sSelector !== undefined;
    const containers = hasContainerFilter(selector) || selector.host !== true;
    const shown = format === 'columns'
      ? selectFields(session.fields, str(values, 'fields'), defaultVisible({ containers, pods }))
      : selectFields(session.fields, str(values, 'fields'), () => true);
    const detail = format === 'columns' ? def.detail?.(session.params) : undefined;
    const writer = format === 'columns' ? new ColumnWriter(shown, ctx.out) : new JsonWriter(shown, ctx.out, format === 'jsonpretty');
    if (writer instanceof ColumnWriter) writer.header();
    let final: SessionStats | undefined;
    for await (const m of session as AsyncIterable<SessionMessage<E>>) {
      if (m.type === 'events') {
        tap?.events(m.events);
        if (detail === undefined) writer.write(m.events);
        else {
          for (const e of m.events) {
            writer.write([e]);
            const text = detail(e);
            if (text) ctx.out.write(text.endsWith('\n') ? text : `${text}\n`);
          }
        }
      } else if (m.type === 'warning') ctx.err.write(`tlscope: warning: ${m.text}\n`);
      else if (m.type === 'info') ctx.err.write(`tlscope: ${m.text}\n`);
      else if (m.final) final = m.stats;
    }
    const st = final ?? (await session.stop());
    const details = verbose ? session.details() : undefined;
    ctx.err.write(`tlscope: ${summaryLine(st, session.holdBounds.holdMs)}${details === undefined ? '' : `; ${details}`}\n`);
    // said with or without -v (e.g. that --redact changed the data, and where it masked whole)
    for (const text of session.summaries()) ctx.err.write(`tlscope: ${text}\n`);
    const err = problemError(st);
    if (err !== undefined) throw err;
    return 0;
  } finally {
    await session.stop();
    tap?.close();
    await profile?.stop();
  }
}
