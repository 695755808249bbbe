// SPDX-License-Identifier: Apache-2.0
/**
 * The Docker Engine API over its unix socket, for dockerd and for podman's Docker-compatible
 * service (`podman system service`). Plain node:http with `socketPath`: every request opens and
 * closes its own connection, so nothing stays open between calls except the event stream.
 *
 * A caller's AbortSignal is not handed to node:http: that adds one 'abort' listener to the
 * signal per request, and the index passes one long-lived signal to every request, dozens at a
 * time when many containers start at once (MaxListenersExceededWarning). Instead the client puts
 * one listener on each signal it has requests in flight for, and removes it when the last of
 * them ends; the event stream's listener goes when the stream ends.
 *
 * Uses: GET /version (negotiation), /containers/json, /containers/ID/json (State.Pid, Name,
 * Config.Image, Config.Labels), /events (streamed, container start/die/destroy).
 */
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { RuntimeError } from './errors.js';
import { asArray, asObject, bool, mapLimit, num, str, stringMap } from './narrow.js';
import { AsyncQueue } from './queue.js';
import type { InspectOptions, RuntimeClient, RuntimeContainer, RuntimeEvent, RuntimeName } from './types.js';
import { isUnixSocket } from './socket.js';

/** The API version we speak; older daemons get theirs (everything used exists since 1.24). */
export const DOCKER_API_VERSION = '1.41';
const INSPECT_CONCURRENCY = 8;

export interface DockerClientOptions {
  /** `docker` for dockerd, `podman` for podman's compatible service. */
  readonly runtime: Extract<RuntimeName, 'docker' | 'podman'>;
  readonly socketPath: string;
  /** Per request (not for the event stream). */
  readonly timeoutMs?: number;
}

/** Picks the version to put in request paths: ours, or the daemon's when it is older. */
export function negotiateApiVersion(serverVersion: string, ours = DOCKER_API_VERSION): string {
  const parse = (v: string): [number, number] | undefined => {
    const m = /^(\d+)\.(\d+)$/.exec(v);
    return m ? [Number(m[1]), Number(m[2])] : undefined;
  };
  const server = parse(serverVersion);
  const mine = parse(ours);
  if (server === undefined || mine === undefined) return ours;
  return server[0] < mine[0] || (server[0] === mine[0] && server[1] < mine[1]) ? serverVersion : ours;
}

/** Maps an Engine API event to a start/stop, or undefined for events that change nothing here. */
export function engineEventToRuntimeEvent(event: unknown): RuntimeEvent | undefined {
  const e = asObject(event);
  if ((str(e, 'Type') || str(e, 'type')) !== 'container') return undefined;
  const action = str(e, 'Action') || str(e, 'status');
  const id = str(asObject(e['Actor']), 'ID') || str(e, 'id');
  if (id === '') return undefined;
  if (action === 'start') return { type: 'start', id };
  // `die` is the exit; `destroy` (docker) / `remove` (podman) are repeated as stops in case the
  // die was missed while reconnecting.
  if (action === 'die' || action === 'destroy' || action === 'remove') return { type: 'stop', id };
  return undefined;
}

