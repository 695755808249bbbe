// SPDX-License-Identifier: Apache-2.0
/** How a captured network namespace is named on each line and in pcapng interface descriptions. */
import type { ContainerInfo, K8sIdentity } from '../../containers/types.js';

/** What a label needs of a container: what the index knows, or what an enriched event carries. */
export type ContainerIdentity = Pick<ContainerInfo, 'name'> & {
  readonly runtime: string;
  readonly k8s?: Pick<K8sIdentity, 'namespace' | 'podName' | 'containerName'> | undefined;
};

export interface NamespaceLabel {
  /** on each printed line: "web", "shop/cart-7d9f" (a pod), "host" */
  short: string;
  /** in pcapng interface descriptions: "web (docker)", "pod shop/cart-7d9f (containerd)" */
  long: string;
}

/** The label of the containers sharing one network namespace (a pod's, or one container's). */
export function labelFor(containers: readonly ContainerIdentity[]): NamespaceLabel | undefined {
  const first = containers[0];
  if (first === undefined) return undefined;
  const runtime = [...new Set(containers.map((x) => x.runtime))].join(',');
  if (first.k8s !== undefined && first.k8s.podName !== '') {
    const pod = first.k8s.namespace === '' ? first.k8s.podName : `${first.k8s.namespace}/${first.k8s.podName}`;
    return { short: pod, long: `pod ${pod} (${runtime})` };
  }
  const names = [...new Set(containers.map((x) => x.name))].join(',');
  return { short: names, long: `${names} (${runtime})` };
}

/**
 * Where one process runs, for packet comments: its own container, so that two containers of a
 * pod (one network namespace, one interface label) are told apart: "client of pod shop/cart-7d9f
 * (containerd)", "web (docker)". A process's container is known by its mount namespace.
 */
export function containerPlace(container: ContainerIdentity): string {
  const pod = labelFor([container]);
  if (container.k8s === undefined || container.k8s.podName === '' || pod === undefined) return pod?.long ?? container.name;
  const name = container.k8s.containerName === '' ? container.name : container.k8s.containerName;
  return `${name} of ${pod.long}`;
}
