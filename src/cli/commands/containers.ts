// SPDX-License-Identifier: Apache-2.0
/** `tlscope containers`: what the container index sees, like `ig list-containers`. */
import { ContainerIndex } from '../../containers/index.js';
import { matches, SCOPE_HELP } from '../../containers/selector.js';
import type { ContainerInfo } from '../../containers/types.js';
import { errorMessage, UsageError } from '../../errors.js';
import type { Field } from '../../fields/field.js';
import { selectFields } from '../../fields/field.js';
import { parseFilter } from '../../fields/filter.js';
import { ColumnWriter } from '../../output/columns.js';
import { JsonWriter, toJsonObject } from '../../output/json.js';
import type { AnalysisCache } from '../../gadgets/tls/stacks.js';
import { listPids, namespaceInode } from '../../proc/index.js';
import { bool, helpText, parse, str, type OptionSpecs } from '../args.js';
import type { CommandContext } from '../context.js';
import { processTls, stacksSummary, type ProcessTls } from '../process-tls.js';
import { scopeOptions, selectorFrom } from '../scope.js';

const fields: Field<ContainerInfo>[] = [
  { name: 'runtime.runtimeName', column: 'RUNTIME', width: 10, description: 'container runtime', visible: true, get: (c) => c.runtime },
  { name: 'runtime.containerId', column: 'ID', width: 13, description: 'container id', visible: true, get: (c) => c.id },
  { name: 'runtime.containerName', column: 'NAME', width: 24, description: 'container name', visible: true, get: (c) => c.name },
  { name: 'k8s.namespace', column: 'K8S.NAMESPACE', width: 14, description: 'Kubernetes namespace', visible: true, get: (c) => c.k8s?.namespace },
  { name: 'k8s.podName', column: 'K8S.PODNAME', width: 20, description: 'pod', visible: true, get: (c) => c.k8s?.podName },
  { name: 'k8s.containerName', column: 'K8S.CONTAINERNAME', width: 18, description: 'container in the pod spec', visible: true, get: (c) => c.k8s?.containerName },
  { name: 'pid', column: 'PID', width: 8, align: 'right', description: 'first process (host pid)', visible: true, get: (c) => c.pid },
  { name: 'mntns', column: 'MNTNS', width: 11, align: 'right', description: 'mount namespace inode', visible: true, get: (c) => c.mntns },
  { name: 'netns', column: 'NETNS', width: 11, align: 'right', description: 'network namespace inode', visible: true, get: (c) => c.netns },
  { name: 'runtime.containerImageName', column: 'IMAGE', width: 30, description: 'image', visible: false, get: (c) => c.image },
  { name: 'cgroupPath', column: 'CGROUP', width: 40, description: 'cgroup path', visible: false, get: (c) => c.cgroupPath },
  { name: 'source', column: 'SOURCE', width: 8, description: 'runtime: named by its runtime API; hook: learnt from its bundle before it started; cgroup: only its cgroup path was readable', visible: false, get: (c) => c.source },
];

/** A container's processes (those in its mount namespace) with the TLS stacks each maps. */
function containerTls(c: ContainerInfo, pids: readonly number[], cache: AnalysisCache): ProcessTls[] {
  const out: ProcessTls[] = [];
  for (const pid of pids) {
    let mntns: number | undefined;
    try {
      mntns = namespaceInode(pid, 'mnt');
    } catch {
      continue;
    }
    if (mntns !== c.mntns) continue;
    try {
      out.push(processTls(pid, cache));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** "curl[4242]: OpenSSL 3.0.19 (libssl.so.3) hooked", each process with a stack; "none" when none has one. */
function tlsColumn(procs: readonly ProcessTls[]): string {
  const withTls = procs.filter((p) => p.stacks.length > 0);
  if (withTls.length === 0) return `none (${procs.length} process${procs.length === 1 ? '' : 'es'})`;
  return withTls.map((p) => `${p.comm ?? '?'}[${p.pid}]: ${stacksSummary(p.stacks)}`).join(' | ');
}

const options: OptionSpecs = {
  ...scopeOptions,
  tls: { type: 'boolean', description: 'add each container\'s TLS stacks, by its processes, and whether trace tls hooks each (as doctor -p)' },
  output: { type: 'string', short: 'o', arg: 'FORMAT', description: 'columns (default), json or jsonpretty' },
  fields: { type: 'string', arg: 'LIST', description: `fields to show: ${fields.map((f) => f.name).join(', ')}` },
  filter: { type: 'string', short: 'F', arg: 'EXPR', description: "keep containers where every term holds: 'name~^web'" },
  verbose: { type: 'boolean', short: 'v', description: 'report runtimes that exist but fail' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

export async function run(argv: string[], ctx: CommandContext): Promise<number> {
  const { values } = parse(argv, options, false);
  if (bool(values, 'help')) {
    ctx.out.write(helpText('tlscope containers [scope] [-o json]', 'List the containers and pods tlscope sees on this host (docker, containerd, podman, cri-o),\nwith the namespaces its gadgets use to trace them. With --tls, a TLS column: for each process\nof the container, the TLS stacks it maps and whether trace tls hooks each (JSON: a "tls" array\nof processes as tlscope doctor -p gives them).', options, `Scope: ${SCOPE_HELP}`));
    return 0;
  }
  const selector = selectorFrom(values);
  const format = str(values, 'output') ?? 'columns';
  if (!['columns', 'json', 'jsonpretty'].includes(format)) throw new UsageError(`unknown output format "${format}"`, 'use columns, json or jsonpretty');
  const shown = selectFields(fields, str(values, 'fields'), format === 'columns' ? undefined : () => true);
  const keep = parseFilter(fields, str(values, 'filter'));
  const index = new ContainerIndex({
    rescanIntervalMs: 0,
    onWarning: (w) => {
      if (ctx.verbose || bool(values, 'verbose')) ctx.err.write(`tlscope: warning: ${w.kind === 'runtime' ? `${w.runtime}: ` : ''}${errorMessage(w.error)}\n`);
    },
  });
  try {
    await index.start();
    index.rescan(); // once: containers whose runtime cannot be asked, from their cgroup paths
    // -p: the containers those processes run in
    const ofPids = selector.pids?.length ? new Set(selector.pids.map((pid) => index.byPid(pid)?.id)) : undefined;
    const rows = index.all().filter((c) => (ofPids === undefined || ofPids.has(c.id)) && matches(selector, c) && keep(c)).sort((a, b) => a.runtime.localeCompare(b.runtime) || a.name.localeCompare(b.name));
    if (bool(values, 'tls')) {
      const cache: AnalysisCache = new Map();
      const pids = listPids();
      const tls = new Map(rows.map((c) => [c.id, containerTls(c, pids, cache)]));
      if (format === 'columns') {
        const tlsField: Field<ContainerInfo> = { name: 'tls', column: 'TLS', width: 40, description: 'TLS stacks by process', visible: true, get: (c) => tlsColumn(tls.get(c.id) ?? []) };
        new ColumnWriter([...shown, tlsField], ctx.out).write(rows);
      } else {
        for (const c of rows) ctx.out.write(`${JSON.stringify({ ...toJsonObject(shown, c), tls: tls.get(c.id) ?? [] }, null, format === 'jsonpretty' ? 2 : undefined)}\n`);
      }
    } else if (format === 'columns') new ColumnWriter(shown, ctx.out).write(rows);
    else new JsonWriter(shown, ctx.out, format === 'jsonpretty').write(rows);
    if (format === 'columns' && rows.length === 0) ctx.err.write('tlscope: no containers found\n');
    return 0;
  } finally {
    await index.close();
  }
}
