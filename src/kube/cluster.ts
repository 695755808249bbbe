// SPDX-License-Identifier: Apache-2.0
/**
 * The cluster as `kubectl tlscope` sees it: the kubeconfig (--kubeconfig, --context, as kubectl
 * reads them), the agent pods per node, the RBAC check for port-forward, and a local tunnel per
 * agent pod through the API server's port-forward (a loopback TCP listener whose every
 * connection is one port-forward stream).
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { AuthorizationV1Api, CoreV1Api, KubeConfig, PortForward, type V1Pod } from '@kubernetes/client-node';
import { TlscopeError, errorMessage } from '../errors.js';

export const AGENT_LABEL = 'app.kubernetes.io/name=tlscope-agent';
export const AGENT_PORT = 7443;
export const DEFAULT_NAMESPACE = 'tlscope';

export interface ClusterOptions {
  kubeconfig?: string;
  context?: string;
  /** the agents' namespace */
  namespace?: string;
}

export interface AgentPod {
  node: string;
  pod: string;
  ready: boolean;
  /** why it is not ready */
  reason: string;
}

export class ApiForbidden extends TlscopeError {}

export function loadKubeConfig(o: ClusterOptions): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (o.kubeconfig !== undefined) kc.loadFromFile(o.kubeconfig);
    else kc.loadFromDefault();
  } catch (e) {
    throw new TlscopeError('ERR_KUBECONFIG', `cannot read the kubeconfig${o.kubeconfig === undefined ? '' : ` ${o.kubeconfig}`}: ${errorMessage(e)}`, { hint: 'pass --kubeconfig FILE or set KUBECONFIG' });
  }
  if (o.context !== undefined) {
    if (kc.getContextObject(o.context) === null) throw new TlscopeError('ERR_KUBECONFIG', `no context "${o.context}" in the kubeconfig`, { exitCode: 2, hint: `contexts: ${kc.getContexts().map((c) => c.name).join(', ')}` });
    kc.setCurrentContext(o.context);
  }
  if (kc.getCurrentCluster() === null) throw new TlscopeError('ERR_KUBECONFIG', 'the kubeconfig names no current cluster', { hint: 'pass --kubeconfig FILE or --context NAME' });
  return kc;
}

/** The API's own words for a failed call: "pods is forbidden: User … cannot list …". */
export function apiErrorText(e: unknown): string {
  const body = (e as { body?: unknown }).body;
  if (typeof body === 'string') {
    try {
      const m = (JSON.parse(body) as { message?: string }).message;
      if (m) return m;
    } catch {
      // not JSON
    }
  } else if (body !== null && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string') {
    return (body as { message: string }).message;
  }
  return errorMessage(e);
}

export function apiCode(e: unknown): number | undefined {
  const c = (e as { code?: unknown }).code;
  return typeof c === 'number' ? c : undefined;
}

export function podReady(p: V1Pod): { ready: boolean; reason: string } {
  const ready = p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  if (ready && p.metadata?.deletionTimestamp === undefined) return { ready: true, reason: '' };
  if (p.metadata?.deletionTimestamp !== undefined) return { ready: false, reason: 'terminating' };
  const waiting = p.status?.containerStatuses?.map((s) => s.state?.waiting ?? s.state?.terminated).find((x) => x !== undefined);
  if (waiting?.reason) return { ready: false, reason: `${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}` };
  return { ready: false, reason: p.status?.phase === 'Running' ? 'not ready yet' : (p.status?.phase ?? 'pending') };
}

export class Cluster {
  readonly core: CoreV1Api;
  private readonly authz: AuthorizationV1Api;
  private readonly forward: PortForward;

  constructor(readonly kc: KubeConfig, readonly namespace: string) {
    this.core = kc.makeApiClient(CoreV1Api);
    this.authz = kc.makeApiClient(AuthorizationV1Api);
    this.forward = new PortForward(kc);
  }

  get user(): string {
    return this.kc.getCurrentUser()?.name ?? '?';
  }

  async nodes(): Promise<string[]> {
    try {
      const list = await this.core.listNode();
      return list.items.map((n) => n.metadata?.name ?? '').filter(Boolean).sort();
    } catch (e) {
      throw this.apiError(e, 'list nodes');
    }
  }

