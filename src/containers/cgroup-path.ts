// SPDX-License-Identifier: Apache-2.0
/**
 * Which container a cgroup path names. Every runtime puts a container's processes in a cgroup
 * named after the container id, so a process can be attributed even when the runtime cannot
 * be asked (no socket, no permission, daemonless podman without its service). Pure.
 *
 * Shapes recognised (cgroupfs driver / systemd driver):
 *   docker      /docker/<64hex>                     /system.slice/docker-<64hex>.scope
 *   podman      /libpod_parent/libpod-<64hex>       /machine.slice/libpod-<64hex>.scope[/container]
 *   cri-o       /kubepods/…/pod<uid>/crio-<64hex>   /kubepods.slice/…/crio-<64hex>.scope
 *   containerd  /<namespace>/<id>  (ctr, nerdctl)   /kubepods.slice/…/cri-containerd-<64hex>.scope
 *   kubernetes  /kubepods/<qos>/pod<uid>/<64hex>    (cgroupfs: the runtime is not in the path)
 * Runtime helper processes (`libpod-conmon-…`, `crio-conmon-…`) are not containers.
 */
import type { RuntimeName } from './types.js';

export interface CgroupContainerRef {
  /** Undefined when the path names a container but not its runtime (kubelet's cgroupfs layout). */
  readonly runtime: RuntimeName | undefined;
  readonly id: string;
  /** containerd namespace for `/<namespace>/<id>` paths. */
  readonly runtimeNamespace?: string;
  /** Kubernetes pod uid when the path goes through kubelet's pod cgroup. */
  readonly podUid?: string;
}

export interface CgroupParseOptions {
  /**
   * containerd namespaces whose `/<namespace>/<id>` paths are containers. Any two-segment path
   * would match otherwise, so only namespaces known to exist count.
   */
  readonly containerdNamespaces?: ReadonlySet<string>;
}

export const DEFAULT_CONTAINERD_NAMESPACES: ReadonlySet<string> = new Set(['default', 'k8s.io']);

const ID = '([0-9a-f]{64})';
const PREFIXED: ReadonlyArray<readonly [RegExp, RuntimeName]> = [
  [new RegExp(`^docker-${ID}\\.scope$`), 'docker'],
  [new RegExp(`^libpod-${ID}(?:\\.scope)?$`), 'podman'],
  [new RegExp(`^crio-${ID}(?:\\.scope)?$`), 'cri-o'],
  [new RegExp(`^cri-containerd-${ID}\\.scope$`), 'containerd'],
];
const BARE_ID = new RegExp(`^${ID}$`);
/** `pod<uid>` (cgroupfs) or `kubepods-<qos>-pod<uid with _>.slice` (systemd). */
const POD_SEGMENT = /^(?:kubepods-(?:besteffort-|burstable-|guaranteed-)?)?pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$/;
/** containerd accepts ids of letters, digits and `_.-`, up to 76 characters. */
const CONTAINERD_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,75}$/;

function podUidIn(segments: readonly string[]): string | undefined {
  for (const segment of segments) {
    const m = POD_SEGMENT.exec(segment);
    if (m?.[1] !== undefined) return m[1].replaceAll('_', '-');
  }
  return undefined;
}

function withPod(ref: { runtime: RuntimeName | undefined; id: string }, segments: readonly string[]): CgroupContainerRef {
  const podUid = podUidIn(segments);
  return podUid === undefined ? ref : { ...ref, podUid };
}

export function containerFromCgroupPath(path: string, options: CgroupParseOptions = {}): CgroupContainerRef | undefined {
  const segments = path.split('/').filter((s) => s !== '');
  const namespaces = options.containerdNamespaces ?? DEFAULT_CONTAINERD_NAMESPACES;
  if (segments.length === 2) {
    const [ns, id] = segments as [string, string];
    if (namespaces.has(ns) && CONTAINERD_ID.test(id)) return { runtime: 'containerd', id, runtimeNamespace: ns };
  }
  // The innermost container wins (docker-in-docker nests one container's cgroup in another's),
  // and trailing segments such as podman's `/container` sub-cgroup are skipped over.
  for (let i = segments.length - 1; i >= 0; i--) {
    const segment = segments[i] as string;
    for (const [pattern, runtime] of PREFIXED) {
      const m = pattern.exec(segment);
      if (m?.[1] !== undefined) return withPod({ runtime, id: m[1] }, segments.slice(0, i));
    }
    const bare = BARE_ID.exec(segment);
    if (bare?.[1] !== undefined && i > 0) {
      const parent = segments[i - 1] as string;
      if (parent === 'docker') return withPod({ runtime: 'docker', id: bare[1] }, segments.slice(0, i));
      const podUid = podUidIn(segments.slice(0, i));
      if (podUid !== undefined) return { runtime: undefined, id: bare[1], podUid };
    }
  }
  return undefined;
}
