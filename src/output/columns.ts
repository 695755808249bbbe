// SPDX-License-Identifier: Apache-2.0
/** Columns as events arrive, ig-style: a header once, then one line per event. */
import { formatValue, type Field } from '../fields/field.js';

export interface Sink {
  write(s: string): unknown;
}

export class ColumnWriter<E> {
  private headerDone = false;
  constructor(private readonly fields: readonly Field<E>[], private readonly out: Sink) {}

  private cell(f: Field<E>, text: string, last: boolean): string {
    const clean = text.replace(/[\x00-\x1f\x7f]/g, '.');
    if (last) return clean;
    const fitted = clean.length > f.width ? `${clean.slice(0, Math.max(0, f.width - 1))}…` : clean;
    return f.align === 'right' ? fitted.padStart(f.width) : fitted.padEnd(f.width);
  }

  private line(values: string[]): string {
    return `${values.map((v, i) => this.cell(this.fields[i] as Field<E>, v, i === values.length - 1)).join(' ').trimEnd()}\n`;
  }

  header(): void {
    if (this.headerDone) return;
    this.headerDone = true;
    this.out.write(this.line(this.fields.map((f) => f.column)));
  }

  write(batch: readonly E[]): void {
    this.header();
    let s = '';
    for (const e of batch) s += this.line(this.fields.map((f) => formatValue(f.get(e))));
    if (s) this.out.write(s);
  }
}
