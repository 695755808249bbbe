// SPDX-License-Identifier: Apache-2.0
/**
 * containerd's own gRPC API (not CRI): every namespace — `default` (ctr), `k8s.io` (kubelet
 * through the CRI plugin), nerdctl's, … — is listed with Containers.List + Tasks.List under the
 * `containerd-namespace` request header; one Events.Subscribe stream covers all namespaces.
 *
 * Not reported: pod sandboxes (pause containers; their pods' labels are attached to the pods'
 * containers instead) and, by default, the `moby` namespace, which is dockerd's: the docker
 * client names those containers properly and the same container must not appear twice.
 */
import type { ClientReadableStream } from '@grpc/grpc-js';
import { RuntimeError } from './errors.js';
import { errorText, GrpcConnection, grpcCode, GrpcStatus } from './grpc.js';
import { isCriSandbox, K8S_LABEL, podLabelsFromSandbox } from './k8s.js';
import { asArray, asObject, num, str, stringMap, type Json } from './narrow.js';
import { decodeWireFields, wireString, wireUint } from './protowire.js';
import { AsyncQueue } from './queue.js';
import type { InspectOptions, Labels, RuntimeClient, RuntimeContainer, RuntimeEvent } from './types.js';
import { isUnixSocket } from './socket.js';

const NAMESPACES = 'containerd.services.namespaces.v1.Namespaces';
const CONTAINERS = 'containerd.services.containers.v1.Containers';
const TASKS = 'containerd.services.tasks.v1.Tasks';
const EVENTS = 'containerd.services.events.v1.Events';
const NAMESPACE_HEADER = 'containerd-namespace';
const TASK_RUNNING = 2;

/** Labels that name a container better than its id (nerdctl keeps the user's --name here). */
const NAME_LABELS = [K8S_LABEL.containerName, 'nerdctl/name'];

export interface ContainerdClientOptions {
  readonly socketPath?: string;
  /** Namespaces left to another client; default `moby` (dockerd's). */
  readonly skipNamespaces?: readonly string[];
  readonly timeoutMs?: number;
}

export const CONTAINERD_SOCKET = '/run/containerd/containerd.sock';

/** Event topics that start or stop a container's task. */
const TOPICS = { start: '/tasks/start', exit: '/tasks/exit', delete: '/tasks/delete' } as const;

/**
 * Decodes one event envelope into a start/stop. TaskExit and TaskDelete are also sent for
 * processes exec'd into a container; only the container's own task (exec id empty or equal to
 * the container id) stops the container.
 */
export function containerdEnvelopeToEvent(topic: string, namespace: string, payload: Uint8Array): RuntimeEvent | undefined {
  const fields = decodeWireFields(payload);
  const containerId = wireString(fields, 1);
  if (containerId === '') return undefined;
  const base = { id: containerId, runtimeNamespace: namespace };
  switch (topic) {
    case TOPICS.start: { // TaskStart { container_id = 1; pid = 2 }
      const pid = wireUint(fields, 2);
      return pid > 0 ? { type: 'start', ...base, pid } : { type: 'start', ...base };
    }
    case TOPICS.exit: {
      const execId = wireString(fields, 2); // TaskExit { container_id = 1; id = 2; pid = 3; … }
      return execId === '' || execId === containerId ? { type: 'stop', ...base } : undefined;
    }
    case TOPICS.delete: {
      const execId = wireString(fields, 5); // TaskDelete { container_id = 1; pid = 2; …; id = 5 }
      return execId === '' || execId === containerId ? { type: 'stop', ...base } : undefined;
    }
    default:
      return undefined;
  }
}

/** The best human name for a containerd container: kubelet's or nerdctl's name, else the id. */
export function containerdDisplayName(id: string, labels: Labels): string {
  for (const key of NAME_LABELS) {
    const v = labels[key];
    if (v !== undefined && v !== '') return v;
  }
  return id;
}

