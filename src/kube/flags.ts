// SPDX-License-Identifier: Apache-2.0
/** `kubectl tlscope` flags: tlscope's own (scope, output, the gadget's parameters) plus kubectl's. */
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';
import type { GadgetParam } from '../gadgets/definition.js';

export interface Spec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  arg?: string;
  description: string;
}
export type Specs = Record<string, Spec>;
export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

export const clusterOptions: Specs = {
  kubeconfig: { type: 'string', arg: 'FILE', description: 'the kubeconfig (default $KUBECONFIG, else ~/.kube/config)' },
  context: { type: 'string', arg: 'NAME', description: 'the kubeconfig context to use' },
};

export const traceOptions: Specs = {
  namespace: { type: 'string', short: 'n', arg: 'NS', description: 'only pods in this namespace (as --k8s-namespace)' },
  'agent-namespace': { type: 'string', arg: 'NS', description: 'where the agents run (default tlscope)' },
  node: { type: 'string', arg: 'NAME', multiple: true, description: 'only these nodes (repeatable or comma-separated)' },
  runtimes: { type: 'string', short: 'r', arg: 'LIST', multiple: true, description: 'container runtimes on the nodes (default containerd)' },
  containername: { type: 'string', short: 'c', arg: 'NAME', multiple: true, description: 'only these containers (runtime names)' },
  host: { type: 'boolean', description: 'include the nodes\' processes that are in no pod' },
  pid: { type: 'string', short: 'p', arg: 'PID', multiple: true, description: 'only these processes (host pids; give --node too)' },
  'k8s-namespace': { type: 'string', arg: 'NS', description: 'only pods in this Kubernetes namespace' },
  'k8s-podname': { type: 'string', arg: 'POD', description: 'only this pod (resolved by the API: only its node is asked)' },
  'k8s-containername': { type: 'string', arg: 'NAME', description: 'only this container of a pod spec' },
  'k8s-selector': { type: 'string', short: 'l', arg: 'K=V,…', multiple: true, description: 'only pods with these labels' },
  output: { type: 'string', short: 'o', arg: 'FORMAT', description: 'columns (default), json or jsonpretty' },
  fields: { type: 'string', arg: 'LIST', description: 'fields to show, e.g. k8s.node,k8s.podName,name' },
  filter: { type: 'string', short: 'F', arg: 'EXPR', description: "keep events where every term holds (evaluated on the nodes): 'name~\\.test$'" },
  timeout: { type: 'string', short: 't', arg: 'SECONDS', description: 'stop after this many seconds (default: until Ctrl-C)' },
  verbose: { type: 'boolean', short: 'v', description: 'more detail' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

export function paramSpecs(params: readonly GadgetParam[]): Specs {
  const out: Specs = {};
  for (const p of params) {
    if (p.hidden) continue;
    out[p.name] = { type: p.type === 'bool' ? 'boolean' : 'string', ...(p.short === undefined ? {} : { short: p.short }), ...(p.arg === undefined ? {} : { arg: p.arg }), ...(p.type === 'list' ? { multiple: true } : {}), description: p.description };
  }
  return out;
}

export function parseFlags(argv: string[], specs: Specs): { values: Values; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, s] of Object.entries(specs)) options[name] = { type: s.type, ...(s.short === undefined ? {} : { short: s.short }), ...(s.multiple ? { multiple: true } : {}) };
  try {
    const r = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: r.values as Values, positionals: r.positionals };
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/^.*?: /, '').replace(/\. To specify a positional argument.*$/s, ''), 'see --help');
  }
}

export function str(v: Values, k: string): string | undefined {
  const x = v[k];
  return typeof x === 'string' ? x : Array.isArray(x) ? (x.at(-1) as string | undefined) : undefined;
}

export function list(v: Values, k: string): string[] | undefined {
  const x = v[k];
  if (x === undefined) return undefined;
  const items = (Array.isArray(x) ? x : [x]).flatMap((s) => String(s).split(',')).map((s) => s.trim()).filter(Boolean);
  return items;
}

export function flag(v: Values, k: string): boolean {
  return v[k] === true;
}

export function help(usage: string, summary: string, specs: Specs, extra = ''): string {
  const rows = Object.entries(specs).map(([name, s]) => [`${s.short ? `-${s.short}, ` : '    '}--${name}${s.type === 'string' ? ` ${s.arg ?? 'VALUE'}` : ''}`, s.description] as const);
  const w = Math.min(34, Math.max(...rows.map(([f]) => f.length)) + 2);
  return `${summary}\n\nUsage: ${usage}\n\nOptions:\n${rows.map(([f, d]) => `  ${f.padEnd(w)}${f.length >= w ? `\n  ${' '.repeat(w)}` : ''}${d}`).join('\n')}\n${extra ? `\n${extra.trimEnd()}\n` : ''}`;
}
