// SPDX-License-Identifier: Apache-2.0
/** The agent's protocol files (proto/ at the package root), loaded without generated code. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadSync, type PackageDefinition } from '@grpc/proto-loader';
import { TlscopeError } from '../errors.js';

export const AGENT_SERVICE = 'tlscope.agent.v1.Agent';
export const HEALTH_SERVICE = 'grpc.health.v1.Health';

/** dist/src/agent/ and src/agent/ both sit two or three levels under the package root. */
export function agentProtoDirectory(): string {
  for (const rel of ['../../proto/', '../../../proto/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}tlscope/agent/v1/agent.proto`)) return dir;
  }
  throw new TlscopeError('ERR_INSTALL', 'the agent protocol file proto/tlscope/agent/v1/agent.proto is missing', { hint: 'reinstall tlscope: its package must contain proto/' });
}

let cached: PackageDefinition | undefined;

export function agentPackage(): PackageDefinition {
  cached ??= loadSync(['tlscope/agent/v1/agent.proto', 'grpc/health/v1/health.proto'], {
    includeDirs: [agentProtoDirectory()],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return cached;
}
