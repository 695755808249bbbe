// SPDX-License-Identifier: Apache-2.0
/** The node agent's protocol (proto/ at the package root), for the client side. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { credentials, makeGenericClientConstructor, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import { TlscopeError } from '../errors.js';

let cached: PackageDefinition | undefined;

function protoDirectory(): string {
  for (const rel of ['../../proto/', '../../../proto/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}tlscope/agent/v1/agent.proto`)) return dir;
  }
  throw new TlscopeError('ERR_INSTALL', 'the agent protocol file proto/tlscope/agent/v1/agent.proto is missing', { hint: 'reinstall tlscope: its package must contain proto/' });
}

function pkg(): PackageDefinition {
  cached ??= loadSync(['tlscope/agent/v1/agent.proto'], { includeDirs: [protoDirectory()], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  return cached;
}

export interface RunMessage {
  kind: 'started' | 'events' | 'warning' | 'info' | 'stats' | 'error';
  started?: { node: string; gadget: string; version: string };
  events?: { node: string; json: string[] };
  warning?: { code: string; text: string };
  info?: { code: string; text: string; verbose: boolean };
  stats?: AgentStats;
  error?: { code: string; text: string; hint: string; exit_code: number };
}

export interface AgentStats {
  node: string;
  shown: number;
  lost: number;
  misses: Record<string, number>;
  out_of_scope: number;
  filtered: number;
  held: number;
  missing_containers: string[];
  problems: { code: string; text: string; hint: string }[];
  dropped_slow_client: number;
  final: boolean;
  gadget_counters: Record<string, number>;
}

export interface RunRequest {
  gadget: string;
  params: Record<string, string>;
  scope: {
    runtimes: string[]; container_names: string[]; host: boolean; pids: number[];
    k8s_namespace: string; k8s_pod_name: string; k8s_container_name: string; k8s_selector: Record<string, string>;
  };
  filter: string;
  timeout_ms: number;
  verbose: boolean;
  json_view: boolean;
  max_queued_events: number;
}

type Callback<T> = (err: Error | null, res?: T) => void;

export interface AgentClient {
  Run(req: RunRequest): NodeJS.ReadableStream & { cancel(): void; on(ev: 'data', f: (m: RunMessage) => void): unknown; on(ev: 'error', f: (e: Error & { code?: number; details?: string }) => void): unknown; on(ev: 'end', f: () => void): unknown };
  Info(req: object, opts: { deadline: number }, cb: Callback<{ node: string; version: string; ready: boolean; sessions: number; kernel: string }>): void;
  Containers(req: object, opts: { deadline: number }, cb: Callback<{ node: string; containers: Record<string, unknown>[] }>): void;
  Doctor(req: object, opts: { deadline: number }, cb: Callback<{ node: string; json: string }>): void;
  close(): void;
}

export function agentClient(address: string): AgentClient {
  const Ctor = makeGenericClientConstructor(pkg()['tlscope.agent.v1.Agent'] as ServiceDefinition, 'Agent');
  return new Ctor(address, credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20 }) as unknown as AgentClient;
}

export function unary<T>(call: (cb: Callback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => call((err, res) => (err ? reject(err) : resolve(res as T))));
}
