// SPDX-License-Identifier: Apache-2.0
/**
 * `kubectl tlscope deploy | undeploy`: applies deploy/tlscope.yaml (server-side apply, so a
 * second deploy updates in place) with the image and namespace asked for, then waits until
 * every node's agent is ready and says which are not; undeploy removes every object it made
 * and waits until the agents are gone (their programs and links go with their processes).
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AppsV1Api, KubernetesObjectApi, loadAllYaml, PatchStrategy, type KubernetesObject, type V1DaemonSet } from '@kubernetes/client-node';
import { TlscopeError, UsageError } from '../errors.js';
import { Cluster, DEFAULT_NAMESPACE, apiCode, loadKubeConfig, type AgentPod } from './cluster.js';
import { clusterOptions, flag, help, parseFlags, str, type Specs } from './flags.js';
import type { KubeContext } from './trace.js';

export const DEFAULT_IMAGE = 'tlscope-agent:0.1.0';
const FIELD_MANAGER = 'kubectl-tlscope';

const deployOptions: Specs = {
  image: { type: 'string', arg: 'IMAGE', description: `the agent image (default ${DEFAULT_IMAGE})` },
  namespace: { type: 'string', short: 'n', arg: 'NS', description: `the agents' namespace (default ${DEFAULT_NAMESPACE})` },
  timeout: { type: 'string', short: 't', arg: 'SECONDS', description: 'how long to wait for the agents (default 180)' },
  ...clusterOptions,
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

export const deployHelp = help('kubectl tlscope deploy [--image IMAGE] [-n NS]', 'Deploy the tlscope agent on every node (a DaemonSet) and wait until each is ready.', deployOptions);
export const undeployHelp = help('kubectl tlscope undeploy [-n NS]', 'Remove everything `kubectl tlscope deploy` made, and wait until the agents are gone.', deployOptions);

function manifestPath(): string {
  for (const rel of ['../../deploy/tlscope.yaml', '../../../deploy/tlscope.yaml']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new TlscopeError('ERR_INSTALL', 'deploy/tlscope.yaml is missing from the package', { hint: 'reinstall tlscope' });
}

/** The manifests with the namespace and image asked for. */
export function manifests(namespace: string, image: string): KubernetesObject[] {
  const objs = loadAllYaml(readFileSync(manifestPath(), 'utf8')).filter(Boolean) as KubernetesObject[];
  for (const o of objs) {
    const m = o.metadata ?? {};
    if (o.kind === 'Namespace') m.name = namespace;
    else if (m.namespace !== undefined) m.namespace = namespace;
    if (o.kind === 'DaemonSet') {
      for (const c of (o as V1DaemonSet).spec?.template.spec?.containers ?? []) c.image = image;
    }
  }
  return objs;
}

