// SPDX-License-Identifier: Apache-2.0
/** The fields every event carries: process, container runtime and Kubernetes identity. */
import type { Field } from './field.js';

/**
 * The process (thread) behind an event: the one shape every gadget, the session and the fields
 * use. The kernel's record (`struct tlscope_proc`, decoded by src/gadgets/proc-record.ts into a
 * `Required<ProcInfo>`) fills every field; where the process is unknown (an SNI seen arriving)
 * pid is 0 and the optional fields are left out.
 */
export interface ProcInfo {
  /** host tgid */
  pid: number;
  /** host thread id */
  tid: number;
  /** the thread's comm */
  comm: string;
  uid?: number;
  gid?: number;
  /** mount namespace inode: the container index key */
  mntns?: number;
  /** network namespace inode (the socket's, or the task's) */
  netns?: number;
  /** cgroup v2 id */
  cgroupId?: bigint;
}

export interface RuntimeInfo {
  runtimeName: string;
  containerId: string;
  containerName: string;
  containerImageName?: string;
}

export interface K8sInfo {
  namespace: string;
  podName: string;
  containerName: string;
  podUid?: string;
}

export interface CommonEvent {
  /** wall-clock time in ms since the epoch */
  timestamp: number;
  proc: ProcInfo;
  runtime?: RuntimeInfo;
  k8s?: K8sInfo;
}

/** Which column groups are shown by default: containers and pods only when in scope. */
export interface ColumnContext {
  containers: boolean;
  pods: boolean;
}

export type FieldGroup = 'runtime' | 'k8s' | undefined;

export interface CommonField<E> extends Field<E> {
  group?: FieldGroup;
}

function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

export function commonFields<E extends CommonEvent>(): CommonField<E>[] {
  return [
    { name: 'timestamp', column: 'TIME', width: 24, description: 'when the event happened (ISO 8601)', visible: false, get: (e) => isoTime(e.timestamp) },
    { name: 'k8s.namespace', column: 'K8S.NAMESPACE', width: 16, description: 'Kubernetes namespace of the pod', visible: true, group: 'k8s', get: (e) => e.k8s?.namespace },
    { name: 'k8s.podName', column: 'K8S.PODNAME', width: 20, description: 'Kubernetes pod', visible: true, group: 'k8s', get: (e) => e.k8s?.podName },
    { name: 'k8s.containerName', column: 'K8S.CONTAINERNAME', width: 18, description: 'container name in the pod spec', visible: true, group: 'k8s', get: (e) => e.k8s?.containerName },
    { name: 'k8s.podUid', column: 'K8S.PODUID', width: 36, description: 'pod UID', visible: false, group: 'k8s', get: (e) => e.k8s?.podUid },
    { name: 'runtime.runtimeName', column: 'RUNTIME.RUNTIMENAME', width: 10, description: 'container runtime (docker, containerd, podman, cri-o)', visible: false, get: (e) => e.runtime?.runtimeName },
    { name: 'runtime.containerName', column: 'RUNTIME.CONTAINERNAME', width: 22, description: 'container name as the runtime knows it', visible: true, group: 'runtime', get: (e) => e.runtime?.containerName },
    { name: 'runtime.containerId', column: 'RUNTIME.CONTAINERID', width: 13, description: 'container id', visible: false, get: (e) => e.runtime?.containerId },
    { name: 'runtime.containerImageName', column: 'RUNTIME.CONTAINERIMAGENAME', width: 24, description: 'container image', visible: false, get: (e) => e.runtime?.containerImageName },
    { name: 'proc.pid', column: 'PID', type: 'int', width: 8, align: 'right', description: 'process id (host pid namespace)', visible: true, get: (e) => e.proc.pid },
    { name: 'proc.tid', column: 'TID', type: 'int', width: 8, align: 'right', description: 'thread id (host pid namespace)', visible: true, get: (e) => e.proc.tid },
    { name: 'proc.comm', column: 'COMM', width: 16, description: 'command name of the thread', visible: true, get: (e) => e.proc.comm },
    { name: 'proc.uid', column: 'UID', type: 'int', width: 6, align: 'right', description: 'user id', visible: false, get: (e) => e.proc.uid },
    { name: 'proc.gid', column: 'GID', type: 'int', width: 6, align: 'right', description: 'group id', visible: false, get: (e) => e.proc.gid },
    { name: 'proc.mntns_id', column: 'MNTNS', type: 'int', width: 11, align: 'right', description: 'mount namespace inode', visible: false, get: (e) => e.proc.mntns },
    { name: 'proc.netns_id', column: 'NETNS', type: 'int', width: 11, align: 'right', description: 'network namespace inode', visible: false, get: (e) => e.proc.netns },
  ];
}

/** Default columns: hide the container/pod groups when they are not in scope. */
export function defaultVisible<E>(ctx: ColumnContext): (f: CommonField<E>) => boolean {
  return (f) => f.visible && (f.group !== 'runtime' || ctx.containers) && (f.group !== 'k8s' || ctx.pods);
}
