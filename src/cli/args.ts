// SPDX-License-Identifier: Apache-2.0
/** Option declarations that drive both parsing (node:util parseArgs) and --help. */
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** Value placeholder in help, e.g. NAME. */
  arg?: string;
  description: string;
  multiple?: boolean;
  default?: string | boolean;
}

export type OptionSpecs = Record<string, OptionSpec>;

export type ParsedValues = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface Parsed {
  values: ParsedValues;
  positionals: string[];
}

export function parse(argv: string[], specs: OptionSpecs, allowPositionals: boolean): Parsed {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, s] of Object.entries(specs)) {
    options[name] = { type: s.type, ...(s.short === undefined ? {} : { short: s.short }), ...(s.multiple ? { multiple: true } : {}) };
  }
  try {
    const r = parseArgs({ args: argv, options, allowPositionals, strict: true });
    return { values: r.values as ParsedValues, positionals: r.positionals };
  } catch (e) {
    const msg = (e as Error).message.replace(/^.*?: /, '').replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(msg, 'see --help');
  }
}

export function str(v: ParsedValues, name: string): string | undefined {
  const x = v[name];
  if (Array.isArray(x)) return x.length ? String(x.at(-1)) : undefined;
  return typeof x === 'string' ? x : undefined;
}

/** Values of a repeatable string option, also split on commas (`-c a,b -c c`). */
export function list(v: ParsedValues, name: string): string[] | undefined {
  const x = v[name];
  if (x === undefined) return undefined;
  const all = (Array.isArray(x) ? x : [x]).map(String).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  return all.length ? all : undefined;
}

export function bool(v: ParsedValues, name: string): boolean {
  return v[name] === true;
}

export function int(v: ParsedValues, name: string, opts: { min?: number; max?: number } = {}): number | undefined {
  const s = str(v, name);
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isInteger(n) || (opts.min !== undefined && n < opts.min) || (opts.max !== undefined && n > opts.max)) {
    const range = opts.max !== undefined ? ` between ${opts.min ?? 0} and ${opts.max}` : opts.min !== undefined ? ` ≥ ${opts.min}` : '';
    throw new UsageError(`--${name} wants a whole number${range}, got "${s}"`);
  }
  return n;
}

export function helpText(usage: string, summary: string, specs: OptionSpecs, extra = ''): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const flag = `${s.short ? `-${s.short}, ` : '    '}--${name}${s.type === 'string' ? ` ${s.arg ?? 'VALUE'}` : ''}`;
    return [flag, s.description] as const;
  });
  const w = Math.min(34, Math.max(...rows.map(([f]) => f.length)) + 2);
  const body = rows.map(([f, d]) => `  ${f.padEnd(w)}${f.length >= w ? `\n  ${' '.repeat(w)}` : ''}${d}`).join('\n');
  return `${summary}\n\nUsage: ${usage}\n\nOptions:\n${body}\n${extra ? `\n${extra.trimEnd()}\n` : ''}`;
}
