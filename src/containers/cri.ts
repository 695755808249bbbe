// SPDX-License-Identifier: Apache-2.0
/**
 * The Kubernetes CRI (runtime.v1.RuntimeService) — how cri-o is asked, and an alternative way
 * to ask containerd (its CRI plugin, same socket). Only containers kubelet created through CRI
 * are visible here; their names are the Kubernetes container names.
 *
 * Pids come from ContainerStatus with `verbose`, whose `info["info"]` JSON holds `pid` (both
 * cri-o and containerd). Pod labels come from ListPodSandbox. Start/stop events come from
 * GetContainerEvents where the runtime has it (CRI ≥ 1.26 runtimes); otherwise (containerd
 * 1.6 answers UNIMPLEMENTED) the container list is polled.
 */
import type { ClientReadableStream } from '@grpc/grpc-js';
import { RuntimeError } from './errors.js';
import { errorText, GrpcConnection, grpcCode, GrpcStatus } from './grpc.js';
import { podLabelsFromSandbox } from './k8s.js';
import { asArray, asObject, mapLimit, num, str, stringMap, type Json } from './narrow.js';
import { AsyncQueue } from './queue.js';
import type { InspectOptions, Labels, RuntimeClient, RuntimeContainer, RuntimeEvent, RuntimeName } from './types.js';
import { isUnixSocket } from './socket.js';

const RUNTIME_SERVICE = 'runtime.v1.RuntimeService';
const CONTAINER_RUNNING = 1;
const SANDBOX_READY = 0;
const EVENT_STARTED = 1;
const EVENT_STOPPED = 2;
const EVENT_DELETED = 3;
const STATUS_CONCURRENCY = 8;

export const CRIO_SOCKET = '/var/run/crio/crio.sock';

export interface CriClientOptions {
  /** `cri-o` for cri-o's socket; `containerd` when speaking to containerd's CRI plugin. */
  readonly runtime?: RuntimeName;
  readonly socketPath?: string;
  readonly timeoutMs?: number;
  /** How often to poll when the runtime has no event stream. */
  readonly pollIntervalMs?: number;
}

/** The pid out of a verbose ContainerStatus `info` map, 0 when absent. */
export function pidFromVerboseInfo(info: Readonly<Record<string, string>>): number {
  const raw = info['info'];
  if (raw === undefined) return 0;
  try {
    return num(asObject(JSON.parse(raw)), 'pid');
  } catch {
    return 0;
  }
}

export function criEventToRuntimeEvent(event: Json): RuntimeEvent | undefined {
  const id = str(event, 'container_id');
  if (id === '') return undefined;
  switch (num(event, 'container_event_type')) {
    case EVENT_STARTED:
      return { type: 'start', id };
    case EVENT_STOPPED:
    case EVENT_DELETED:
      return { type: 'stop', id };
    default:
      return undefined;
  }
}

interface Sandbox {
  readonly labels: Labels;
}

export class CriClient implements RuntimeClient {
  readonly name: RuntimeName;
  readonly socketPath: string;
  private readonly timeoutMs: number;
  private readonly pollIntervalMs: number;
  private conn: GrpcConnection | undefined;
  private closed = false;

  constructor(options: CriClientOptions = {}) {
    this.name = options.runtime ?? 'cri-o';
    this.socketPath = options.socketPath ?? CRIO_SOCKET;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.pollIntervalMs = options.pollIntervalMs ?? 500;
  }

  isPresent(): boolean {
    return isUnixSocket(this.socketPath);
  }

  private connection(): GrpcConnection {
    if (this.closed) throw new RuntimeError(this.name, this.socketPath, 'client is closed');
    this.conn ??= new GrpcConnection(this.socketPath, 'cri.proto');
    return this.conn;
  }

