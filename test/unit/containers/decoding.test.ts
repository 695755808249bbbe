// SPDX-License-Identifier: Apache-2.0
// What each runtime client makes of the runtime's answers, on answers shaped as the runtimes send them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { containerdDisplayName, containerdEnvelopeToEvent } from '../../../src/containers/containerd.js';
import { criEventToRuntimeEvent, pidFromVerboseInfo } from '../../../src/containers/cri.js';
import { engineEventToRuntimeEvent, inspectToRuntimeContainer, negotiateApiVersion } from '../../../src/containers/docker.js';
import { decodeWireFields, wireString, wireUint } from '../../../src/containers/protowire.js';

// A minimal protobuf encoder, for building payloads the way containerd does.
function varint(n: number): number[] {
  const out: number[] = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}
const str = (field: number, s: string): number[] => {
  const bytes = [...new TextEncoder().encode(s)];
  return [...varint((field << 3) | 2), ...varint(bytes.length), ...bytes];
};
const uint = (field: number, n: number): number[] => [...varint(field << 3), ...varint(n)];
const msg = (...parts: number[][]): Uint8Array => Uint8Array.from(parts.flat());

test('protowire reads strings, varints, and skips fixed-width and unknown fields', () => {
  const buf = msg(str(1, 'web'), uint(2, 300), [(3 << 3) | 1, 1, 2, 3, 4, 5, 6, 7, 8], [(4 << 3) | 5, 1, 2, 3, 4], str(5, 'exec-1'), uint(2, 2 ** 40));
  const f = decodeWireFields(buf);
  assert.equal(wireString(f, 1), 'web');
  assert.equal(wireUint(f, 2), 2 ** 40, 'the last value of a repeated scalar wins');
  assert.equal(wireString(f, 5), 'exec-1');
  assert.equal(wireString(f, 9), '');
  assert.equal(wireUint(f, 9), 0);
  assert.throws(() => decodeWireFields(Uint8Array.from([0x0a, 0x05, 0x61])), RangeError, 'truncated');
  assert.throws(() => decodeWireFields(Uint8Array.from([0x0b])), RangeError, 'group wire types are not used by containerd');
});

test('containerd task events: start, exit and delete of the container task; exec processes ignored', () => {
  // TaskStart { container_id = 1; pid = 2 }
  assert.deepEqual(containerdEnvelopeToEvent('/tasks/start', 'default', msg(str(1, 'web'), uint(2, 1234))), { type: 'start', id: 'web', runtimeNamespace: 'default', pid: 1234 });
  // TaskExit { container_id = 1; id = 2; pid = 3; exit_status = 4 }
  assert.deepEqual(containerdEnvelopeToEvent('/tasks/exit', 'k8s.io', msg(str(1, 'web'), str(2, 'web'), uint(3, 1234), uint(4, 137))), { type: 'stop', id: 'web', runtimeNamespace: 'k8s.io' });
  assert.equal(containerdEnvelopeToEvent('/tasks/exit', 'default', msg(str(1, 'web'), str(2, 'exec-42'), uint(3, 999))), undefined);
  // TaskDelete { container_id = 1; pid = 2; exit_status = 3; exited_at = 4; id = 5 }
  assert.deepEqual(containerdEnvelopeToEvent('/tasks/delete', 'default', msg(str(1, 'web'), uint(2, 1234))), { type: 'stop', id: 'web', runtimeNamespace: 'default' });
  assert.equal(containerdEnvelopeToEvent('/tasks/delete', 'default', msg(str(1, 'web'), uint(2, 99), str(5, 'exec-42'))), undefined);
  assert.equal(containerdEnvelopeToEvent('/tasks/oom', 'default', msg(str(1, 'web'))), undefined);
  assert.equal(containerdEnvelopeToEvent('/tasks/start', 'default', msg(uint(2, 5))), undefined, 'no container id');
});

test('containerd display names: kubelet, nerdctl, else the id', () => {
  assert.equal(containerdDisplayName('abc', { 'io.kubernetes.container.name': 'nginx' }), 'nginx');
  assert.equal(containerdDisplayName('abc', { 'nerdctl/name': 'my-web' }), 'my-web');
  assert.equal(containerdDisplayName('abc', {}), 'abc');
});