  async agentPods(): Promise<AgentPod[]> {
    let items: V1Pod[];
    try {
      items = (await this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: AGENT_LABEL })).items;
    } catch (e) {
      throw this.apiError(e, `list pods in namespace ${this.namespace}`);
    }
    const out: AgentPod[] = [];
    for (const p of items) {
      const node = p.spec?.nodeName;
      if (!node) continue;
      out.push({ node, pod: p.metadata?.name ?? '', ...podReady(p) });
    }
    // a node with an old (terminating) pod and its new one: the ready one first
    return out.sort((a, b) => a.node.localeCompare(b.node) || Number(b.ready) - Number(a.ready));
  }

  /** Pods that match the pod filters, with their nodes. */
  async matchingPods(f: { namespace?: string; podName?: string; selector?: Record<string, string> }): Promise<{ namespace: string; name: string; node: string }[]> {
    const labelSelector = f.selector === undefined ? undefined : Object.entries(f.selector).map(([k, v]) => `${k}=${v}`).join(',');
    const fieldSelector = f.podName === undefined ? undefined : `metadata.name=${f.podName}`;
    try {
      const list = f.namespace !== undefined
        ? await this.core.listNamespacedPod({ namespace: f.namespace, ...(labelSelector ? { labelSelector } : {}), ...(fieldSelector ? { fieldSelector } : {}) })
        : await this.core.listPodForAllNamespaces({ ...(labelSelector ? { labelSelector } : {}), ...(fieldSelector ? { fieldSelector } : {}) });
      return list.items.filter((p) => p.spec?.nodeName).map((p) => ({ namespace: p.metadata?.namespace ?? '', name: p.metadata?.name ?? '', node: p.spec?.nodeName ?? '' }));
    } catch (e) {
      throw this.apiError(e, 'list pods');
    }
  }

  /**
   * Whether this user may port-forward to the agents (what reading them takes). Asked of the
   * API (SelfSubjectAccessReview) before any stream, so a missing grant is one clear error.
   */
  async checkPortForward(): Promise<void> {
    const allowed: string[] = [];
    for (const verb of ['create', 'get']) {
      try {
        const r = await this.authz.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: { namespace: this.namespace, verb, resource: 'pods', subresource: 'portforward' } } } });
        if (r.status?.allowed === true) allowed.push(verb);
      } catch (e) {
        throw this.apiError(e, 'ask the API what this user may do');
      }
    }
    if (allowed.length === 0) {
      throw new ApiForbidden('ERR_FORBIDDEN', `forbidden: user "${this.user}" cannot create resource "pods/portforward" in API group "" in the namespace "${this.namespace}": reading the tlscope agents needs pods/portforward there`, {
        hint: `bind the tlscope-user Role and ClusterRole (deploy/tlscope.yaml) to this user, e.g. kubectl create rolebinding NAME -n ${this.namespace} --role tlscope-user --user USER`,
      });
    }
  }

  apiError(e: unknown, what: string): TlscopeError {
    const code = apiCode(e);
    const text = apiErrorText(e);
    if (code === 403) return new ApiForbidden('ERR_FORBIDDEN', `forbidden: ${text.replace(/^.*?forbidden: /, '')}`, { hint: 'ask for the tlscope-user roles (deploy/tlscope.yaml)', cause: e });
    if (code === undefined) return new TlscopeError('ERR_API', `cannot ${what}: ${text} (API server ${this.kc.getCurrentCluster()?.server ?? '?'})`, { cause: e, hint: 'is the cluster up and the kubeconfig right? (--kubeconfig, --context)' });
    return new TlscopeError('ERR_API', `cannot ${what}: ${text}`, { cause: e });
  }

  /** A loopback listener whose connections are port-forwarded to the pod's agent port. */
  async tunnel(pod: string, port = AGENT_PORT): Promise<Tunnel> {
    const sockets = new Set<Socket>();
    let lastError = '';
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      const errors = new PassThrough();
      errors.on('data', (d: Buffer) => { lastError = d.toString().trim(); });
      this.forward.portForward(this.namespace, pod, [port], socket, errors, socket).then((ws) => {
        const w = typeof ws === 'function' ? ws() : ws;
        w?.on('close', () => socket.destroy());
        w?.on('error', (err: Error) => { lastError = err.message; socket.destroy(); });
        socket.on('close', () => w?.close());
      }, (err: unknown) => {
        lastError = apiErrorText(err);
        socket.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    return new Tunnel(server, sockets, address, () => lastError);
  }
}

export class Tunnel {
  constructor(private readonly server: Server, private readonly sockets: Set<Socket>, readonly address: string, readonly lastError: () => string) {}

  close(): void {
    for (const s of this.sockets) s.destroy();
    this.server.close();
  }
}
