// SPDX-License-Identifier: Apache-2.0
/** How a captured network namespace is named on each line and in pcapng interface descriptions. */
import type { ContainerInfo } from '../../containers/types.js';

export interface NamespaceLabel {
  /** on each printed line: "web", "shop/cart-7d9f" (a pod), "host" */
  short: string;
  /** in pcapng interface descriptions: "web (docker)", "pod shop/cart-7d9f (containerd)" */
  long: string;
}

/** The label of the containers sharing one network namespace (a pod's, or one container's). */
export function labelFor(containers: readonly ContainerInfo[]): NamespaceLabel | undefined {
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
