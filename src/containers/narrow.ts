// SPDX-License-Identifier: Apache-2.0
/**
 * Reading untyped answers (JSON from the Engine API, objects from proto-loader) without `any`:
 * each accessor returns the expected type or a neutral default, so a runtime that omits a field
 * degrades to an empty value instead of a crash.
 */

export type Json = Readonly<Record<string, unknown>>;

export function asObject(v: unknown): Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {};
}

export function asArray(v: unknown): readonly unknown[] {
  return Array.isArray(v) ? v : [];
}

export function str(o: Json, key: string): string {
  const v = o[key];
  return typeof v === 'string' ? v : '';
}

export function num(o: Json, key: string): number {
  const v = o[key];
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
  return 0;
}

export function bool(o: Json, key: string): boolean {
  return o[key] === true;
}

/** A string→string map; non-string values are dropped. */
export function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(asObject(v))) {
    if (typeof value === 'string') out[key] = value;
  }
  return out;
}

/** Runs `fn` over `items` with at most `limit` in flight, keeping order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
