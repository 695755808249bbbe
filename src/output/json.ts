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

export class JsonWriter<E> {
  constructor(private readonly fields: readonly Field<E>[], private readonly out: Sink, private readonly pretty = false) {}

  write(batch: readonly E[]): void {
    let s = '';
    for (const e of batch) s += `${JSON.stringify(toJsonObject(this.fields, e), null, this.pretty ? 2 : undefined)}\n`;
    if (s) this.out.write(s);
  }
}
