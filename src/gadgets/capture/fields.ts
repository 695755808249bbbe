// SPDX-License-Identifier: Apache-2.0
/**
 * The fields of a captured packet, for `capture --query`: where it was seen (container, pod,
 * interface, direction), its addresses and protocol, and the process that sent it when
 * tlscope saw the socket in use. Values are computed only when a query reads them (the
 * packet is dissected at most once).
 */
import type { ContainerInfo } from '../../containers/types.js';
import type { Field } from '../../fields/field.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, type PacketInfo } from '../../protocols/dissect.js';
import type { ProcRecord } from '../proc-record.js';

/** One packet as a query sees it; valid only while its handler runs. */
export interface PacketView {
  /** ms since the epoch */
  readonly timestamp: number;
  readonly interfaceName: string;
  /** PACKET_* type: 4 outgoing, 0 to this host, 1 broadcast, 2 multicast, 3 to another host */
  readonly pkttype: number;
  /** the network namespace it was captured in */
  readonly netns: number;
  /** the containers (or pod) that namespace belongs to; none for the host or a bare namespace */
  readonly containers: readonly ContainerInfo[];
  /** bytes on the wire */
  readonly len: number;
  info(): PacketInfo;
  sender(): ProcRecord | undefined;
}

function protocolName(i: PacketInfo): string {
  if (i.network === 'ARP') return 'arp';
  switch (i.protocol) {
    case IPPROTO_TCP:
      return 'tcp';
    case IPPROTO_UDP:
      return 'udp';
    case IPPROTO_ICMP:
      return 'icmp';
    case IPPROTO_ICMPV6:
      return 'icmp6';
    default:
      return i.network === '' ? '' : String(i.protocol);
  }
}

const first = (p: PacketView): ContainerInfo | undefined => p.containers[0];

export function packetFields(): Field<PacketView>[] {
  const f = (name: string, type: Field<PacketView>['type'], description: string, get: Field<PacketView>['get']): Field<PacketView> =>
    ({ name, column: name.toUpperCase(), width: 10, description, visible: false, ...(type === undefined ? {} : { type }), get });
  return [
    f('timestamp', undefined, 'when it was captured (ISO 8601)', (p) => new Date(p.timestamp).toISOString()),
    f('runtime.containerName', undefined, 'the container whose namespace it was captured in', (p) => first(p)?.name),
    f('runtime.runtimeName', undefined, 'that container\'s runtime', (p) => first(p)?.runtime),
    f('runtime.containerId', undefined, 'that container\'s id', (p) => first(p)?.id),
    f('k8s.namespace', undefined, 'the pod\'s Kubernetes namespace', (p) => first(p)?.k8s?.namespace),
    f('k8s.podName', undefined, 'the pod', (p) => first(p)?.k8s?.podName),
    f('proc.pid', 'int', 'the sending process, when its socket was seen in use', (p) => p.sender()?.pid),
    f('proc.comm', undefined, 'the sending process\'s command name', (p) => p.sender()?.comm),
    f('proc.netns_id', 'int', 'the network namespace it was captured in', (p) => p.netns),
    f('interface', undefined, 'interface name inside its namespace', (p) => p.interfaceName),
    f('direction', undefined, 'out: sent from the namespace; in: received (also broadcast, multicast)', (p) => (p.pkttype === 4 ? 'out' : 'in')),
    f('protocol', undefined, 'tcp, udp, icmp, icmp6, arp, or the IP protocol number', (p) => protocolName(p.info())),
    f('src', undefined, 'source address', (p) => p.info().src || undefined),
    f('dst', undefined, 'destination address', (p) => p.info().dst || undefined),
    f('sport', 'int', 'source port (TCP, UDP)', (p) => { const i = p.info(); return i.protocol === IPPROTO_TCP || i.protocol === IPPROTO_UDP ? i.sport : undefined; }),
    f('dport', 'int', 'destination port (TCP, UDP)', (p) => { const i = p.info(); return i.protocol === IPPROTO_TCP || i.protocol === IPPROTO_UDP ? i.dport : undefined; }),
    f('len', 'int', 'bytes on the wire', (p) => p.len),
    f('payload', 'int', 'TCP payload bytes', (p) => p.info().tcp?.payload),
  ];
}
