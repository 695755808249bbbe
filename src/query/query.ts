// SPDX-License-Identifier: Apache-2.0
/**
 * `--query EXPR`: a CEL expression (the language of Kubeshark's KFL and of Kubernetes' admission
 * rules) over an event's fields, named as `-o json` names them: `proc.comm == "curl" &&
 * name.endsWith(".test")`, `status >= 500` (also `http.status` with `trace tls --http`), `tls`.
 *
 * The expression is parsed and type-checked once, against the fields' declared types, so a
 * misspelt field or `proc.comm == 3` is a usage error with its column before anything is
 * attached. Evaluation builds, per event, only the top-level names the expression mentions.
 * A field the event does not carry is absent, as in the JSON: `has(k8s.podName)` asks for it,
 * and an expression that reads an absent field is false for that event (CEL's error value).
 *
 * CEL engine: @marcbachmann/cel-js (maintained, no dependencies, ships a type checker with
 * source ranges). @bufbuild/cel 0.6 was tried first: its checker is not exported, so
 * `proc.comm == 3` was silently false instead of an error.
 */
import type { ASTNode, Environment } from '@marcbachmann/cel-js';
import { UsageError } from '../errors.js';
import { lazyModule } from '../lazy-module.js';
import type { Field, FieldType, FieldValue } from '../fields/field.js';
import { pushdownOf, type QueryPushdown } from './pushdown.js';

export type { QueryPushdown } from './pushdown.js';

export interface QueryOptions<E> {
  /** The `tls` variable: true for decrypted events (trace tls), else false (default). */
  tls?: boolean | ((e: E) => boolean);
  /** More names for fields, e.g. `{ 'http.status': 'status' }`. */
  aliases?: Readonly<Record<string, string>>;
}

export interface CompiledQuery<E> {
  readonly source: string;
  /** True when the event matches; false also when the expression reads a field it lacks. */
  predicate(e: E): boolean;
  /** What a kernel filter may drop without changing the answer (pids, mount/network namespaces). */
  readonly pushdown: QueryPushdown;
  /** Field names the expression reads (after aliases), for diagnostics and tests. */
  readonly reads: readonly string[];
  /** Events for which evaluation failed for another reason than an absent field. */
  errors(): number;
}

/** CEL's reserved words (the language definition's list), which cannot name a variable. */
const RESERVED = new Set(['as', 'break', 'const', 'continue', 'else', 'false', 'for', 'function', 'if', 'import', 'in', 'let', 'loop', 'package', 'namespace', 'null', 'return', 'true', 'var', 'void', 'while']);

interface Leaf<E> {
  kind: 'leaf';
  type: FieldType;
  get(e: E): FieldValue;
  name: string;
}
interface Group<E> {
  kind: 'group';
  children: Map<string, Node<E>>;
}
type Node<E> = Leaf<E> | Group<E>;

type Schema = { [k: string]: string | Schema };

function schemaOf<E>(g: Group<E>): Schema {
  const out: Schema = {};
  for (const [k, n] of g.children) out[k] = n.kind === 'leaf' ? n.type : schemaOf(n);
  return out;
}

function celValue(type: FieldType, v: FieldValue): unknown {
  if (v === undefined) return undefined;
  switch (type) {
    case 'int':
      if (typeof v === 'bigint') return v;
      if (typeof v === 'number') return Number.isFinite(v) ? BigInt(Math.trunc(v)) : undefined;
      if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
      return undefined;
    case 'double': {
      const n = Number(v);
      return Number.isNaN(n) ? undefined : n;
    }
    case 'bool':
      return typeof v === 'boolean' ? v : v === 'true';
    default:
      return typeof v === 'string' ? v : String(v);
  }
}

function buildValue<E>(n: Node<E>, e: E): unknown {
  if (n.kind === 'leaf') return celValue(n.type, n.get(e));
  const o: Record<string, unknown> = {};
  for (const [k, c] of n.children) {
    const v = buildValue(c, e);
    if (v !== undefined) o[k] = v;
  }
  return o;
}

