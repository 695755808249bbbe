// SPDX-License-Identifier: Apache-2.0
/**
 * The gadgets the UI shows, each run by a `Session` (the engine behind the CLI): trace tls
 * (plaintext calls, paired into HTTP/1, HTTP/2 and gRPC exchanges by the hub's EntryMaker
 * with the same pairing as `trace tls --http`) and trace sni. Scope, late binding, the
 * container/pod enrichment, lost/missed/filtered counts, warnings and problems come from the
 * sessions as their messages; this file only maps them onto what the hub reads.
 */
import { ContainerIndex } from '../containers/index.js';
import type { ContainerSelector } from '../containers/selector.js';
import { errorMessage } from '../errors.js';
import type { CommonEvent } from '../fields/common.js';
import type { Field } from '../fields/field.js';
import type { GadgetDefinition } from '../gadgets/definition.js';
import { parseParams } from '../gadgets/params.js';
import { sniDefinition } from '../gadgets/sni/definition.js';
import { tlsHttpFields } from '../gadgets/tls/fields.js';
import { redactorOf, tlsDefinition } from '../gadgets/tls/definition.js';
import { Session, type SessionMessage, type SessionStats } from '../session/session.js';
import type { Redactor } from '../protocols/redact.js';
import type { SourceMessage, SourceSpec } from './hub.js';
import type { UiSessionStats } from './protocol.js';

export interface UiSources {
  specs: SourceSpec<CommonEvent>[];
  /** the sessions, by gadget name (for their final stats) */
  sessions: Map<string, Session<any>>;
  stop(): Promise<void>;
}

export interface UiSourceOptions {
  selector: ContainerSelector;
  signal: AbortSignal;
  /** parameters per gadget name, as raw values (e.g. { 'trace tls': { 'max-bytes': '64k' } }) */
  params?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** gadgets to run (default: trace tls and trace sni) */
  gadgets?: readonly string[];
  /** a gadget that cannot start (say, sni without a kernel feature): said, the others run */
  warn(text: string): void;
  timeoutMs?: number;
  verbose?: boolean;
}

/** The session's counters as the page shows them; a -c name is "never appeared" only at the end (until then the session waits). */
export function uiStats(st: SessionStats, final = true): UiSessionStats {
  return {
    shown: st.shown,
    lost: st.lost,
    misses: { ...st.misses },
    outOfScope: st.outOfScope,
    filtered: st.filtered,
    held: st.held,
    missingContainers: [...st.missingContainers],
    problems: st.problems.filter((p) => final || p.code !== 'ERR_NO_CONTAINER').map((p) => p.text),
  };
}

/** A session's messages as the hub reads them (info lines become notes). */
async function* messagesOf<E>(session: Session<E>): AsyncGenerator<SourceMessage<E>> {
  for await (const m of session as AsyncIterable<SessionMessage<E>>) {
    if (m.type === 'events') yield { type: 'events', events: m.events };
    else if (m.type === 'warning') yield { type: 'warning', code: m.code, text: m.text };
    else if (m.type === 'info') {
      if (m.text !== '') yield { type: 'info', code: m.code, text: m.text };
    } else yield { type: 'stats', stats: uiStats(m.stats, m.final), final: m.final };
  }
}

const DEFINITIONS: Record<string, GadgetDefinition<any, any>> = {
  [tlsDefinition.name]: tlsDefinition,
  [sniDefinition.name]: sniDefinition,
};

export const UI_GADGETS = Object.keys(DEFINITIONS);

/** The fields each gadget's entries carry, before anything runs (to check a query early). */
export function uiGadgetFields(names: readonly string[] = UI_GADGETS, params: UiSourceOptions['params'] = {}): { gadget: string; fields: readonly Field<CommonEvent>[]; httpFields?: readonly Field<CommonEvent>[] }[] {
  return names.map((name) => {
    const def = DEFINITIONS[name] as GadgetDefinition<CommonEvent, unknown>;
    const fields = def.fields(parseParams(def.params, params?.[name] ?? {}), { json: true });
    return name === tlsDefinition.name ? { gadget: name, fields, httpFields: tlsHttpFields() as readonly Field<CommonEvent>[] } : { gadget: name, fields };
  });
}

function redactorField(r: Redactor | undefined): { redactor?: Redactor } {
  return r === undefined ? {} : { redactor: r };
}

/**
 * Starts one session per gadget over the scope. A usage error (a bad -p, a bad parameter) is
 * thrown; a gadget that fails to load is a warning when another one runs.
 */
export async function openSources(o: UiSourceOptions): Promise<UiSources> {
  const names = o.gadgets ?? UI_GADGETS;
  const sessions = new Map<string, Session<any>>();
  const specs: SourceSpec<CommonEvent>[] = [];
  // usage errors first, for every gadget, before anything loads
  for (const name of names) {
    const def = DEFINITIONS[name];
    if (def === undefined) throw new Error(`the UI cannot run ${name}`);
    Session.check(def, { params: o.params?.[name] ?? {}, scope: o.selector, view: { json: true }, ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }) });
  }
  // one container index for every session (as the agent does): one set of runtime clients
  const index = new ContainerIndex({ onWarning: (w) => o.warn(w.kind === 'runtime' ? `${w.runtime}: ${errorMessage(w.error)}` : errorMessage(w.error)) });
  let firstError: unknown;
  for (const name of names) {
    const def = DEFINITIONS[name] as GadgetDefinition<CommonEvent, unknown>;
    try {
      const session = await Session.start(def, {
        params: o.params?.[name] ?? {},
        scope: o.selector,
        signal: o.signal,
        index,
        view: { json: true },
        ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
        ...(o.verbose === undefined ? {} : { verbose: o.verbose }),
      });
      sessions.set(name, session);
      specs.push({
        gadget: name,
        fields: session.fields as readonly Field<CommonEvent>[],
        ...(name === tlsDefinition.name ? { httpFields: tlsHttpFields(), ...redactorField(redactorOf(parseParams(def.params, o.params?.[name] ?? {}))) } : {}),
        messages: messagesOf(session),
      });
    } catch (e) {
      firstError ??= e;
      o.warn(`${name}: ${errorMessage(e)}`);
    }
  }
  if (sessions.size === 0) {
    await index.close();
    throw firstError;
  }

  let stopping: Promise<void> | undefined;
  return {
    specs,
    sessions,
    stop() {
      stopping ??= (async () => {
        await Promise.all([...sessions.values()].map((s) => s.stop()));
        await index.close();
      })();
      return stopping;
    },
  };
}
