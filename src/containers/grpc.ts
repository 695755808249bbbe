// SPDX-License-Identifier: Apache-2.0
/**
 * gRPC over a runtime's unix socket, shared by the containerd and CRI clients: one channel per
 * socket, our own minimal .proto files (only the messages and fields we read, with the wire
 * numbers of the runtimes' APIs), loaded with proto-loader and called through grpc-js's generic
 * Client so that every call is typed without generated code.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Client, ClientReadableStream, Metadata, ServiceError } from '@grpc/grpc-js';
import type { MethodDefinition, PackageDefinition } from '@grpc/proto-loader';
import { TlscopeError } from '../errors.js';
import { lazyModule } from '../lazy-module.js';
import { asObject, type Json } from './narrow.js';

/** The gRPC status codes the runtime clients test for (grpc/doc/statuscodes.md). */
export const GrpcStatus = { CANCELLED: 1, NOT_FOUND: 5, UNIMPLEMENTED: 12 } as const;

/**
 * grpc-js and proto-loader load with the first runtime connection, not with the module: ~15 MB
 * resident that a host without containerd or CRI-O (and every command that never asks a
 * runtime) need not pay.
 */
const grpcJs = lazyModule<typeof import('@grpc/grpc-js')>('@grpc/grpc-js');
const protoLoader = lazyModule<typeof import('@grpc/proto-loader')>('@grpc/proto-loader');

/**
 * Where the .proto files are. Compiled code runs from dist/src/containers/ while the protos stay
 * in src/containers/proto/ (tsc does not copy them), so both places are tried: next to this
 * module (running from source) and the source tree seen from dist (a checkout or the package).
 */
export function protoDirectory(): string {
  const candidates = [new URL('./proto/', import.meta.url), new URL('../../../src/containers/proto/', import.meta.url)];
  for (const url of candidates) {
    const dir = fileURLToPath(url);
    if (existsSync(`${dir}containerd.proto`)) return dir;
  }
  throw new TlscopeError('ERR_INSTALL', `container runtime protocol files not found (looked in ${candidates.map((u) => fileURLToPath(u)).join(', ')})`, {
    hint: 'reinstall tlscope: its package must contain src/containers/proto/*.proto',
  });
}

const packageCache = new Map<string, PackageDefinition>();

function loadProto(file: string): PackageDefinition {
  let def = packageCache.get(file);
  if (def === undefined) {
    const { loadSync } = protoLoader();
    def = loadSync(file, {
      includeDirs: [protoDirectory()],
      keepCase: true, // field names as in the .proto (snake_case), as the runtimes document them
      longs: Number, // int64 fields we read are timestamps and pids: well within 2^53
      enums: Number,
      defaults: true,
    });
    packageCache.set(file, def);
  }
  return def;
}

function methodOf(def: PackageDefinition, service: string, method: string): MethodDefinition<object, Json> {
  const svc = def[service];
  const m = svc !== undefined && !('format' in svc) && method in svc ? (svc as Record<string, MethodDefinition<object, Json>>)[method] : undefined;
  if (m === undefined) throw new TlscopeError('ERR_INTERNAL', `gRPC method ${service}/${method} is not in the protocol files`, { hint: 'this is a bug in tlscope: please report it' });
  return m;
}

export function grpcCode(e: unknown): number | undefined {
  const code = asObject(e)['code'];
  return typeof code === 'number' ? code : undefined;
}

/** gRPC errors carry `details` (the server's own words) besides a message prefixed with the code. */
export function errorText(e: unknown): string {
  const details = asObject(e)['details'];
  if (typeof details === 'string' && details !== '') return details;
  return e instanceof Error ? e.message : String(e);
}

export interface CallOptions {
  /** Request metadata, e.g. `containerd-namespace`. */
  readonly metadata?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** One gRPC channel to a unix socket, speaking the services of one .proto file. */
export class GrpcConnection {
  private readonly client: Client;
  private readonly def: PackageDefinition;
  private readonly streams = new Set<ClientReadableStream<Json>>();

  constructor(readonly socketPath: string, protoFile: string) {
    this.def = loadProto(protoFile);
    const { Client, credentials } = grpcJs();
    this.client = new Client(`unix://${socketPath}`, credentials.createInsecure(), {
      // Container lists carry each container's labels and more; 4 MiB (the default) is tight on a busy node.
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    });
  }

  private metadata(values: Readonly<Record<string, string>> | undefined): Metadata {
    const md = new (grpcJs().Metadata)();
    for (const [key, value] of Object.entries(values ?? {})) md.set(key, value);
    return md;
  }

  unary(service: string, method: string, request: object, options: CallOptions = {}): Promise<Json> {
    const m = methodOf(this.def, service, method);
    return new Promise((resolve, reject) => {
      const call = this.client.makeUnaryRequest(
        m.path,
        m.requestSerialize,
        m.responseDeserialize,
        request,
        this.metadata(options.metadata),
        { deadline: Date.now() + (options.timeoutMs ?? 5000) },
        (err: ServiceError | null, value?: Json) => {
          options.signal?.removeEventListener('abort', cancel);
          if (err) reject(err);
          else resolve(value ?? {});
        },
      );
      const cancel = (): void => call.cancel();
      options.signal?.addEventListener('abort', cancel, { once: true });
    });
  }

  /** A server stream; cancel it (or close the connection) to end it. */
  serverStream(service: string, method: string, request: object, options: CallOptions = {}): ClientReadableStream<Json> {
    const m = methodOf(this.def, service, method);
    const stream = this.client.makeServerStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, request, this.metadata(options.metadata), {});
    this.streams.add(stream);
    stream.on('close', () => this.streams.delete(stream));
    return stream;
  }

  close(): void {
    for (const stream of this.streams) stream.cancel();
    this.streams.clear();
    this.client.close();
  }
}
