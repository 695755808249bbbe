// SPDX-License-Identifier: Apache-2.0
// capture --query: the packet fields as a query reads them (real dissected frames), what is
// pushed down (proc.netns_id, not proc.pid), when owners are needed, and usage errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../../../src/errors.js';
import { compileCaptureQuery, queryReadsOwners } from '../../../src/gadgets/capture/definition.js';
import type { PacketView } from '../../../src/gadgets/capture/fields.js';
import { dissect } from '../../../src/protocols/dissect.js';
import type { ContainerInfo } from '../../../src/containers/types.js';
import { ethernet, ipv4, tcp, udp, TCP_SYN } from './packets.js';

const LINKTYPE_ETHERNET = 1;

function view(frame: number[], o: { pkttype?: number; iface?: string; netns?: number; containers?: ContainerInfo[]; sender?: { pid: number; comm: string } } = {}): PacketView & { dissected: number; senderAsked: number } {
  const b = Buffer.from(frame);
  const v = {
    dissected: 0,
    senderAsked: 0,
    timestamp: Date.UTC(2026, 0, 2, 3, 4, 5),
    interfaceName: o.iface ?? 'eth0',
    pkttype: o.pkttype ?? 4,
    netns: o.netns ?? 4026531840,
    containers: o.containers ?? [],
    len: b.length,
    info() {
      v.dissected++;
      return dissect(b, 0, b.length, LINKTYPE_ETHERNET);
    },
    sender() {
      v.senderAsked++;
      return o.sender === undefined ? undefined : { pid: o.sender.pid, tid: o.sender.pid, comm: o.sender.comm, mntns: 1 } as never;
    },
  };
  return v;
}

const syn = (sport: number, dport: number): number[] => ethernet(0x0800, ipv4('10.0.0.1', '10.0.0.2', 6, tcp({ sport, dport, flags: TCP_SYN })));
const dns = ethernet(0x0800, ipv4('10.0.0.1', '10.0.0.9', 17, udp(40000, 53, 'q')));
const web = { id: 'c1', name: 'web', runtime: 'docker', pid: 1, mntns: 2, netns: 3, k8s: { namespace: 'shop', podName: 'web-0', containerName: 'web', podUid: 'u' } } as unknown as ContainerInfo;

test('capture query: addresses, ports, protocol, direction and interface of a real frame', () => {
  const q = compileCaptureQuery('protocol == "tcp" && dport == 443 && sport == 5555 && src == "10.0.0.1" && dst == "10.0.0.2" && direction == "out" && interface == "eth0" && len == 54');
  assert.equal(q.predicate(view(syn(5555, 443))), true);
  assert.equal(q.predicate(view(syn(5555, 80))), false, 'another port');
  assert.equal(q.predicate(view(syn(5555, 443), { pkttype: 0 })), false, 'received, not sent');
  assert.equal(q.predicate(view(syn(5555, 443), { iface: 'lo' })), false, 'another interface');
  assert.equal(q.predicate(view(dns)), false, 'udp');
  assert.equal(compileCaptureQuery('protocol == "udp" && dport == 53').predicate(view(dns)), true);
  assert.equal(q.errors(), 0);
});

test('capture query: container and pod names; absent for the host (has() asks, reading is false)', () => {
  const q = compileCaptureQuery('runtime.containerName == "web" && k8s.podName == "web-0" && k8s.namespace == "shop"');
  assert.equal(q.predicate(view(syn(1, 2), { containers: [web] })), true);
  assert.equal(q.predicate(view(syn(1, 2))), false, 'the host: no container');
  assert.equal(compileCaptureQuery('!has(runtime.containerName)').predicate(view(syn(1, 2))), true);
  assert.equal(q.errors(), 0, 'an absent field is not an evaluation error');
});

test('capture query: values are computed only when read (no dissection, no owner look-up for interface == …)', () => {
  const v = view(syn(1, 2));
  assert.equal(compileCaptureQuery('interface == "eth0"').predicate(v), true);
  assert.equal(v.dissected, 0);
  assert.equal(v.senderAsked, 0);
  const w = view(syn(1, 2), { sender: { pid: 42, comm: 'curl' } });
  assert.equal(compileCaptureQuery('proc.comm == "curl" && proc.pid == 42').predicate(w), true);
  assert.ok(w.senderAsked > 0);
});

test('capture query: owners are needed for proc.pid and proc.comm, not for proc.netns_id', () => {
  assert.equal(queryReadsOwners(compileCaptureQuery('proc.comm == "curl"')), true);
  assert.equal(queryReadsOwners(compileCaptureQuery('proc.pid in [1, 2]')), true);
  assert.equal(queryReadsOwners(compileCaptureQuery('proc.netns_id == 7 && dport == 1')), false);
  assert.equal(queryReadsOwners(compileCaptureQuery('dport == 1')), false);
});

test('capture query: proc.netns_id is pushed down; proc.pid (the sender, not a namespace) is left to the predicate', () => {
  assert.deepEqual(compileCaptureQuery('proc.netns_id == 7 || proc.netns_id == 5').pushdown, { netns: [5, 7] });
  assert.deepEqual(compileCaptureQuery('proc.netns_id in [9, 8] && dport == 443').pushdown, { netns: [8, 9] });
  assert.deepEqual(compileCaptureQuery('proc.netns_id == 7 || dport == 443').pushdown, {}, 'the other side can match any namespace');
  // the generic pushdown also names pids; capture's definition applies only netns
  const byPid = compileCaptureQuery('proc.pid == 42');
  assert.equal(byPid.predicate(view(syn(1, 2), { sender: { pid: 42, comm: 'x' }, netns: 99 })), true);
  assert.equal(byPid.predicate(view(syn(1, 2), { sender: { pid: 43, comm: 'x' } })), false);
  assert.equal(byPid.predicate(view(syn(1, 2))), false, 'no owner known: false');
});

test('capture query: bad expressions are usage errors with the column', () => {
  assert.throws(() => compileCaptureQuery('dport == "443"'), (e: unknown) => e instanceof UsageError && /no such overload: int == string at column 1/.test(e.message));
  assert.throws(() => compileCaptureQuery('name.endsWith(".test")'), (e: unknown) => e instanceof UsageError && /unknown field "name" at column 1/.test(e.message) && /known fields: .*dport/.test(e.hint ?? ''));
  assert.throws(() => compileCaptureQuery('dport +'), (e: unknown) => e instanceof UsageError && /syntax error/.test(e.message));
  assert.throws(() => compileCaptureQuery('dport'), (e: unknown) => e instanceof UsageError && /not true or false/.test(e.message));
});