export class ContainerdClient implements RuntimeClient {
  readonly name = 'containerd' as const;
  readonly socketPath: string;
  private readonly skip: ReadonlySet<string>;
  private readonly timeoutMs: number;
  private conn: GrpcConnection | undefined;
  private closed = false;

  constructor(options: ContainerdClientOptions = {}) {
    this.socketPath = options.socketPath ?? CONTAINERD_SOCKET;
    this.skip = new Set(options.skipNamespaces ?? ['moby']);
    this.timeoutMs = options.timeoutMs ?? 5000;
  }

  isPresent(): boolean {
    return isUnixSocket(this.socketPath);
  }

  private connection(): GrpcConnection {
    if (this.closed) throw new RuntimeError(this.name, this.socketPath, 'client is closed');
    this.conn ??= new GrpcConnection(this.socketPath, 'containerd.proto');
    return this.conn;
  }

  private async call(service: string, method: string, request: object, namespace: string | undefined, signal?: AbortSignal): Promise<Json> {
    try {
      return await this.connection().unary(service, method, request, {
        ...(namespace === undefined ? {} : { metadata: { [NAMESPACE_HEADER]: namespace } }),
        timeoutMs: this.timeoutMs,
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (e) {
      if (e instanceof RuntimeError) throw e;
      throw new RuntimeError(this.name, this.socketPath, `${method.toLowerCase()} ${service.split('.').at(-1)}${namespace ? ` in namespace ${namespace}` : ''}: ${errorText(e)}`, e);
    }
  }

  /** Every namespace except the skipped ones. */
  async namespaces(signal?: AbortSignal): Promise<string[]> {
    const res = await this.call(NAMESPACES, 'List', {}, undefined, signal);
    return asArray(res['namespaces']).map((n) => str(asObject(n), 'name')).filter((n) => n !== '' && !this.skip.has(n));
  }

  async list(signal?: AbortSignal): Promise<RuntimeContainer[]> {
    const out: RuntimeContainer[] = [];
    for (const ns of await this.namespaces(signal)) out.push(...(await this.listNamespace(ns, signal)));
    return out;
  }

  private async listNamespace(ns: string, signal?: AbortSignal): Promise<RuntimeContainer[]> {
    const [containersRes, tasksRes] = await Promise.all([
      this.call(CONTAINERS, 'List', { filters: [] }, ns, signal),
      this.call(TASKS, 'List', {}, ns, signal),
    ]);
    const pids = new Map<string, number>();
    for (const t of asArray(tasksRes['tasks'])) {
      const task = asObject(t);
      if (num(task, 'status') !== TASK_RUNNING || num(task, 'pid') <= 0) continue;
      pids.set(str(task, 'container_id') || str(task, 'id'), num(task, 'pid'));
    }
    const containers = asArray(containersRes['containers']).map(asObject);
    const podLabelsByUid = new Map<string, Labels>();
    for (const c of containers) {
      const labels = stringMap(c['labels']);
      const uid = labels[K8S_LABEL.podUid];
      if (isCriSandbox(labels) && uid !== undefined) podLabelsByUid.set(uid, podLabelsFromSandbox(labels));
    }
    const out: RuntimeContainer[] = [];
    for (const c of containers) {
      const id = str(c, 'id');
      const pid = pids.get(id);
      const labels = stringMap(c['labels']);
      if (pid === undefined || isCriSandbox(labels)) continue;
      const uid = labels[K8S_LABEL.podUid];
      out.push(this.toRuntimeContainer(c, labels, pid, ns, uid === undefined ? undefined : podLabelsByUid.get(uid)));
    }
    return out;
  }

  private toRuntimeContainer(c: Json, labels: Labels, pid: number, ns: string, podLabels: Labels | undefined): RuntimeContainer {
    const id = str(c, 'id');
    return {
      runtime: this.name,
      id,
      name: containerdDisplayName(id, labels),
      image: str(c, 'image'),
      labels,
      pid,
      runtimeNamespace: ns,
      ...(podLabels === undefined ? {} : { podLabels }),
    };
  }

  async inspect(id: string, runtimeNamespace?: string, signal?: AbortSignal, opts: InspectOptions = {}): Promise<RuntimeContainer | undefined> {
    const namespaces = runtimeNamespace !== undefined ? [runtimeNamespace] : await this.namespaces(signal);
    for (const ns of namespaces) {
      if (this.skip.has(ns)) return undefined;
      let container: Json;
      let task: Json;
      try {
        container = asObject((await this.call(CONTAINERS, 'Get', { id }, ns, signal))['container']);
      } catch (e) {
        if (grpcCode(asObject(e)['cause']) === GrpcStatus.NOT_FOUND) continue;
        throw e;
      }
      try {
        task = asObject((await this.call(TASKS, 'Get', { container_id: id }, ns, signal))['process']);
      } catch (e) {
        if (grpcCode(asObject(e)['cause']) !== GrpcStatus.NOT_FOUND) throw e;
        if (opts.exited !== true) continue;
        task = {}; // its task is deleted already; the container record is what we need
      }
      const labels = stringMap(container['labels']);
      if (isCriSandbox(labels)) return undefined;
      const running = num(task, 'status') === TASK_RUNNING && num(task, 'pid') > 0;
      if (!running && opts.exited !== true) return undefined;
      return this.toRuntimeContainer(container, labels, Math.max(0, num(task, 'pid')), ns, await this.podLabels(labels, ns, signal));
    }
    return undefined;
  }

  /** The pod's labels, from its sandbox container (kubelet gives them to the sandbox only). */
  private async podLabels(labels: Labels, ns: string, signal?: AbortSignal): Promise<Labels | undefined> {
    const uid = labels[K8S_LABEL.podUid];
    if (uid === undefined) return undefined;
    const filter = `labels."io.cri-containerd.kind"==sandbox,labels."${K8S_LABEL.podUid}"==${JSON.stringify(uid)}`;
    const res = await this.call(CONTAINERS, 'List', { filters: [filter] }, ns, signal);
    const sandbox = asArray(res['containers']).map(asObject)[0];
    return sandbox === undefined ? undefined : podLabelsFromSandbox(stringMap(sandbox['labels']));
  }

  watch(signal: AbortSignal): AsyncIterable<RuntimeEvent> {
    let stream: ClientReadableStream<Json> | undefined;
    // the listener goes with the stream, however it ends: the session watches again on the
    // same signal after every reconnect
    const onAbort = (): void => queue.end();
    const queue = new AsyncQueue<RuntimeEvent>(() => {
      signal.removeEventListener('abort', onAbort);
      stream?.cancel();
    });
    if (signal.aborted) {
      queue.end();
      return queue;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const filters = Object.values(TOPICS).map((t) => `topic==${JSON.stringify(t)}`);
      stream = this.connection().serverStream(EVENTS, 'Subscribe', { filters });
    } catch (e) {
      queue.fail(e);
      return queue;
    }
    stream.on('data', (envelope: Json) => {
      const ns = str(envelope, 'namespace');
      if (this.skip.has(ns)) return;
      const payload = asObject(envelope['event'])['value'];
      if (!(payload instanceof Uint8Array)) return;
      try {
        const event = containerdEnvelopeToEvent(str(envelope, 'topic'), ns, payload);
        if (event !== undefined) queue.push(event);
      } catch {
        // A payload we cannot read loses one event; the periodic rescan covers it.
      }
    });
    stream.on('error', (e: unknown) => {
      if (grpcCode(e) === GrpcStatus.CANCELLED) queue.end();
      else queue.fail(new RuntimeError(this.name, this.socketPath, `event stream: ${errorText(e)}`, e));
    });
    stream.on('end', () => queue.fail(new RuntimeError(this.name, this.socketPath, 'event stream ended (daemon restarted?)')));
    return queue;
  }

  close(): void {
    this.closed = true;
    this.conn?.close();
    this.conn = undefined;
  }
}