function options(argv: string[]): { cluster: Cluster; namespace: string; image: string; timeoutS: number; help: boolean } {
  const { values: v, positionals } = parseFlags(argv, deployOptions);
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`, 'see --help');
  const namespace = str(v, 'namespace') ?? DEFAULT_NAMESPACE;
  const t = Number(str(v, 'timeout') ?? '180');
  if (!(t > 0)) throw new UsageError(`--timeout wants seconds, got "${str(v, 'timeout')}"`);
  const kc = flag(v, 'help') ? undefined : loadKubeConfig({ ...(str(v, 'kubeconfig') === undefined ? {} : { kubeconfig: str(v, 'kubeconfig') as string }), ...(str(v, 'context') === undefined ? {} : { context: str(v, 'context') as string }) });
  return { cluster: kc === undefined ? (undefined as unknown as Cluster) : new Cluster(kc, namespace), namespace, image: str(v, 'image') ?? DEFAULT_IMAGE, timeoutS: t, help: flag(v, 'help') };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runDeploy(argv: string[], ctx: KubeContext): Promise<number> {
  const o = options(argv);
  if (o.help) {
    ctx.out.write(deployHelp);
    return 0;
  }
  const api = KubernetesObjectApi.makeApiClient(o.cluster.kc);
  for (const obj of manifests(o.namespace, o.image)) {
    try {
      await api.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    } catch (e) {
      throw o.cluster.apiError(e, `apply ${obj.kind} ${obj.metadata?.name}`);
    }
    ctx.err.write(`tlscope: ${obj.kind?.toLowerCase()}/${obj.metadata?.name} applied\n`);
  }
  const apps = o.cluster.kc.makeApiClient(AppsV1Api);
  const end = Date.now() + o.timeoutS * 1000;
  let last = '';
  for (;;) {
    const [nodes, agents, ds] = await Promise.all([o.cluster.nodes(), o.cluster.agentPods(), apps.readNamespacedDaemonSet({ name: 'tlscope-agent', namespace: o.namespace })]);
    const st = ds.status;
    const rolled = (st?.observedGeneration ?? 0) >= (ds.metadata?.generation ?? 0) && (st?.updatedNumberScheduled ?? 0) === (st?.desiredNumberScheduled ?? -1);
    const readyNodes = nodes.filter((n) => agents.some((a) => a.node === n && a.ready));
    const missing = nodes.filter((n) => !readyNodes.includes(n));
    if (rolled && missing.length === 0 && (st?.numberReady ?? 0) >= nodes.length && agents.length === nodes.length) {
      ctx.err.write(`tlscope: the agent is ready on all ${nodes.length} nodes: ${nodes.join(', ')}\n`);
      return 0;
    }
    const words = missing.map((n) => `node ${n}: ${describe(agents.filter((a) => a.node === n))}`).join('; ');
    if (words !== last && words !== '') ctx.err.write(`tlscope: waiting: ${words}\n`);
    last = words;
    if (Date.now() > end) {
      throw new TlscopeError('ERR_NOT_READY', `the agent is not ready on ${missing.length} of ${nodes.length} nodes after ${o.timeoutS} s: ${words || 'the DaemonSet is still rolling out'}`, {
        hint: `kubectl -n ${o.namespace} describe pods -l app.kubernetes.io/name=tlscope-agent`,
      });
    }
    if (ctx.signal.aborted) return 130;
    await sleep(1000);
  }
}

function describe(pods: AgentPod[]): string {
  if (pods.length === 0) return 'no agent pod scheduled';
  return pods.map((p) => `${p.pod} ${p.ready ? 'ready' : p.reason}`).join(', ');
}

export async function runUndeploy(argv: string[], ctx: KubeContext): Promise<number> {
  const o = options(argv);
  if (o.help) {
    ctx.out.write(undeployHelp);
    return 0;
  }
  const api = KubernetesObjectApi.makeApiClient(o.cluster.kc);
  let deleted = 0;
  for (const obj of manifests(o.namespace, o.image).reverse()) {
    try {
      await api.delete(obj, undefined, undefined, undefined, undefined, 'Foreground');
      deleted++;
      ctx.err.write(`tlscope: ${obj.kind?.toLowerCase()}/${obj.metadata?.name} deleted\n`);
    } catch (e) {
      if (apiCode(e) !== 404) throw o.cluster.apiError(e, `delete ${obj.kind} ${obj.metadata?.name}`);
    }
  }
  // the namespace goes once its pods are gone: the agents have then ended (and detached)
  const end = Date.now() + o.timeoutS * 1000;
  const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: o.namespace } };
  for (;;) {
    try {
      await api.read(ns);
    } catch (e) {
      if (apiCode(e) === 404) break;
      throw o.cluster.apiError(e, `read namespace ${o.namespace}`);
    }
    if (Date.now() > end) throw new TlscopeError('ERR_NOT_GONE', `namespace ${o.namespace} still exists after ${o.timeoutS} s`, { hint: `kubectl get namespace ${o.namespace} -o yaml (its finalizers)` });
    if (ctx.signal.aborted) return 130;
    await sleep(1000);
  }
  ctx.err.write(`tlscope: undeployed (${deleted} objects deleted, namespace ${o.namespace} gone)\n`);
  return 0;
}
