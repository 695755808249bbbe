// SPDX-License-Identifier: Apache-2.0
// src/proc: parsers on real-looking text, readers on a fake tree and on this process.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  cgroupIdOfPath, cgroupMemberships, listPids, namespaceInode, namespacedPids, parseCgroup2MountPoint, parseNamespaceLink, parseProcCgroup,
  parseProcStatus, primaryCgroupPath, processAlive, processComm, processNamespaces, unifiedCgroupPath,
} from '../../../src/proc/index.js';
import { FakeProc } from './fake-proc.js';

const fake = new FakeProc();
after(() => fake.dispose());

test('namespace links parse to inode numbers', () => {
  assert.equal(parseNamespaceLink('net:[4026531840]'), 4026531840);
  assert.equal(parseNamespaceLink('mnt:[4026532180]'), 4026532180);
  assert.equal(parseNamespaceLink('pid_for_children:[4026531836]'), 4026531836);
  assert.equal(parseNamespaceLink('net:4026531840'), undefined);
  assert.equal(parseNamespaceLink('/dev/null'), undefined);
});

const hybrid = `9:name=systemd:/docker/abc
8:pids:/docker/abc
4:memory:/docker/abc
1:cpu:/docker/abc
0::/docker/abc
`;

test('/proc/PID/cgroup: v2, hybrid, and v1-only', () => {
  const v2 = parseProcCgroup('0::/system.slice/docker-x.scope\n');
  assert.deepEqual(v2, [{ hierarchyId: 0, controllers: [], path: '/system.slice/docker-x.scope' }]);
  assert.equal(primaryCgroupPath(v2), '/system.slice/docker-x.scope');

  const h = parseProcCgroup(hybrid);
  assert.equal(h.length, 5);
  assert.deepEqual(h[0], { hierarchyId: 9, controllers: ['name=systemd'], path: '/docker/abc' });
  assert.equal(primaryCgroupPath(h), '/docker/abc');
  assert.equal(unifiedCgroupPath(h), '/docker/abc');

  // Hybrid where the unified line says only "/": fall back to name=systemd.
  const systemdOnly = parseProcCgroup('9:name=systemd:/system.slice/docker-y.scope\n3:cpu,cpuacct:/system.slice/docker-y.scope\n0::/\n');
  assert.equal(primaryCgroupPath(systemdOnly), '/system.slice/docker-y.scope');
  assert.equal(unifiedCgroupPath(systemdOnly), '/');

  // v1 only, no name=systemd: the first controller hierarchy that is not the root.
  assert.equal(primaryCgroupPath(parseProcCgroup('3:cpuset:/\n2:cpu,cpuacct:/kubepods/pod1/abc\n')), '/kubepods/pod1/abc');
  // A path containing ':' stays whole.
  assert.equal(parseProcCgroup('0::/odd:name\n')[0]?.path, '/odd:name');
  assert.deepEqual(parseProcCgroup('garbage\n\n'), []);
});

test('cgroup2 mount point from mountinfo (hybrid and pure v2; sub-tree bind mounts ignored)', () => {
  assert.equal(parseCgroup2MountPoint('41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n'), '/sys/fs/cgroup/unified');
  assert.equal(parseCgroup2MountPoint('30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n'), '/sys/fs/cgroup');
  assert.equal(parseCgroup2MountPoint('30 23 0:26 /kubepods /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n'), undefined);
  assert.equal(parseCgroup2MountPoint('22 1 8:1 / / rw - ext4 /dev/sda1 rw\n'), undefined);
});

test('/proc/PID/status: NSpid host first, container last', () => {
  const s = parseProcStatus('Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t14512\nNgid:\t0\nPid:\t14512\nPPid:\t14490\nNSpid:\t14512\t1\n');
  assert.deepEqual(s, { name: 'sleep', tgid: 14512, pid: 14512, ppid: 14490, nspid: [14512, 1] });
  assert.deepEqual(parseProcStatus('Name:\tx\nTgid:\t5\nPid:\t5\nPPid:\t1\n')?.nspid, [5], 'kernels before 4.1 have no NSpid');
  assert.equal(parseProcStatus('Name:\tx\n'), undefined);
});

test('readers on a fake /proc: values, and undefined for a missing pid', () => {
  fake.add({ pid: 4242, mnt: 4026532180, net: 4026532184, pidns: 4026532181, cgroup: '/docker/abc', comm: 'nginx' });
  assert.deepEqual(processNamespaces(4242, fake.root), { mnt: 4026532180, net: 4026532184, pid: 4026532181 });
  assert.equal(namespaceInode(4242, 'net', fake.root), 4026532184);
  assert.equal(processComm(4242, fake.root), 'nginx');
  assert.deepEqual(namespacedPids(4242, fake.root), [4242, 1]);
  assert.equal(primaryCgroupPath(cgroupMemberships(4242, fake.root) ?? []), '/docker/abc');
  assert.equal(cgroupIdOfPath('/docker/abc', fake.root), statSync(`${fake.cgroupRoot}/docker/abc`, { bigint: true }).ino);
  assert.deepEqual(listPids(fake.root), [4242]);

  for (const read of [
    () => processNamespaces(999999, fake.root),
    () => namespaceInode(999999, 'mnt', fake.root),
    () => processComm(999999, fake.root),
    () => namespacedPids(999999, fake.root),
    () => cgroupMemberships(999999, fake.root),
    () => cgroupIdOfPath('/docker/gone', fake.root),
  ]) assert.equal(read(), undefined);
});

test('readers on this very process agree with the kernel', () => {
  const ns = processNamespaces(process.pid);
  assert.ok(ns);
  assert.equal(ns.mnt, Number(/\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/mnt'))?.[1]));
  assert.equal(ns.net, Number(/\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/net'))?.[1]));
  assert.equal(processComm(process.pid), 'node');
  assert.ok(listPids().includes(process.pid));
  assert.equal(namespacedPids(process.pid)?.[0], process.pid);
  assert.ok((cgroupMemberships(process.pid)?.length ?? 0) > 0);
});

test('a pid that exits between listing and reading gives undefined (never throws)', () => {
  // The largest pid number cannot be running right now with this exact number on a fresh read.
  for (const pid of [2 ** 22 + 1, 0x7fffffff]) {
    assert.equal(processNamespaces(pid), undefined);
    assert.equal(cgroupMemberships(pid), undefined);
    assert.equal(processComm(pid), undefined);
  }
});

test('processAlive: running and sleeping are alive; a zombie, a dead task and a vanished pid are not', () => {
  assert.equal(processAlive(process.pid), true);
  const states: [number, string, boolean][] = [[7001, 'S', true], [7002, 'R', true], [7003, 'Z', false], [7004, 'X', false]];
  for (const [pid, state, alive] of states) {
    mkdirSync(join(fake.root, String(pid)), { recursive: true });
    // a comm with ") Z (" in it must not fool the parser: the state follows the last ')'
    writeFileSync(join(fake.root, String(pid), 'stat'), `${pid} (evil) Z (x) ${state} 1 ${pid} ${pid} 0 -1 4194560\n`);
    assert.equal(processAlive(pid, fake.root), alive, `state ${state}`);
  }
  assert.equal(processAlive(7999, fake.root), false);
});
