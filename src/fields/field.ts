// SPDX-License-Identifier: Apache-2.0
/**
 * One declaration per field drives columns (header, width, alignment), JSON (the dotted name
 * becomes nesting: `proc.comm` → {"proc":{"comm":…}}) and `--filter`.
 */
import { UsageError } from '../errors.js';

export type FieldValue = string | number | bigint | boolean | undefined;

/** What `--query` (CEL) types a field as; absent means string. */
export type FieldType = 'string' | 'int' | 'double' | 'bool';

export interface Field<E> {
  /** JSON name, dotted for nesting; Inspektor Gadget's name where the concept is shared. */
  name: string;
  /** Column header. */
  column: string;
  /** Column width in characters; longer values are cut with an ellipsis (except the last column). */
  width: number;
  align?: 'left' | 'right';
  /** The value's type for `--query` (default 'string'); numbers and booleans must say so. */
  type?: FieldType;
  description: string;
  /** Shown without --fields. */
  visible: boolean;
  get(e: E): FieldValue;
  /**
   * Optional, for -o json's line encoder: the value as JSON text, exactly
   * `JSON.stringify` of what `get` returns (bigints as the JSON writer turns them), or
   * undefined when `get` gives undefined. A field whose value is costly to build (a
   * payload encoded as text) writes it straight from its bytes here.
   */
  json?(e: E): string | undefined;
}

/** Looks a field up by JSON name, column header or the last part of its name (case-insensitive). */
export function findField<E>(fields: readonly Field<E>[], key: string): Field<E> | undefined {
  const k = key.toLowerCase();
  return (
    fields.find((f) => f.name.toLowerCase() === k) ??
    fields.find((f) => f.column.toLowerCase() === k) ??
    fields.find((f) => f.name.split('.').at(-1)?.toLowerCase() === k)
  );
}

/** Resolves `--fields a,b,c` (or the default visible set) to field declarations. */
export function selectFields<E>(fields: readonly Field<E>[], spec: string | undefined, defaults?: (f: Field<E>) => boolean): Field<E>[] {
  if (spec === undefined || spec === '') return fields.filter(defaults ?? ((f) => f.visible));
  const names = spec.split(',').map((s) => s.trim()).filter(Boolean);
  return names.map((n) => {
    const f = findField(fields, n);
    if (f === undefined) throw new UsageError(`unknown field "${n}"`, `known fields: ${fields.map((x) => x.name).join(', ')}`);
    return f;
  });
}

export function formatValue(v: FieldValue): string {
  if (v === undefined) return '';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  return String(v);
}
