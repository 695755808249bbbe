// SPDX-License-Identifier: Apache-2.0
/** The scope and output flags every command shares, and gadget parameters as flags. */
import { parseSelectorFlags, type ContainerSelector } from '../containers/selector.js';
import type { GadgetParam } from '../gadgets/definition.js';
import { bool, list, str, type OptionSpecs, type ParsedValues } from './args.js';

export const scopeOptions: OptionSpecs = {
  runtimes: { type: 'string', short: 'r', arg: 'LIST', multiple: true, description: 'container runtimes to trace: docker,containerd,podman,cri-o (default all)' },
  containername: { type: 'string', short: 'c', arg: 'NAME', multiple: true, description: 'only these containers (repeatable or comma-separated)' },
  host: { type: 'boolean', description: 'include the host (alone: only the host)' },
  pid: { type: 'string', short: 'p', arg: 'PID', multiple: true, description: 'only these processes (host pids)' },
  'k8s-namespace': { type: 'string', arg: 'NS', description: 'only pods in this Kubernetes namespace' },
  'k8s-podname': { type: 'string', arg: 'POD', description: 'only this pod' },
  'k8s-containername': { type: 'string', arg: 'NAME', description: 'only this container of a pod spec' },
  'k8s-selector': { type: 'string', arg: 'K=V,…', multiple: true, description: 'only pods with these labels' },
};

export const outputOptions: OptionSpecs = {
  output: { type: 'string', short: 'o', arg: 'FORMAT', description: 'columns (default), json (one object per line) or jsonpretty' },
  fields: { type: 'string', arg: 'LIST', description: 'fields to show, e.g. pid,comm,name (see the field list below)' },
  filter: { type: 'string', short: 'F', arg: 'EXPR', description: "keep events where every term holds: 'name~\\.test$,proc.comm==curl'" },
  query: { type: 'string', short: 'q', arg: 'CEL', description: 'keep events where this CEL expression is true, e.g. \'proc.comm == "curl" && name.endsWith(".test")\' (fields by their JSON names; `tls` is true for decrypted events)' },
  timeout: { type: 'string', short: 't', arg: 'SECONDS', description: 'stop after tracing for this many seconds, counted from the start of tracing or of the wait for -c containers (default: until Ctrl-C)' },
  verbose: { type: 'boolean', short: 'v', description: 'more detail on errors and in the summary' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

/** The scope flags every command shares (absent ones are simply not set) → a checked selector. */
export function selectorFrom(v: ParsedValues): ContainerSelector {
  return parseSelectorFlags({
    ...(v.runtimes === undefined ? {} : { runtimes: list(v, 'runtimes') ?? [] }),
    ...(v.containername === undefined ? {} : { containername: list(v, 'containername') ?? [] }),
    ...(bool(v, 'host') ? { host: true } : {}),
    ...(v.pid === undefined ? {} : { pid: list(v, 'pid') ?? [] }),
    ...(str(v, 'k8s-namespace') === undefined ? {} : { k8sNamespace: str(v, 'k8s-namespace') as string }),
    ...(str(v, 'k8s-podname') === undefined ? {} : { k8sPodname: str(v, 'k8s-podname') as string }),
    ...(str(v, 'k8s-containername') === undefined ? {} : { k8sContainername: str(v, 'k8s-containername') as string }),
    ...(v['k8s-selector'] === undefined ? {} : { k8sSelector: list(v, 'k8s-selector') ?? [] }),
  });
}

/** A gadget's parameters as CLI options (the one declaration is the gadget's). */
export function paramOptions(params: readonly GadgetParam[]): OptionSpecs {
  const out: OptionSpecs = {};
  for (const p of params) {
    if (p.hidden) continue;
    out[p.name] = {
      type: p.type === 'bool' ? 'boolean' : 'string',
      ...(p.short === undefined ? {} : { short: p.short }),
      ...(p.type === 'bool' ? {} : { arg: p.arg ?? (p.type === 'int' ? 'N' : p.type === 'list' ? 'LIST' : 'VALUE') }),
      ...(p.type === 'list' ? { multiple: true } : {}),
      description: p.description,
    };
  }
  return out;
}

/** The parsed flags of a gadget's parameters, as raw values for the session to check. */
export function paramValuesFrom(params: readonly GadgetParam[], v: ParsedValues): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  for (const p of params) {
    if (p.hidden || v[p.name] === undefined) continue;
    raw[p.name] = p.type === 'bool' ? bool(v, p.name) : p.type === 'list' ? (list(v, p.name) ?? []) : str(v, p.name);
  }
  return raw;
}
