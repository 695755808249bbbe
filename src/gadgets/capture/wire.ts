// SPDX-License-Identifier: Apache-2.0
/**
 * A captured packet as it travels from a node's agent to a cluster client (one JSON event of
 * the agent's stream, src/output/event-wire.ts: `data` as base64): a copy, not a view of the
 * ring, with who its network namespace belongs to on that node.
 */

/** Who a network namespace on a node belongs to, as the wire packet carries it. */
export interface NetnsOwner {
  kind: 'pod' | 'container' | 'host' | 'other';
  /** pod namespace and name (kind pod) */
  namespace: string;
  pod: string;
  /** its containers' names (the pod spec's names in a pod) */
  containers: string[];
  runtime: string;
  /** the local label ("tlscope-e2e/web", "host", "netns 4026532…") */
  label: string;
}

/** One packet as it travels to the client (JSON through event-wire: `data` as base64). */
export interface WirePacket {
  /** milliseconds since the epoch, fractional: the cluster merge orders by it */
  timestamp: number;
  sec: number;
  nsec: number;
  caplen: number;
  len: number;
  ifindex: number;
  pkttype: number;
  protocol: number;
  vlanTci: number;
  vlanTpid: number;
  linkType: number;
  netns: number;
  interfaceName: string;
  data: Buffer;
  /** sender and receiver processes, when known */
  comment?: string;
  owner: NetnsOwner;
  k8s: { node: string; namespace: string; podName: string; containerName: string };
}
