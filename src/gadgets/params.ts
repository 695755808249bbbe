// SPDX-License-Identifier: Apache-2.0
/**
 * Gadget parameters: values as text (CLI flags, agent requests, UI controls) → checked typed
 * values, with one error wording for all. Shared declarations (--ring-size) live here once.
 */
import { UsageError } from '../errors.js';
import type { GadgetParam, ParamValue, ParamValues } from './definition.js';

/** "4096", "64k", "4m" → bytes. */
export function parseSize(flag: string, s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const m = /^(\d+)\s*([kKmM]?)(i?[bB])?$/.exec(s.trim());
  if (m === null) throw new UsageError(`--${flag} wants a size such as 4096, 64k or 4m, got "${s}"`);
  const n = Number(m[1]) * (m[2] === '' ? 1 : /k/i.test(m[2] ?? '') ? 1024 : 1024 * 1024);
  if (!Number.isSafeInteger(n) || n > 0xffffffff) throw new UsageError(`--${flag} ${s} is too large`);
  return n;
}

function rangeWords(p: GadgetParam): string {
  if (p.max !== undefined) return ` between ${p.min ?? 0} and ${p.max}`;
  if (p.min !== undefined) return ` ≥ ${p.min}`;
  return '';
}

/** One raw value (a string, strings for a list, a boolean) → the parameter's typed value. */
export function parseParam(p: GadgetParam, raw: unknown): ParamValue {
  if (raw === undefined) return undefined;
  const last = Array.isArray(raw) ? raw.at(-1) : raw;
  let v: ParamValue;
  switch (p.type) {
    case 'bool':
      if (typeof last === 'boolean') v = last;
      else if (last === 'true' || last === '1') v = true;
      else if (last === 'false' || last === '0') v = false;
      else throw new UsageError(`--${p.name} is a switch, got "${String(last)}"`);
      break;
    case 'int': {
      const s = String(last).trim();
      const n = typeof last === 'number' ? last : s === '' ? Number.NaN : Number(s);
      if (!Number.isInteger(n) || (p.min !== undefined && n < p.min) || (p.max !== undefined && n > p.max)) {
        throw new UsageError(`--${p.name} wants a whole number${rangeWords(p)}, got "${String(last)}"`);
      }
      v = n;
      break;
    }
    case 'size': {
      const n = typeof last === 'number' ? last : parseSize(p.name, String(last));
      if (n === undefined || (p.min !== undefined && n < p.min) || (p.max !== undefined && n > p.max)) {
        throw new UsageError(`--${p.name} wants a size${rangeWords(p)} bytes, got "${String(last)}"`, p.min !== undefined && n !== undefined && n < p.min ? `--${p.name} ${n} would keep nothing; leave it out for the default` : undefined);
      }
      v = n;
      break;
    }
    case 'list': {
      const all = (Array.isArray(raw) ? raw : [raw]).map(String).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
      v = all;
      break;
    }
    default:
      v = String(last);
  }
  if (p.choices !== undefined) {
    for (const x of Array.isArray(v) ? v : [v]) {
      if (!p.choices.includes(String(x))) throw new UsageError(`--${p.name}: unknown ${p.choiceNoun ?? 'value'} "${String(x)}"`, `use ${p.choices.join(', ')}`);
    }
  }
  p.check?.(v);
  return v;
}

/** Raw values by name → checked values, defaults filled in; unknown names are usage errors. */
export function parseParams(params: readonly GadgetParam[], raw: Readonly<Record<string, unknown>>): ParamValues {
  const known = new Map(params.map((p) => [p.name, p]));
  for (const k of Object.keys(raw)) if (!known.has(k) && raw[k] !== undefined) throw new UsageError(`unknown parameter "${k}"`, `known: ${params.map((p) => p.name).join(', ')}`);
  const out: Record<string, ParamValue> = {};
  for (const p of params) {
    const v = parseParam(p, raw[p.name]);
    out[p.name] = v ?? p.default;
  }
  return out;
}

export function intParam(v: ParamValues, name: string): number | undefined {
  const x = v[name];
  return typeof x === 'number' ? x : undefined;
}

export function strParam(v: ParamValues, name: string): string | undefined {
  const x = v[name];
  return typeof x === 'string' ? x : undefined;
}

export function boolParam(v: ParamValues, name: string): boolean {
  return v[name] === true;
}

export function listParam(v: ParamValues, name: string): readonly string[] | undefined {
  const x = v[name];
  return Array.isArray(x) ? (x as readonly string[]) : undefined;
}

/** --ring-size, declared once: MiB, a power of two. */
export function ringSizeParam(defaultMiB: number): GadgetParam {
  return {
    name: 'ring-size',
    type: 'int',
    arg: 'MIB',
    min: 1,
    max: 1024,
    description: `ring buffer size in MiB, a power of two (default ${defaultMiB})`,
    check(v) {
      if (typeof v === 'number' && (v & (v - 1)) !== 0) throw new UsageError(`--ring-size wants a power of two, got ${v}`);
    },
  };
}

/** The ring size in bytes, when --ring-size was given. */
export function ringBytes(v: ParamValues): number | undefined {
  const mib = intParam(v, 'ring-size');
  return mib === undefined ? undefined : mib << 20;
}
