// SPDX-License-Identifier: Apache-2.0
// The agent's capture relay: packets copied out of the ring, held until their pod is known,
// dropped out of scope or past the hold (and not held again), the agent's own namespace never
// relayed; and the wire packet through the event codec into the pcapng writer's interface name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CaptureRelay } from '../../src/agent/capture-relay.js';
import type { ContainerInfo } from '../../src/containers/types.js';
import type { CapturedPacket } from '../../src/gadgets/capture/definition.js';
import type { WirePacket } from '../../src/gadgets/capture/wire.js';
import { decodeEvent, encodeEvent } from '../../src/output/event-wire.js';

function pod(netns: number, ns: string, name: string, container: string): ContainerInfo {
  return {
    runtime: 'containerd', id: `${name}-${container}`, name: container, image: 'x', labels: {}, pid: 1, mntns: 1, netns, cgroupPath: '/', cgroupId: undefined,
    k8s: { namespace: ns, podName: name, containerName: container, podUid: 'u', podLabels: {} } as unknown as ContainerInfo['k8s'], runtimeNamespace: 'k8s.io', source: 'runtime',
  } as ContainerInfo;
}

/** A packet as the session hands it: a view into a bigger buffer (the ring). */
function packet(netns: number, bytes: number[], ring: Buffer): CapturedPacket {
  const offset = 100;
  Buffer.from(bytes).copy(ring, offset);
  return {
    p: { sec: 1000, nsec: 5, caplen: bytes.length, len: bytes.length, status: 0, ifindex: 2, hatype: 1, pkttype: 4, protocol: 0x800, vlanTci: 0, vlanTpid: 0, buf: ring, offset },
    linkType: 1, targetId: 1, netns, label: { short: `netns${netns}`, long: `netns ${netns}` }, interfaceName: 'eth0', comment: () => undefined,
  };
}

test('the relay copies packets, holds an unknown namespace until its pod is known, drops other pods, the agent\'s own namespace and the never known', () => {
  const known = new Map<number, ContainerInfo[]>([[20, [pod(20, 'shop', 'web', 'web')]], [30, [pod(30, 'other', 'db', 'db')]]]);
  const sent: WirePacket[] = [];
  const relay = new CaptureRelay({
    node: 'n1', selector: { k8sNamespace: 'shop' }, byNetns: (i) => known.get(i) ?? [], hostNetns: () => 10, everyNamespace: true, ownNetns: 99,
    send: (b) => sent.push(...b), holdMs: 2000,
  });
  const ring = Buffer.alloc(4096);
  // one at a time, each in the same place of the ring, as the session hands them over
  for (const [netns, bytes] of [[20, [1, 2, 3]], [30, [4]], [10, [5]], [99, [6]], [40, [7, 8]], [50, [9]]] as [number, number[]][]) relay.packets([packet(netns, bytes, ring)], 0);
  ring.fill(0xee); // the ring is reused: what was sent and held must be copies
  assert.equal(sent.length, 1);
  assert.deepEqual([...sent[0]!.data], [1, 2, 3]);
  assert.deepEqual(sent[0]!.owner, { kind: 'pod', namespace: 'shop', pod: 'web', containers: ['web'], runtime: 'containerd', label: 'shop/web' });
  assert.deepEqual(sent[0]!.k8s, { node: 'n1', namespace: 'shop', podName: 'web', containerName: 'web' });
  assert.equal(relay.counters.outOfScope, 2); // the other namespace's pod, and the host (not in scope)
  assert.equal(relay.counters.own, 1);
  assert.equal(relay.counters.held, 2);
  // the pod of netns 40 is learnt (and gone again before the next tick): its packet goes on
  relay.learn(pod(40, 'shop', 'client', 'curl'));
  relay.tick(500);
  assert.equal(sent.length, 2);
  assert.equal(sent[1]!.k8s.podName, 'client');
  assert.deepEqual([...sent[1]!.data], [7, 8]);
  // netns 50 is never known: dropped at the hold's end, and its later packets are not held
  relay.tick(2500);
  assert.equal(relay.counters.unattributed, 1);
  relay.packets([packet(50, [1], ring)], 2600);
  assert.equal(relay.counters.unattributed, 2);
  assert.equal(relay.counters.held, 0);
  assert.equal(relay.counters.sent, 2);
  // the wire packet survives the agent's event codec with its bytes
  const back = decodeEvent<WirePacket>(encodeEvent(sent[1]));
  assert.ok(Buffer.isBuffer(back.data));
  assert.deepEqual([...back.data], [7, 8]);
  assert.equal(back.timestamp, 1000 * 1000 + 5 / 1e6);
});

test('the relay without a pod scope (the host, pids) sends everything, naming what it can', () => {
  const sent: WirePacket[] = [];
  const relay = new CaptureRelay({ node: 'n2', selector: { host: true }, byNetns: () => [], hostNetns: () => 10, everyNamespace: false, send: (b) => sent.push(...b) });
  const ring = Buffer.alloc(512);
  relay.packets([packet(10, [1], ring)], 0);
  relay.packets([packet(77, [2], ring)], 0);
  assert.deepEqual(sent.map((w) => w.owner.label), ['host', 'netns77']);
});
