// SPDX-License-Identifier: Apache-2.0
/**
 * The view's query: the same CEL as `--query` (src/query/compileQuery), over the fields of the
 * gadgets the UI runs, by their `-o json` names (`proc.comm == "curl"`, `http.status >= 500`,
 * `name.endsWith(".test")`), plus `tls` (true for decrypted rows), `kind` (http, tls, sni,
 * packet), `gadget` and `node`. It is evaluated over an entry's `-o json` object, which the
 * ring keeps, so a new view (a new query) also applies to what was kept before it.
 * Errors carry their 0-based position in the text, for the page to point at.
 */
import { UsageError } from '../errors.js';
import type { Field, FieldValue } from '../fields/field.js';
import { compileQuery } from '../query/query.js';
import type { Entry } from './protocol.js';

export class QueryError extends Error {
  constructor(message: string, readonly position: number | undefined, readonly hint?: string) {
    super(message);
  }
}

export interface ViewQuery {
  readonly text: string;
  match(entry: Entry): boolean;
}

/** A gadget's fields as its entries' JSON holds them (and its HTTP exchanges'). */
export interface GadgetFields {
  gadget: string;
  fields: readonly Field<any>[];
  httpFields?: readonly Field<any>[];
}

function lookup(obj: Record<string, unknown>, path: string): FieldValue {
  let v: unknown = obj;
  for (const k of path.split('.')) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return v;
  if (Array.isArray(v)) return v.join(',');
  return undefined;
}

const EXTRA: Field<Entry>[] = [
  { name: 'kind', column: 'KIND', width: 6, description: 'http, tls, sni or packet', visible: false, get: (e) => e.kind },
  { name: 'gadget', column: 'GADGET', width: 10, description: 'the gadget that made the row', visible: false, get: (e) => e.json['gadget'] as string | undefined },
  { name: 'node', column: 'NODE', width: 10, description: 'the node', visible: false, get: (e) => e.node },
];

/**
 * The names a view's query sees: every gadget's fields (the first declaration of a name wins),
 * read from the entry's JSON. A name that would sit below another field's name is left out.
 */
export function viewFields(gadgets: readonly GadgetFields[]): Field<Entry>[] {
  const out: Field<Entry>[] = [...EXTRA];
  const names = new Set(out.map((f) => f.name));
  const clashes = (name: string): boolean => {
    for (const n of names) if (n.startsWith(`${name}.`) || name.startsWith(`${n}.`)) return true;
    return false;
  };
  for (const g of gadgets) {
    for (const f of [...g.fields, ...(g.httpFields ?? [])]) {
      if (names.has(f.name) || clashes(f.name)) continue;
      names.add(f.name);
      const name = f.name;
      out.push({ ...f, get: (e: Entry) => lookup(e.json, name) });
    }
  }
  return out;
}

/** "--query: unknown field "x" at column 5\n    …\n    ^" → the summary and its 0-based offset. */
function fromUsage(text: string, e: UsageError): QueryError {
  const [first = '', ...rest] = e.message.split('\n');
  let summary = first.replace(/^--query: /, '');
  let position: number | undefined;
  const m = / at (?:line (\d+), )?column (\d+)$/.exec(summary);
  if (m !== null) {
    summary = summary.slice(0, m.index);
    const line = Number(m[1] ?? 1);
    const column = Number(m[2]);
    const lines = text.split('\n');
    position = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0) + column - 1;
  }
  void rest;
  return new QueryError(summary, position, e.hint);
}

/** Compiles a view's query (CEL); throws QueryError with the position. */
export function compileViewQuery(text: string, gadgets: readonly GadgetFields[]): ViewQuery {
  try {
    const q = compileQuery<Entry>(text, viewFields(gadgets), { tls: (e) => e.tls !== undefined });
    return { text, match: (e) => q.predicate(e) };
  } catch (e) {
    if (e instanceof UsageError) throw fromUsage(text, e);
    throw e;
  }
}