/** Every `id` node of the tree (the top-level names it reads) and every dotted path. */
function walk(node: unknown, visit: (n: ASTNode) => void): void {
  if (Array.isArray(node)) {
    for (const x of node) walk(x, visit);
    return;
  }
  if (typeof node !== 'object' || node === null || !('op' in node)) return;
  const n = node as ASTNode;
  visit(n);
  walk(n.args, visit);
}

/** `a.b.c` for a chain of selections from an identifier, else undefined. */
export function dottedPath(node: ASTNode | undefined): string | undefined {
  if (node === undefined) return undefined;
  if (node.op === 'id') return node.args;
  if (node.op === '.') {
    const base = dottedPath(node.args[0]);
    return base === undefined ? undefined : `${base}.${node.args[1]}`;
  }
  return undefined;
}

/** line, column (1-based) of a character offset, and that line's text */
function locate(source: string, offset: number): { line: number; column: number; text: string } {
  const before = source.slice(0, offset);
  const line = before.split('\n').length;
  const start = before.lastIndexOf('\n') + 1;
  const endAt = source.indexOf('\n', offset);
  return { line, column: offset - start + 1, text: source.slice(start, endAt < 0 ? source.length : endAt) };
}

/** A usage error that points at the place: "--query: … at column 11", the line, a caret. */
export function queryError(source: string, summary: string, offset: number | undefined, hint?: string): UsageError {
  if (offset === undefined) return new UsageError(`--query: ${summary}`, hint);
  const at = locate(source, Math.min(Math.max(offset, 0), source.length));
  const where = source.includes('\n') ? `line ${at.line}, column ${at.column}` : `column ${at.column}`;
  const caret = `${' '.repeat(at.column - 1)}^`;
  return new UsageError(`--query: ${summary} at ${where}\n    ${at.text}\n    ${caret}`, hint);
}

interface CelLikeError {
  name?: string;
  summary?: string;
  message: string;
  range?: { start: number; end: number };
  node?: ASTNode;
}

function translate(source: string, err: unknown, names: readonly string[]): UsageError {
  const e = err as CelLikeError;
  const summary = e.summary ?? e.message.split('\n')[0] ?? String(err);
  const offset = e.range?.start;
  const known = `known fields: ${names.join(', ')}`;
  if (/^(Unknown variable|No such key)/.test(summary)) {
    const path = dottedPath(e.node);
    // point at the start of the whole name (proc.cmd), not at its last dot
    return queryError(source, `unknown field${path === undefined ? ` (${summary})` : ` "${path}"`}`, e.node?.start ?? offset, known);
  }
  if (e.name === 'ParseError') return queryError(source, `syntax error: ${summary}`, offset, 'CEL syntax: proc.comm == "curl" && name.endsWith(".test"), proc.pid in [1, 2], !(status >= 500)');
  return queryError(source, summary, offset, known);
}

/** The CEL engine, loaded with the first query (ESM, required synchronously: Node.js >= 20.19). */
const celJs = lazyModule<typeof import('@marcbachmann/cel-js')>('@marcbachmann/cel-js');
const celEnvironment = (): typeof Environment => celJs().Environment;

/**
 * Compiles a CEL expression over these fields (their JSON names; `aliases` adds more).
 * Throws UsageError with the column for syntax errors, unknown fields, type errors and
 * expressions that are not true/false.
 */
