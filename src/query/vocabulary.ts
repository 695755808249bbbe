// SPDX-License-Identifier: Apache-2.0
/**
 * The names a gadget's queries see besides its JSON fields: `tls` (true for decrypted events,
 * as Kubeshark's KFL helper) and, for `trace tls --http`, `http.<field>` for each HTTP field
 * (`http.status >= 500`), the way KFL users write it.
 */
import type { Field } from '../fields/field.js';
import type { QueryOptions } from './query.js';

const HTTP_FIELDS = ['role', 'method', 'status', 'latencyMs', 'durationMs', 'client', 'server', 'host', 'reason', 'requestBytes', 'responseBytes', 'path'];

/** Query options for the gadget named `gadget` ('trace sni', 'trace tls', 'capture'). */
export function queryOptionsFor<E>(gadget: string, fields: readonly Field<E>[]): QueryOptions<E> {
  const aliases: Record<string, string> = {};
  const has = new Set(fields.map((f) => f.name));
  if (has.has('method') && has.has('status')) for (const n of HTTP_FIELDS) if (has.has(n)) aliases[`http.${n}`] = n;
  return { tls: gadget === 'trace tls', aliases };
}
