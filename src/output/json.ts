// SPDX-License-Identifier: Apache-2.0
/** One JSON object per event (`-o json`) or indented (`-o jsonpretty`); dotted names nest. */
import type { Field, FieldValue } from '../fields/field.js';
import type { Sink } from './columns.js';

type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

function jsonValue(v: FieldValue): Json | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  return v;
}

export function toJsonObject<E>(fields: readonly Field<E>[], e: E): Record<string, Json> {
  const root: Record<string, Json> = {};
  for (const f of fields) {
    const v = jsonValue(f.get(e));
    if (v === undefined) continue;
    const parts = f.name.split('.');
    let node = root;
    for (let i = 0; i < parts.length - 1; i++) {
      const k = parts[i] as string;
      const next = node[k];
      if (typeof next === 'object' && next !== null && !Array.isArray(next)) node = next;
      else node = node[k] = {};
    }
    node[parts.at(-1) as string] = v;
  }
  return root;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A field value as JSON text, as `JSON.stringify(toJsonObject(…))` writes it; undefined: left out. */
export function jsonText(v: unknown): string | undefined {
  switch (typeof v) {
    case 'undefined':
      return undefined;
    case 'string':
      return JSON.stringify(v);
    case 'number':
      return Number.isFinite(v) ? String(v) : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'bigint':
      return v <= MAX_SAFE ? jsonText(Number(v)) : JSON.stringify(v.toString());
    default:
      return JSON.stringify(v);
  }
}

/** One object of the line: its fields and nested objects in the order toJsonObject makes them. */
interface JsonNode<E> {
  /** `"key":` (the key escaped once, here) */
  key: string;
  field: Field<E> | undefined;
  children: JsonNode<E>[];
}

/**
 * Compiles the field list into a line encoder: the keys escaped once, each value turned into
 * JSON text directly (a field's own `json` when it has one), no object per event. Gives the
 * same text as `JSON.stringify(toJsonObject(fields, e))`; undefined when the names need that
 * generic path (a name that is another's prefix, repeated names, keys JavaScript would
 * reorder).
 */
export function compileJsonLine<E>(fields: readonly Field<E>[]): ((e: E) => string) | undefined {
  const root: JsonNode<E> = { key: '', field: undefined, children: [] };
  const names = new Set<string>();
  for (const f of fields) {
    if (names.has(f.name)) return undefined;
    names.add(f.name);
    const parts = f.name.split('.');
    // integer-like keys come first in a JavaScript object, whatever the insertion order
    if (parts.some((p) => /^(0|[1-9]\d*)$/.test(p))) return undefined;
    let node = root;
    for (let i = 0; i < parts.length; i++) {
      const key = `${JSON.stringify(parts[i])}:`;
      let child = node.children.find((c) => c.key === key);
      if (child === undefined) {
        child = { key, field: undefined, children: [] };
        node.children.push(child);
      }
      node = child;
    }
    node.field = f;
  }
  const conflict = (n: JsonNode<E>): boolean => (n.field !== undefined && n.children.length > 0) || n.children.some(conflict);
  if (conflict(root)) return undefined;
  const leafText = (f: Field<E>): ((e: E) => string | undefined) => {
    const own = f.json;
    if (own !== undefined) return (e) => own.call(f, e);
    return (e) => jsonText(f.get(e));
  };
  /** the members of an object, "a":1,"b":{…}, or '' when every value is left out */
  const members = (n: JsonNode<E>): ((e: E) => string) => {
    const parts = n.children.map((c) => {
      if (c.field !== undefined) {
        const text = leafText(c.field);
        const key = c.key;
        return (e: E): string => {
          const t = text(e);
          return t === undefined ? '' : key + t;
        };
      }
      const inner = members(c);
      const key = c.key;
      return (e: E): string => {
        const t = inner(e);
        return t === '' ? '' : `${key}{${t}}`;
      };
    });
    return (e) => {
      let s = '';
      for (let i = 0; i < parts.length; i++) {
        const t = (parts[i] as (e: E) => string)(e);
        if (t === '') continue;
        s = s === '' ? t : `${s},${t}`;
      }
      return s;
    };
  };
  const body = members(root);
  return (e) => `{${body(e)}}`;
}

export class JsonWriter<E> {
  private readonly line: ((e: E) => string) | undefined;

  constructor(private readonly fields: readonly Field<E>[], private readonly out: Sink, private readonly pretty = false) {
    this.line = pretty ? undefined : compileJsonLine(fields);
  }

  write(batch: readonly E[]): void {
    let s = '';
    const line = this.line;
    if (line !== undefined) for (const e of batch) s += `${line(e)}\n`;
    else for (const e of batch) s += `${JSON.stringify(toJsonObject(this.fields, e), null, this.pretty ? 2 : undefined)}\n`;
    if (s) this.out.write(s);
  }
}
