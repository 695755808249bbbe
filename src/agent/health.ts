// SPDX-License-Identifier: Apache-2.0
/** Asks an agent's grpc.health.v1 service whether it serves (the pod's readiness probe). */
import { credentials, makeGenericClientConstructor, type ServiceDefinition } from '@grpc/grpc-js';
import { agentPackage, HEALTH_SERVICE } from './proto.js';

export async function checkHealth(address: string, timeoutMs = 3000): Promise<{ serving: boolean; status: string }> {
  const def = agentPackage()[HEALTH_SERVICE] as ServiceDefinition;
  const Ctor = makeGenericClientConstructor(def, 'Health');
  const client = new Ctor(address, credentials.createInsecure()) as unknown as {
    Check(req: { service: string }, opts: { deadline: number }, cb: (err: Error | null, res?: { status: string }) => void): void;
    close(): void;
  };
  try {
    const res = await new Promise<{ status: string }>((resolve, reject) => {
      client.Check({ service: '' }, { deadline: Date.now() + timeoutMs }, (err, r) => (err ? reject(err) : resolve(r as { status: string })));
    });
    return { serving: res.status === 'SERVING', status: res.status };
  } finally {
    client.close();
  }
}
