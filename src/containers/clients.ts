// SPDX-License-Identifier: Apache-2.0
/** The runtime clients tlscope uses by default, on each runtime's standard socket. */
import { ContainerdClient, CONTAINERD_SOCKET } from './containerd.js';
import { CriClient, CRIO_SOCKET } from './cri.js';
import { DockerEngineClient } from './docker.js';
import { RUNTIME_NAMES, type RuntimeClient, type RuntimeName } from './types.js';

export const DEFAULT_SOCKETS: Readonly<Record<RuntimeName, string>> = {
  docker: '/var/run/docker.sock',
  containerd: CONTAINERD_SOCKET,
  podman: '/run/podman/podman.sock',
  'cri-o': CRIO_SOCKET,
};

export interface RuntimeClientOptions {
  /** Which runtimes to ask (default: all four). */
  readonly runtimes?: readonly RuntimeName[];
  /** Socket paths that differ from {@link DEFAULT_SOCKETS}. */
  readonly sockets?: Partial<Record<RuntimeName, string>>;
}

/**
 * One client per runtime: docker and podman through the Engine API, containerd through its own
 * API (every namespace but dockerd's `moby`), cri-o through CRI. containerd's CRI plugin is not
 * asked separately: its containers are in containerd's `k8s.io` namespace already.
 */
export function createRuntimeClients(options: RuntimeClientOptions = {}): RuntimeClient[] {
  const socket = (r: RuntimeName): string => options.sockets?.[r] ?? DEFAULT_SOCKETS[r];
  return (options.runtimes ?? RUNTIME_NAMES).map((runtime): RuntimeClient => {
    switch (runtime) {
      case 'docker':
      case 'podman':
        return new DockerEngineClient({ runtime, socketPath: socket(runtime) });
      case 'containerd':
        return new ContainerdClient({ socketPath: socket(runtime) });
      case 'cri-o':
        return new CriClient({ runtime, socketPath: socket(runtime) });
    }
  });
}