export function compileQuery<E>(source: string, fields: readonly Field<E>[], opts: QueryOptions<E> = {}): CompiledQuery<E> {
  if (source.trim() === '') throw new UsageError('--query: the expression is empty', 'e.g. --query \'proc.comm == "curl"\'');
  const root: Group<E> = { kind: 'group', children: new Map() };
  const add = (name: string, f: Field<E>): void => {
    const parts = name.split('.');
    let g = root;
    for (const p of parts.slice(0, -1)) {
      let next = g.children.get(p);
      if (next === undefined) g.children.set(p, (next = { kind: 'group', children: new Map() }));
      if (next.kind === 'leaf') throw new Error(`field ${name} is below the field ${next.name}`);
      g = next;
    }
    const last = parts.at(-1) as string;
    if (g.children.has(last)) return; // the first declaration wins, as findField's does
    g.children.set(last, { kind: 'leaf', type: f.type ?? 'string', get: f.get, name: f.name });
  };
  for (const f of fields) add(f.name, f);
  for (const [alias, target] of Object.entries(opts.aliases ?? {})) {
    const f = fields.find((x) => x.name === target);
    if (f !== undefined) add(alias, f);
  }
  const tls = opts.tls ?? false;
  if (!root.children.has('tls')) root.children.set('tls', { kind: 'leaf', type: 'bool', name: 'tls', get: typeof tls === 'function' ? tls : () => tls });

  const env = new (celEnvironment())({ unlistedVariablesAreDyn: false });
  for (const [name, n] of [...root.children]) {
    // CEL reserves some words (function, package, …) as top-level names: such a field cannot be
    // named in a query (trace tls's `function`: use `source` or `library`)
    if (RESERVED.has(name)) {
      root.children.delete(name);
      continue;
    }
    if (n.kind === 'leaf') env.registerVariable(name, n.type);
    else env.registerVariable({ name, schema: schemaOf(n) });
  }
  const names = [...fields.map((f) => f.name), ...Object.keys(opts.aliases ?? {}), 'tls'].filter((n) => !RESERVED.has(n.split('.')[0] as string));

  let parsed: ReturnType<Environment['parse']>;
  try {
    parsed = env.parse(source);
  } catch (err) {
    throw translate(source, err, names);
  }
  const checked = parsed.check();
  if (!checked.valid) throw translate(source, checked.error, names);
  if (checked.type !== 'bool' && checked.type !== 'dyn') {
    throw queryError(source, `the expression is ${checked.type ?? 'not a boolean'}, not true or false`, 0, 'compare it: status >= 500, name.endsWith(".test"), has(k8s.podName)');
  }

  const ast = parsed.ast as ASTNode;
  const used = new Set<string>();
  const reads = new Set<string>();
  walk(ast, (n) => {
    if (n.op === 'id' && root.children.has(n.args)) used.add(n.args);
    const p = dottedPath(n);
    if (p !== undefined && n.op === '.') reads.add(p);
    else if (p !== undefined && n.op === 'id' && root.children.get(p)?.kind === 'leaf') reads.add(p);
  });
  // a.b read as a.b.c is not a read of a.b: keep the longest paths that name fields
  const fieldReads = [...reads].filter((p) => names.includes(p));
  const parts = [...used].map((name) => [name, root.children.get(name) as Node<E>] as const);
  let errors = 0;
  const evaluate = parsed as unknown as (ctx: Record<string, unknown>) => unknown;
  return {
    source,
    reads: fieldReads,
    pushdown: pushdownOf(ast, (path) => {
      const target = opts.aliases?.[path] ?? path;
      return target === 'proc.pid' ? 'pids' : target === 'proc.mntns_id' ? 'mntns' : target === 'proc.netns_id' ? 'netns' : undefined;
    }),
    errors: () => errors,
    predicate(e: E): boolean {
      const ctx: Record<string, unknown> = {};
      for (const [name, n] of parts) {
        const v = buildValue(n, e);
        if (v !== undefined) ctx[name] = v;
      }
      try {
        return evaluate(ctx) === true;
      } catch (err) {
        const summary = (err as CelLikeError).summary ?? '';
        if (!/^(Unknown variable|No such key)/.test(summary)) errors++;
        return false;
      }
    },
  };
}