test('Engine API events (docker and podman shapes)', () => {
  const id = 'b0d6d6c97bbc8248a2a5402336dec654c8f07e827849f811cb1a122920ef121f';
  const ev = (action: string, type = 'container') => ({ status: action, id, from: 'img', Type: type, Action: action, Actor: { ID: id, Attributes: { name: 'dt1' } }, scope: 'local', time: 1, timeNano: 1 });
  assert.deepEqual(engineEventToRuntimeEvent(ev('start')), { type: 'start', id });
  for (const a of ['die', 'destroy', 'remove']) assert.deepEqual(engineEventToRuntimeEvent(ev(a)), { type: 'stop', id });
  for (const a of ['create', 'init', 'kill', 'stop', 'attach', 'exec_start: sh', 'exec_die', 'health_status: healthy']) assert.equal(engineEventToRuntimeEvent(ev(a)), undefined, a);
  assert.equal(engineEventToRuntimeEvent(ev('start', 'network')), undefined);
  assert.equal(engineEventToRuntimeEvent('nonsense'), undefined);
});

test('Engine API inspect: running containers only, name without slash, labels kept', () => {
  const inspect = {
    Id: 'a4297a833e6c2ba3cd0cb4171ebecd52448048bb414d37a09cdcbe8feda5d2eb',
    Name: '/web',
    State: { Status: 'running', Running: true, Pid: 14512 },
    Config: { Image: 'nginx:1.25', Labels: { app: 'web', weird: 5 } },
    Image: 'sha256:abc',
  };
  assert.deepEqual(inspectToRuntimeContainer('docker', inspect), { runtime: 'docker', id: inspect.Id, name: 'web', image: 'nginx:1.25', labels: { app: 'web' }, pid: 14512 });
  assert.equal(inspectToRuntimeContainer('podman', { ...inspect, State: { Running: false, Pid: 0 } }), undefined);
  assert.equal(inspectToRuntimeContainer('podman', { ...inspect, Config: { Labels: null } })?.image, 'sha256:abc');
  assert.deepEqual(inspectToRuntimeContainer('podman', { ...inspect, Config: { Labels: null } })?.labels, {});
});

test('Engine API version negotiation: ours unless the daemon is older', () => {
  assert.equal(negotiateApiVersion('1.41'), '1.41');
  assert.equal(negotiateApiVersion('1.47'), '1.41');
  assert.equal(negotiateApiVersion('1.40'), '1.40');
  assert.equal(negotiateApiVersion('1.9'), '1.9');
  assert.equal(negotiateApiVersion('2.0'), '1.41');
  assert.equal(negotiateApiVersion(''), '1.41');
});

test('CRI: pid from verbose info (containerd and cri-o shapes), events', () => {
  assert.equal(pidFromVerboseInfo({ info: JSON.stringify({ sandboxID: 'x', pid: 18488, runtimeSpec: {} }) }), 18488);
  assert.equal(pidFromVerboseInfo({ info: '{"pid":7,"sandboxID":"y"}' }), 7);
  assert.equal(pidFromVerboseInfo({}), 0);
  assert.equal(pidFromVerboseInfo({ info: 'not json' }), 0);
  assert.deepEqual(criEventToRuntimeEvent({ container_id: 'c1', container_event_type: 1, created_at: 5 }), { type: 'start', id: 'c1' });
  assert.deepEqual(criEventToRuntimeEvent({ container_id: 'c1', container_event_type: 2 }), { type: 'stop', id: 'c1' });
  assert.deepEqual(criEventToRuntimeEvent({ container_id: 'c1', container_event_type: 3 }), { type: 'stop', id: 'c1' });
  assert.equal(criEventToRuntimeEvent({ container_id: 'c1', container_event_type: 0 }), undefined, 'created is not started');
  assert.equal(criEventToRuntimeEvent({ container_event_type: 1 }), undefined);
});
