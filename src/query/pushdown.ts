// SPDX-License-Identifier: Apache-2.0
/**
 * What part of a query a kernel filter can apply: the process ids, mount and network namespaces
 * an event must have for the expression to be true. Sound, not complete: a key is given only
 * when every event outside its set makes the expression false (`proc.pid == 5 && …`,
 * `proc.pid in [5, 6]`, `proc.pid == 5 || proc.pid == 6`); the predicate still runs on what
 * the kernel lets through.
 */
import type { ASTNode } from '@marcbachmann/cel-js';

export interface QueryPushdown {
  pids?: number[];
  mntns?: number[];
  netns?: number[];
}

export type PushdownKey = keyof QueryPushdown;

type Constraint = Map<PushdownKey, Set<number>>;

function intLiteral(n: ASTNode): number | undefined {
  if (n.op !== 'value') return undefined;
  const v = n.args;
  if (typeof v === 'bigint' && v >= 0n && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  return undefined;
}

function pathOf(n: ASTNode): string | undefined {
  if (n.op === 'id') return n.args;
  if (n.op === '.') {
    const base = pathOf(n.args[0]);
    return base === undefined ? undefined : `${base}.${n.args[1]}`;
  }
  return undefined;
}

function constraintOf(n: ASTNode, keyOf: (path: string) => PushdownKey | undefined): Constraint {
  switch (n.op) {
    case '&&': {
      const a = constraintOf(n.args[0], keyOf);
      const b = constraintOf(n.args[1], keyOf);
      for (const [k, s] of b) {
        const other = a.get(k);
        a.set(k, other === undefined ? s : new Set([...s].filter((x) => other.has(x))));
      }
      return a;
    }
    case '||': {
      const a = constraintOf(n.args[0], keyOf);
      const b = constraintOf(n.args[1], keyOf);
      const out: Constraint = new Map();
      for (const [k, s] of a) {
        const other = b.get(k);
        if (other !== undefined) out.set(k, new Set([...s, ...other]));
      }
      return out;
    }
    case '==': {
      const [l, r] = n.args;
      for (const [p, v] of [[l, r], [r, l]] as const) {
        const path = pathOf(p);
        const key = path === undefined ? undefined : keyOf(path);
        const value = intLiteral(v);
        if (key !== undefined && value !== undefined) return new Map([[key, new Set([value])]]);
      }
      return new Map();
    }
    case 'in': {
      const [l, r] = n.args;
      const path = pathOf(l);
      const key = path === undefined ? undefined : keyOf(path);
      if (key === undefined || r.op !== 'list') return new Map();
      const values = r.args.map(intLiteral);
      if (values.some((v) => v === undefined)) return new Map();
      return new Map([[key, new Set(values as number[])]]);
    }
    default:
      return new Map();
  }
}

/** The kernel-filterable part of an expression; `keyOf` maps a field path to its filter. */
export function pushdownOf(ast: ASTNode, keyOf: (path: string) => PushdownKey | undefined): QueryPushdown {
  const out: QueryPushdown = {};
  for (const [k, s] of constraintOf(ast, keyOf)) out[k] = [...s].sort((a, b) => a - b);
  return out;
}
