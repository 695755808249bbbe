// SPDX-License-Identifier: Apache-2.0
/**
 * `--proto DIR`: gRPC messages with names. Every `.proto` file under DIR is loaded with
 * @grpc/proto-loader; a call's service and method (from `:path`) pick the request or response
 * type, and the message is shown as `Type {json}`. A service or method the files do not
 * define, or bytes that do not decode as the type, give `undefined`: the caller falls back to
 * the generic protobuf view (field numbers), so nothing is hidden.
 */
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { MethodDefinition, PackageDefinition } from '@grpc/proto-loader';
import { errorMessage, UsageError } from '../../errors.js';
import { decodeProtobuf } from '../../protocols/protobuf-wire.js';
import { lazyModule } from '../../lazy-module.js';

const protoLoader = lazyModule<typeof import('@grpc/proto-loader')>('@grpc/proto-loader');

export type DescribeMessage = (service: string, method: string, side: 'request' | 'response', bytes: Uint8Array) => string | undefined;

function protoFiles(dir: string, depth = 0): string[] {
  if (depth > 16) return [];
  const out: string[] = [];
  for (const n of readdirSync(dir).sort()) {
    const p = join(dir, n);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...protoFiles(p, depth + 1));
    else if (n.endsWith('.proto')) out.push(p);
  }
  return out;
}

export interface ProtoSchema {
  describe: DescribeMessage;
  files: number;
  /** fully qualified service names defined */
  services: string[];
}

export function loadProtoDir(dir: string): ProtoSchema {
  let files: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    files = protoFiles(dir);
  } catch (e) {
    throw new UsageError(`--proto ${dir}: ${errorMessage(e)}; give a directory that holds .proto files`);
  }
  if (files.length === 0) throw new UsageError(`--proto ${dir}: no .proto files in it (or under it); give the directory of the services' .proto files`);
  let def: PackageDefinition;
  try {
    // imports resolve from DIR (import "demo/greeter.proto";) as protoc -I DIR would
    // proto-loader (and protobufjs under it) load with the first --proto: ~9 MB resident that
    // every other trace tls run, and trace sni through the gadget catalog, need not pay
    const { loadSync } = protoLoader();
    def = loadSync(files.map((f) => relative(dir, f)), { includeDirs: [dir], keepCase: true, longs: String, enums: String, bytes: String, defaults: false, oneofs: true });
  } catch (e) {
    throw new UsageError(`--proto ${dir}: the .proto files do not load: ${errorMessage(e)}`);
  }
  const methods = new Map<string, MethodDefinition<object, object>>();
  const services: string[] = [];
  for (const [name, value] of Object.entries(def)) {
    if (typeof value !== 'object' || value === null || 'format' in value || 'type' in value) continue; // messages, enums
    services.push(name);
    for (const [m, d] of Object.entries(value as Record<string, MethodDefinition<object, object>>)) methods.set(`${name}/${m}`, d);
  }
  return {
    files: files.length,
    services,
    describe: (service, method, side, bytes) => {
      const m = methods.get(`${service}/${method}`);
      if (m === undefined) return undefined;
      // protobufjs is lenient with cut fields (it decodes what is there): bytes must first be
      // well-formed protobuf, completely, else the generic view (hex) shows them as they are
      if (bytes.length > 0 && decodeProtobuf(bytes) === undefined) return undefined;
      const type = side === 'request' ? m.requestType : m.responseType;
      try {
        const obj = (side === 'request' ? m.requestDeserialize : m.responseDeserialize)(Buffer.from(bytes));
        const name = (type?.type as { name?: string } | undefined)?.name;
        return `${name ?? side} ${JSON.stringify(obj)}`;
      } catch {
        return undefined; // not this type's bytes: the generic view shows them
      }
    },
  };
}
