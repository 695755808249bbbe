// SPDX-License-Identifier: Apache-2.0
/**
 * Kubernetes identity without the API server: kubelet puts these labels on every container it
 * asks a CRI runtime to create, so a node-local view can name pods.
 */
import type { K8sIdentity, Labels } from './types.js';

export const K8S_LABEL = {
  podName: 'io.kubernetes.pod.name',
  podNamespace: 'io.kubernetes.pod.namespace',
  podUid: 'io.kubernetes.pod.uid',
  containerName: 'io.kubernetes.container.name',
} as const;

/** containerd's CRI plugin marks each container as a `sandbox` (the pod's pause container) or a `container`. */
export const CRI_CONTAINERD_KIND_LABEL = 'io.cri-containerd.kind';

/**
 * The pod a container belongs to, or undefined when kubelet's labels are absent (a container
 * not made by Kubernetes). Missing individual labels become empty strings.
 */
export function k8sIdentityFromLabels(labels: Labels, podLabels: Labels = {}): K8sIdentity | undefined {
  const podName = labels[K8S_LABEL.podName];
  const namespace = labels[K8S_LABEL.podNamespace];
  const podUid = labels[K8S_LABEL.podUid];
  if (podName === undefined && namespace === undefined && podUid === undefined) return undefined;
  return {
    namespace: namespace ?? '',
    podName: podName ?? '',
    podUid: podUid ?? '',
    containerName: labels[K8S_LABEL.containerName] ?? '',
    podLabels,
  };
}

/** Whether containerd's CRI plugin labelled this as a pod sandbox (pause) rather than a workload. */
export function isCriSandbox(labels: Labels): boolean {
  return labels[CRI_CONTAINERD_KIND_LABEL] === 'sandbox';
}

/**
 * The pod's own labels out of a sandbox's labels: kubelet passes the pod labels plus its
 * `io.kubernetes.pod.*` bookkeeping; containerd adds `io.cri-containerd.kind`. Only the pod's
 * labels are kept, so `--k8s-selector` means what it means to kubectl.
 */
export function podLabelsFromSandbox(sandboxLabels: Labels): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(sandboxLabels)) {
    if (key.startsWith('io.kubernetes.pod.') || key === CRI_CONTAINERD_KIND_LABEL) continue;
    out[key] = value;
  }
  return out;
}