  private async call(method: string, request: object, signal?: AbortSignal): Promise<Json> {
    try {
      return await this.connection().unary(RUNTIME_SERVICE, method, request, {
        timeoutMs: this.timeoutMs,
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (e) {
      if (e instanceof RuntimeError) throw e;
      throw new RuntimeError(this.name, this.socketPath, `CRI ${method}: ${errorText(e)}`, e);
    }
  }

  /** The runtime's own name and version, e.g. `{ name: 'containerd', version: 'v1.6.20' }`. */
  async version(signal?: AbortSignal): Promise<{ name: string; version: string; apiVersion: string }> {
    const res = await this.call('Version', { version: 'v1' }, signal);
    return { name: str(res, 'runtime_name'), version: str(res, 'runtime_version'), apiVersion: str(res, 'runtime_api_version') };
  }

  private async sandboxes(filter: object, signal?: AbortSignal): Promise<Map<string, Sandbox>> {
    const res = await this.call('ListPodSandbox', { filter }, signal);
    const out = new Map<string, Sandbox>();
    for (const item of asArray(res['items']).map(asObject)) {
      out.set(str(item, 'id'), { labels: podLabelsFromSandbox(stringMap(item['labels'])) });
    }
    return out;
  }

  private async runningContainers(filter: object, signal?: AbortSignal): Promise<Json[]> {
    const res = await this.call('ListContainers', { filter: { ...filter, state: { state: CONTAINER_RUNNING } } }, signal);
    return asArray(res['containers']).map(asObject);
  }

  private async withStatus(c: Json, sandboxes: Map<string, Sandbox>, signal?: AbortSignal, opts: InspectOptions = {}): Promise<RuntimeContainer | undefined> {
    const id = str(c, 'id');
    let res: Json;
    try {
      res = await this.call('ContainerStatus', { container_id: id, verbose: true }, signal);
    } catch (e) {
      if (grpcCode(asObject(e)['cause']) === GrpcStatus.NOT_FOUND) return undefined; // gone meanwhile
      throw e;
    }
    const status = asObject(res['status']);
    const pid = Math.max(0, pidFromVerboseInfo(stringMap(res['info'])));
    if ((num(status, 'state') !== CONTAINER_RUNNING || pid <= 0) && opts.exited !== true) return undefined;
    const labels = stringMap(c['labels']);
    const sandbox = sandboxes.get(str(c, 'pod_sandbox_id'));
    return {
      runtime: this.name,
      id,
      name: str(asObject(c['metadata']), 'name') || id.slice(0, 12),
      image: str(asObject(status['image']), 'image') || str(asObject(c['image']), 'image') || str(c, 'image_ref'),
      labels,
      pid,
      ...(sandbox === undefined ? {} : { podLabels: sandbox.labels }),
    };
  }

  async list(signal?: AbortSignal): Promise<RuntimeContainer[]> {
    const [containers, sandboxes] = await Promise.all([
      this.runningContainers({}, signal),
      this.sandboxes({ state: { state: SANDBOX_READY } }, signal),
    ]);
    const all = await mapLimit(containers, STATUS_CONCURRENCY, (c) => this.withStatus(c, sandboxes, signal));
    return all.filter((c): c is RuntimeContainer => c !== undefined);
  }

  async inspect(id: string, _runtimeNamespace?: string, signal?: AbortSignal, opts: InspectOptions = {}): Promise<RuntimeContainer | undefined> {
    const [c] = opts.exited === true
      ? asArray((await this.call('ListContainers', { filter: { id } }, signal))['containers']).map(asObject)
      : await this.runningContainers({ id }, signal);
    if (c === undefined) return undefined;
    const sandboxId = str(c, 'pod_sandbox_id');
    const sandboxes = sandboxId === '' ? new Map<string, Sandbox>() : await this.sandboxes({ id: sandboxId }, signal);
    return this.withStatus(c, sandboxes, signal, opts);
  }

  watch(signal: AbortSignal): AsyncIterable<RuntimeEvent> {
    let stream: ClientReadableStream<Json> | undefined;
    let pollTimer: NodeJS.Timeout | undefined;
    let polling = false;
    const pollAbort = new AbortController();
    // the listener goes with the stream, however it ends: the session watches again on the
    // same signal after every reconnect
    const onAbort = (): void => queue.end();
    const queue = new AsyncQueue<RuntimeEvent>(() => {
      signal.removeEventListener('abort', onAbort);
      stream?.cancel();
      pollAbort.abort();
      clearTimeout(pollTimer);
    });
    if (signal.aborted) {
      queue.end();
      return queue;
    }
    signal.addEventListener('abort', onAbort, { once: true });

    const poll = (known: Set<string> | undefined): void => {
      this.runningContainers({}, pollAbort.signal).then(
        (containers) => {
          const now = new Set(containers.map((c) => str(c, 'id')));
          if (known !== undefined) {
            for (const id of now) if (!known.has(id)) queue.push({ type: 'start', id });
            for (const id of known) if (!now.has(id)) queue.push({ type: 'stop', id });
          }
          if (!pollAbort.signal.aborted) pollTimer = setTimeout(() => poll(now), this.pollIntervalMs);
        },
        (e: unknown) => queue.fail(e),
      );
    };

    try {
      stream = this.connection().serverStream(RUNTIME_SERVICE, 'GetContainerEvents', {});
    } catch (e) {
      queue.fail(e);
      return queue;
    }
    stream.on('data', (event: Json) => {
      const e = criEventToRuntimeEvent(event);
      if (e !== undefined) queue.push(e);
    });
    stream.on('error', (e: unknown) => {
      const code = grpcCode(e);
      if (code === GrpcStatus.CANCELLED) queue.end();
      else if (code === GrpcStatus.UNIMPLEMENTED) {
        polling = true; // no event stream: poll instead
        poll(undefined);
      }
      else queue.fail(new RuntimeError(this.name, this.socketPath, `CRI event stream: ${errorText(e)}`, e));
    });
    stream.on('end', () => {
      // After UNIMPLEMENTED the stream also ends; polling has taken over then.
      if (!polling && !pollAbort.signal.aborted) queue.fail(new RuntimeError(this.name, this.socketPath, 'CRI event stream ended'));
    });
    return queue;
  }

  close(): void {
    this.closed = true;
    this.conn?.close();
    this.conn = undefined;
  }
}
