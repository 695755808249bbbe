// SPDX-License-Identifier: Apache-2.0
/**
 * `--filter 'field==v,field!=v,field~regex,field>n,field<n'`: every term must hold (AND).
 * Terms name fields the way --fields does. Numbers compare numerically.
 */
import { UsageError } from '../errors.js';
import { findField, formatValue, type Field } from './field.js';

export type Predicate<E> = (e: E) => boolean;

const TERM = /^\s*([A-Za-z0-9_.]+)\s*(==|!=|!~|~|>=|<=|>|<)\s*(.*?)\s*$/;

export function parseFilter<E>(fields: readonly Field<E>[], spec: string | undefined): Predicate<E> {
  if (spec === undefined || spec.trim() === '') return () => true;
  const preds = splitTerms(spec).map((term) => {
    const m = TERM.exec(term);
    if (m === null) throw new UsageError(`bad filter term "${term}"`, 'write terms as field==value, field!=value, field~regex, field>number; join them with commas');
    const [, key = '', op = '', raw = ''] = m;
    const f = findField(fields, key);
    if (f === undefined) throw new UsageError(`filter: unknown field "${key}"`, `known fields: ${fields.map((x) => x.name).join(', ')}`);
    return makePredicate(f, op, raw);
  });
  return (e) => preds.every((p) => p(e));
}

/** Splits on commas that are not escaped with a backslash (regexes may need commas). */
function splitTerms(spec: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < spec.length; i++) {
    const ch = spec[i];
    if (ch === '\\' && spec[i + 1] === ',') {
      cur += ',';
      i++;
    } else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.filter((t) => t.trim() !== '');
}

function makePredicate<E>(f: Field<E>, op: string, raw: string): Predicate<E> {
  switch (op) {
    case '==':
      return (e) => formatValue(f.get(e)) === raw;
    case '!=':
      return (e) => formatValue(f.get(e)) !== raw;
    case '~':
    case '!~': {
      let re: RegExp;
      try {
        re = new RegExp(raw);
      } catch (err) {
        throw new UsageError(`filter: bad regular expression "${raw}": ${(err as Error).message}`);
      }
      return op === '~' ? (e) => re.test(formatValue(f.get(e))) : (e) => !re.test(formatValue(f.get(e)));
    }
    default: {
      const n = Number(raw);
      if (raw === '' || Number.isNaN(n)) throw new UsageError(`filter: "${op}" needs a number, got "${raw}"`);
      const cmp = { '>': (a: number) => a > n, '<': (a: number) => a < n, '>=': (a: number) => a >= n, '<=': (a: number) => a <= n }[op];
      if (cmp === undefined) throw new UsageError(`filter: unknown operator ${op}`);
      return (e) => {
        const v = f.get(e);
        return v !== undefined && v !== '' && cmp(Number(v));
      };
    }
  }
}