/** Turns an inspect answer into what the index needs, or undefined when not running. */
export function inspectToRuntimeContainer(runtime: DockerClientOptions['runtime'], inspect: unknown, opts: InspectOptions = {}): RuntimeContainer | undefined {
  const c = asObject(inspect);
  const state = asObject(c['State']);
  const config = asObject(c['Config']);
  const pid = Math.max(0, num(state, 'Pid'));
  if ((!bool(state, 'Running') || pid <= 0) && opts.exited !== true) return undefined;
  const id = str(c, 'Id');
  return {
    runtime,
    id,
    name: str(c, 'Name').replace(/^\//, '') || id.slice(0, 12),
    image: str(config, 'Image') || str(c, 'Image'),
    labels: stringMap(config['Labels']),
    pid,
  };
}

export class DockerEngineClient implements RuntimeClient {
  readonly name: DockerClientOptions['runtime'];
  readonly socketPath: string;
  private readonly timeoutMs: number;
  private apiVersion: Promise<string> | undefined;
  /** Requests in flight (the event streams included), destroyed by close(). */
  private readonly requests = new Set<ClientRequest>();
  /** Requests in flight per caller signal, with the one 'abort' listener that ends them all. */
  private readonly bySignal = new Map<AbortSignal, { readonly requests: Set<ClientRequest>; readonly onAbort: () => void }>();
  private closed = false;

  constructor(options: DockerClientOptions) {
    this.name = options.runtime;
    this.socketPath = options.socketPath;
    this.timeoutMs = options.timeoutMs ?? 5000;
  }

  isPresent(): boolean {
    return isUnixSocket(this.socketPath);
  }

  private error(message: string, cause?: unknown): RuntimeError {
    return new RuntimeError(this.name, this.socketPath, message, cause);
  }

  /** Opens a request and resolves with the response head; the caller consumes the body. */
  private open(path: string, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(this.error('client is closed'));
        return;
      }
      if (signal?.aborted === true) {
        reject(this.error(`GET ${path}: the operation was aborted`, signal.reason));
        return;
      }
      const req = request({
        socketPath: this.socketPath,
        path,
        method: 'GET',
        headers: { Host: 'localhost', Accept: 'application/json' },
        agent: false, // one connection per request, closed with it
        ...(timeoutMs === undefined ? {} : { timeout: timeoutMs }),
      });
      req.on('timeout', () => req.destroy(this.error(`GET ${path}: no answer within ${timeoutMs} ms`)));
      req.on('error', (e) => reject(e instanceof RuntimeError ? e : this.error(`GET ${path}: ${e.message}`, e)));
      req.on('response', resolve);
      this.track(req, signal);
      req.end();
    });
  }

  /** Remembers a request until it closes, and ends it when `signal` aborts (one listener per signal). */
  private track(req: ClientRequest, signal: AbortSignal | undefined): void {
    this.requests.add(req);
    let entry = signal === undefined ? undefined : this.bySignal.get(signal);
    if (signal !== undefined && entry === undefined) {
      const requests = new Set<ClientRequest>();
      const onAbort = (): void => {
        this.bySignal.delete(signal);
        // each request's 'error' handler names its own path
        for (const r of requests) r.destroy(Object.assign(new Error('the operation was aborted', { cause: signal.reason }), { name: 'AbortError', code: 'ABORT_ERR' }));
        requests.clear();
      };
      entry = { requests, onAbort };
      this.bySignal.set(signal, entry);
      signal.addEventListener('abort', onAbort, { once: true });
    }
    entry?.requests.add(req);
    req.on('close', () => {
      this.requests.delete(req);
      if (signal === undefined || entry === undefined || !entry.requests.delete(req)) return;
      if (entry.requests.size === 0 && this.bySignal.get(signal) === entry) {
        this.bySignal.delete(signal);
        signal.removeEventListener('abort', entry.onAbort);
      }
    });
  }

  private async getJson(path: string, signal?: AbortSignal): Promise<{ status: number; body: unknown }> {
    const res = await this.open(path, signal, this.timeoutMs);
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch (e) {
      throw this.error(`GET ${path}: answer is not JSON (HTTP ${res.statusCode})`, e);
    }
    return { status: res.statusCode ?? 0, body };
  }

  private async versioned(path: string): Promise<string> {
    this.apiVersion ??= this.getJson('/version').then(
      ({ status, body }) => (status === 200 ? negotiateApiVersion(str(asObject(body), 'ApiVersion')) : DOCKER_API_VERSION),
      (e: unknown) => {
        this.apiVersion = undefined; // try again next time
        throw e;
      },
    );
    return `/v${await this.apiVersion}${path}`;
  }

  async list(signal?: AbortSignal): Promise<RuntimeContainer[]> {
    const path = await this.versioned('/containers/json');
    const { status, body } = await this.getJson(path, signal);
    if (status !== 200) throw this.error(`GET ${path}: HTTP ${status}: ${str(asObject(body), 'message')}`);
    const ids = asArray(body).map((c) => str(asObject(c), 'Id')).filter((id) => id !== '');
    const inspected = await mapLimit(ids, INSPECT_CONCURRENCY, (id) => this.inspect(id, undefined, signal));
    return inspected.filter((c): c is RuntimeContainer => c !== undefined);
  }

  async inspect(id: string, _runtimeNamespace?: string, signal?: AbortSignal, opts: InspectOptions = {}): Promise<RuntimeContainer | undefined> {
    const path = await this.versioned(`/containers/${encodeURIComponent(id)}/json`);
    const { status, body } = await this.getJson(path, signal);
    if (status === 404) return undefined;
    if (status !== 200) throw this.error(`GET ${path}: HTTP ${status}: ${str(asObject(body), 'message')}`);
    return inspectToRuntimeContainer(this.name, body, opts);
  }

  watch(signal: AbortSignal): AsyncIterable<RuntimeEvent> {
    const stop = new AbortController();
    const onAbort = (): void => queue.end();
    // However the stream ends (caller's abort, the daemon, the consumer breaking out), the
    // listener goes with it: the session watches again on the same signal after every reconnect.
    const queue = new AsyncQueue<RuntimeEvent>(() => {
      signal.removeEventListener('abort', onAbort);
      stop.abort();
    });
    if (signal.aborted) {
      queue.end();
      return queue;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    const filters = encodeURIComponent(JSON.stringify({ type: ['container'] }));
    this.versioned(`/events?filters=${filters}`)
      .then((path) => this.open(path, stop.signal, undefined))
      .then((res) => {
        if (res.statusCode !== 200) {
          queue.fail(this.error(`event stream: HTTP ${res.statusCode}`));
          return;
        }
        res.setEncoding('utf8');
        let pending = '';
        res.on('data', (chunk: string) => {
          pending += chunk;
          let nl: number;
          while ((nl = pending.indexOf('\n')) >= 0) {
            const line = pending.slice(0, nl).trim();
            pending = pending.slice(nl + 1);
            if (line === '') continue;
            let parsed: unknown;
            try {
              parsed = JSON.parse(line);
            } catch {
              continue; // a garbled line loses one event; the periodic rescan covers it
            }
            const event = engineEventToRuntimeEvent(parsed);
            if (event !== undefined) queue.push(event);
          }
        });
        res.on('end', () => queue.fail(this.error('event stream ended (daemon restarted?)')));
        res.on('error', (e) => queue.fail(this.error(`event stream: ${e.message}`, e)));
      })
      .catch((e: unknown) => queue.fail(e));
    return queue;
  }

  close(): void {
    this.closed = true;
    for (const req of this.requests) req.destroy();
    this.requests.clear();
  }
}
