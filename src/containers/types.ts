// SPDX-License-Identifier: Apache-2.0
/** The shapes every runtime client produces and the container index serves. */

export type RuntimeName = 'docker' | 'containerd' | 'podman' | 'cri-o';

export const RUNTIME_NAMES: readonly RuntimeName[] = ['docker', 'containerd', 'podman', 'cri-o'];

export function isRuntimeName(s: string): s is RuntimeName {
  return (RUNTIME_NAMES as readonly string[]).includes(s);
}

export type Labels = Readonly<Record<string, string>>;

/** Who a container is in Kubernetes, read from the labels kubelet puts on every container. */
export interface K8sIdentity {
  readonly namespace: string;
  readonly podName: string;
  readonly podUid: string;
  readonly containerName: string;
  /** The pod's own labels, where the runtime knows them (CRI sandboxes); empty otherwise. */
  readonly podLabels: Labels;
}

/** What a runtime says about one running container; the index adds what the kernel says. */
/** A container's first program as its OCI spec says (process.args/env/cwd), known from the start hook. */
export interface ContainerEntry {
  readonly args: readonly string[];
  /** only PATH and LD_LIBRARY_PATH (`KEY=value`): what finding the program and its libraries needs */
  readonly env: readonly string[];
  readonly cwd: string;
}

export interface RuntimeContainer {
  readonly runtime: RuntimeName;
  readonly id: string;
  readonly name: string;
  readonly image: string;
  readonly labels: Labels;
  /** The container's first process, in the host pid namespace. */
  readonly pid: number;
  /** containerd's namespace (`default`, `k8s.io`, …); undefined for other runtimes. */
  readonly runtimeNamespace?: string;
  /** Pod labels, when the runtime knows the pod (CRI sandboxes). */
  readonly podLabels?: Labels;
  /** The first program, when the start hook read the bundle (the container has not run yet). */
  readonly entry?: ContainerEntry;
}

/** How the index learnt about a container. */
export type ContainerSource =
  /** The runtime's API answered: name, image and labels are real. */
  | 'runtime'
  /** Only the cgroup path named it: id and runtime are known, name is the short id, no labels. */
  | 'cgroup'
  /**
   * The start hook, before the container ran (hook.ts): runtime, id, name and labels from its
   * bundle; the image and a pod's own labels may be missing until its runtime's API answers,
   * which then replaces the entry (`updated`).
   */
  | 'hook';

/** A running container as the index serves it to gadgets. */
export interface ContainerInfo {
  readonly runtime: RuntimeName;
  readonly id: string;
  readonly name: string;
  readonly image: string;
  readonly labels: Labels;
  readonly pid: number;
  /** Mount namespace inode (`/proc/PID/ns/mnt`), what BPF sees as `nsproxy->mnt_ns->ns.inum`. */
  readonly mntns: number;
  /** Network namespace inode (`/proc/PID/ns/net`). */
  readonly netns: number;
  /** The cgroup path that names the container (unified hierarchy when it says more than `/`). */
  readonly cgroupPath: string;
  /** cgroup v2 id (`bpf_get_current_cgroup_id()`), undefined without a cgroup2 mount. */
  readonly cgroupId: bigint | undefined;
  readonly k8s: K8sIdentity | undefined;
  readonly runtimeNamespace: string | undefined;
  readonly source: ContainerSource;
  /** See RuntimeContainer.entry: only on entries the start hook made. */
  readonly entry?: ContainerEntry;
}

/** A change a runtime reports; the index asks the runtime for details on `start`. */
export interface RuntimeEvent {
  readonly type: 'start' | 'stop';
  readonly id: string;
  readonly runtimeNamespace?: string;
  /** The started process, where the event says it (containerd's TaskStart). */
  readonly pid?: number;
}

/**
 * One container runtime reached through its own API. Implementations: Docker Engine API
 * (docker, podman), containerd gRPC, CRI gRPC (cri-o, containerd's CRI plugin).
 */
export interface RuntimeClient {
  readonly name: RuntimeName;
  /** The API socket; a client whose socket does not exist is absent and skipped quietly. */
  readonly socketPath: string;
  /** Whether the API socket exists (a cheap stat). */
  isPresent(): boolean;
  /** Every running container. */
  list(signal?: AbortSignal): Promise<RuntimeContainer[]>;
  /**
   * One container, or undefined when it is not running (or is not a workload, like a pod sandbox).
   * With `exited`, also one whose process has exited but which its runtime still knows (its pid
   * may then be stale or 0): for a container the index saw run in /proc before it could ask.
   */
  inspect(id: string, runtimeNamespace?: string, signal?: AbortSignal, opts?: InspectOptions): Promise<RuntimeContainer | undefined>;
  /**
   * Start and stop events from now on. The subscription is made when `watch` is called (not
   * on first iteration), so a `list()` that follows misses nothing. Ends when `signal` aborts;
   * throws when the connection breaks.
   */
  watch(signal: AbortSignal): AsyncIterable<RuntimeEvent>;
  /** Releases the connection; the client is unusable afterwards. */
  close(): void;
}

export interface InspectOptions {
  /** Also a container whose process has exited (see RuntimeClient.inspect). */
  readonly exited?: boolean;
}
