// SPDX-License-Identifier: Apache-2.0
/**
 * The view's query, evaluated over an entry's `-o json` object (the names `--fields` and
 * `--query` use), plus `tls` (decrypted) and `kind` (http, tls, sni, packet).
 *
 * Until the CEL compiler of src/query lands this takes Inspektor Gadget's --filter syntax
 * (`proc.comm==curl,path~^/api,status>=500`: every term holds), with errors at their position.
 */
import type { Entry } from './protocol.js';

export class QueryError extends Error {
  constructor(message: string, readonly position: number | undefined) {
    super(message);
  }
}

export interface ViewQuery {
  readonly text: string;
  match(entry: Entry): boolean;
}

const TERM = /^(\s*)([A-Za-z_][A-Za-z0-9_.]*)\s*(==|!=|!~|~|>=|<=|>|<)\s*(.*?)\s*$/;

function lookup(obj: Record<string, unknown>, path: string): unknown {
  let v: unknown = obj;
  for (const k of path.split('.')) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

/** The object a query sees: the JSON, and what the table adds. */
export function queryObject(e: Entry): Record<string, unknown> {
  return { ...e.json, tls: e.tls !== undefined, kind: e.kind, node: e.node };
}

function text(v: unknown): string {
  return v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
}

export function compileViewQuery(query: string): ViewQuery {
  const preds: ((o: Record<string, unknown>) => boolean)[] = [];
  let at = 0;
  for (const term of query.split(',')) {
    const start = at;
    at += term.length + 1;
    if (term.trim() === '') continue;
    const m = TERM.exec(term);
    if (m === null) throw new QueryError(`expected field==value, field!=value, field~regex or field>number, got "${term.trim()}"`, start + (term.length - term.trimStart().length));
    const [, lead = '', path = '', op = '', raw = ''] = m;
    const valueAt = start + term.indexOf(raw, lead.length + path.length + op.length);
    switch (op) {
      case '==':
        preds.push((o) => text(lookup(o, path)) === raw);
        break;
      case '!=':
        preds.push((o) => text(lookup(o, path)) !== raw);
        break;
      case '~':
      case '!~': {
        let re: RegExp;
        try {
          re = new RegExp(raw);
        } catch (err) {
          throw new QueryError(`bad regular expression: ${(err as Error).message}`, valueAt);
        }
        preds.push(op === '~' ? (o) => re.test(text(lookup(o, path))) : (o) => !re.test(text(lookup(o, path))));
        break;
      }
      default: {
        const n = Number(raw);
        if (raw === '' || Number.isNaN(n)) throw new QueryError(`"${op}" needs a number`, valueAt);
        const cmp = op === '>' ? (a: number) => a > n : op === '<' ? (a: number) => a < n : op === '>=' ? (a: number) => a >= n : (a: number) => a <= n;
        preds.push((o) => {
          const v = lookup(o, path);
          return (typeof v === 'number' || (typeof v === 'string' && v !== '')) && cmp(Number(v));
        });
      }
    }
  }
  return { text: query, match: (e) => preds.length === 0 || preds.every((p) => p(queryObject(e))) };
}
