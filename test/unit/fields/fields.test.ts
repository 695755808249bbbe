// SPDX-License-Identifier: Apache-2.0
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commonFields, defaultVisible, type CommonEvent } from '../../../src/fields/common.js';
import { selectFields } from '../../../src/fields/field.js';
import { parseFilter } from '../../../src/fields/filter.js';
import { ColumnWriter } from '../../../src/output/columns.js';
import { JsonWriter, toJsonObject } from '../../../src/output/json.js';
import { UsageError } from '../../../src/errors.js';

interface Ev extends CommonEvent {
  name: string;
}
const fields = [...commonFields<Ev>(), { name: 'name', column: 'NAME', width: 30, description: 'server name', visible: true, get: (e: Ev) => e.name }];
const ev = (pid: number, comm: string, name: string, container?: string): Ev => ({
  timestamp: 0,
  proc: { pid, tid: pid + 1, comm },
  name,
  ...(container === undefined ? {} : { runtime: { runtimeName: 'docker', containerId: 'abc', containerName: container } }),
});

class Buf {
  s = '';
  write(x: string): void {
    this.s += x;
  }
}

test('default columns hide container and pod groups unless they are in scope', () => {
  const host = selectFields(fields, undefined, defaultVisible({ containers: false, pods: false })).map((f) => f.column);
  assert.deepEqual(host, ['PID', 'TID', 'COMM', 'NAME']);
  const pods = selectFields(fields, undefined, defaultVisible({ containers: true, pods: true })).map((f) => f.column);
  assert.deepEqual(pods, ['K8S.NAMESPACE', 'K8S.PODNAME', 'K8S.CONTAINERNAME', 'RUNTIME.CONTAINERNAME', 'PID', 'TID', 'COMM', 'NAME']);
});

test('--fields accepts JSON names, headers and short names; unknown ones are a usage error', () => {
  assert.deepEqual(selectFields(fields, 'proc.comm,PID,name').map((f) => f.name), ['proc.comm', 'proc.pid', 'name']);
  assert.throws(() => selectFields(fields, 'nope'), (e: unknown) => e instanceof UsageError && /unknown field "nope"/.test(e.message));
});

test('--filter: equality, inequality, regex, numbers, escaped commas', () => {
  const evs = [ev(10, 'curl', 'a.test'), ev(20, 'python3', 'b.test'), ev(30, 'curl', 'x,y.test')];
  const pick = (spec: string): number[] => evs.filter(parseFilter(fields, spec)).map((e) => e.proc.pid);
  assert.deepEqual(pick('proc.comm==curl'), [10, 30]);
  assert.deepEqual(pick('comm!=curl'), [20]);
  assert.deepEqual(pick('name~^b\\.'), [20]);
  assert.deepEqual(pick('pid>15,comm==curl'), [30]);
  assert.deepEqual(pick('name==x\\,y.test'), [30]);
  assert.deepEqual(pick('name!~test$'), []);
  assert.throws(() => parseFilter(fields, 'pid>abc'), UsageError);
  assert.throws(() => parseFilter(fields, 'name~('), /bad regular expression/);
  assert.throws(() => parseFilter(fields, 'justaword'), /bad filter term/);
});

test('columns: a header once, padded cells, long values cut with an ellipsis, control bytes masked', () => {
  const b = new Buf();
  const w = new ColumnWriter(selectFields(fields, 'comm,pid,name'), b);
  w.write([ev(7, 'a-very-long-command-name', 'evil\x1b[2Jname')]);
  w.write([ev(8, 'curl', 'ok.test')]);
  const lines = b.s.trimEnd().split('\n');
  assert.equal(lines.length, 3);
  assert.match(lines[0] ?? '', /^COMM\s+PID NAME$/);
  assert.equal(lines[1], 'a-very-long-com…        7 evil.[2Jname');
  assert.equal(lines[2], 'curl                    8 ok.test');
});

test('json: dotted names nest like Inspektor Gadget, absent values are left out', () => {
  const o = toJsonObject(fields, ev(5, 'wget', 'example.test', 'web'));
  assert.deepEqual(o.proc, { pid: 5, tid: 6, comm: 'wget' });
  assert.deepEqual(o.runtime, { runtimeName: 'docker', containerName: 'web', containerId: 'abc' });
  assert.equal(o.name, 'example.test');
  assert.equal(o.k8s, undefined);
  const b = new Buf();
  new JsonWriter(fields, b).write([ev(1, 'a', 'x'), ev(2, 'b', 'y')]);
  assert.equal(b.s.split('\n').filter(Boolean).map((l) => JSON.parse(l).proc.pid).join(','), '1,2');
});
