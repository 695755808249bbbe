// SPDX-License-Identifier: Apache-2.0
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../../../src/errors.js';
import { commonFields, type CommonEvent, type CommonField } from '../../../src/fields/common.js';
import { compileQuery } from '../../../src/query/query.js';
import { sniFields } from '../../../src/gadgets/sni/fields.js';
import { tlsDataFields, tlsHttpFields } from '../../../src/gadgets/tls/fields.js';
import { toJsonObject } from '../../../src/output/json.js';

interface Ev extends CommonEvent {
  name: string;
  status?: number;
  latencyMs?: number;
  ech: boolean;
}
const fields: CommonField<Ev>[] = [
  ...commonFields<Ev>(),
  { name: 'name', column: 'NAME', width: 30, description: 'server name', visible: true, get: (e) => e.name },
  { name: 'status', column: 'STATUS', type: 'int', width: 6, align: 'right', description: 'HTTP status', visible: true, get: (e) => e.status },
  { name: 'latencyMs', column: 'LATENCY', type: 'double', width: 6, align: 'right', description: 'ms', visible: true, get: (e) => e.latencyMs },
  { name: 'ech', column: 'ECH', type: 'bool', width: 5, description: 'ech', visible: false, get: (e) => e.ech },
];

const ev = (o: { pid?: number; comm?: string; name?: string; container?: string; pod?: string; status?: number; latencyMs?: number; ech?: boolean; mntns?: number }): Ev => ({
  timestamp: 0,
  proc: { pid: o.pid ?? 100, tid: o.pid ?? 100, comm: o.comm ?? 'curl', ...(o.mntns === undefined ? {} : { mntns: o.mntns }) },
  name: o.name ?? 'a.test',
  ech: o.ech ?? false,
  ...(o.status === undefined ? {} : { status: o.status }),
  ...(o.latencyMs === undefined ? {} : { latencyMs: o.latencyMs }),
  ...(o.container === undefined ? {} : { runtime: { runtimeName: 'docker', containerId: 'abc', containerName: o.container } }),
  ...(o.pod === undefined ? {} : { k8s: { namespace: 'shop', podName: o.pod, containerName: 'web' } }),
});

function usageError(expr: string, re: RegExp): void {
  assert.throws(() => compileQuery(expr, fields), (e: unknown) => {
    assert.ok(e instanceof UsageError, `not a usage error: ${String(e)}`);
    assert.match(e.message, re);
    return true;
  });
}

test('the brief\'s examples: strings, methods, numbers, the tls boolean', () => {
  const q = compileQuery('proc.comm == "curl" && name.endsWith(".test")', fields);
  assert.equal(q.predicate(ev({})), true);
  assert.equal(q.predicate(ev({ comm: 'wget' })), false);
  assert.equal(q.predicate(ev({ name: 'example.com' })), false);

  const s = compileQuery('status >= 500', fields);
  assert.equal(s.predicate(ev({ status: 502 })), true);
  assert.equal(s.predicate(ev({ status: 200 })), false);
  assert.equal(s.predicate(ev({})), false, 'no status: false, not an exception');

  assert.equal(compileQuery('tls', fields).predicate(ev({})), false, 'tls is false unless the gadget says so');
  assert.equal(compileQuery('tls', fields, { tls: true }).predicate(ev({})), true);
  const perEvent = compileQuery('tls && proc.pid == 7', fields, { tls: (e) => e.name === 'dec' });
  assert.equal(perEvent.predicate(ev({ pid: 7, name: 'dec' })), true);
  assert.equal(perEvent.predicate(ev({ pid: 7, name: 'enc' })), false);
});

test('aliases: http.status names the status field', () => {
  const q = compileQuery('http.status >= 500 && http.latencyMs > 1.5', fields, { aliases: { 'http.status': 'status', 'http.latencyMs': 'latencyMs' } });
  assert.equal(q.predicate(ev({ status: 503, latencyMs: 2.25 })), true);
  assert.equal(q.predicate(ev({ status: 503, latencyMs: 1 })), false);
  assert.deepEqual([...q.reads].sort(), ['http.latencyMs', 'http.status']);
});

test('absent fields are absent, as in the JSON: has() asks, reading one is false', () => {
  const inPod = compileQuery('has(k8s.podName) && k8s.podName.startsWith("web-")', fields);
  assert.equal(inPod.predicate(ev({ pod: 'web-1' })), true);
  assert.equal(inPod.predicate(ev({ pod: 'db-1' })), false);
  assert.equal(inPod.predicate(ev({})), false);
  const notInPod = compileQuery('!has(k8s.podName)', fields);
  assert.equal(notInPod.predicate(ev({})), true);
  assert.equal(notInPod.predicate(ev({ pod: 'web-1' })), false);
  // a comparison with an absent field is false, and so is its negation (CEL error value)
  assert.equal(compileQuery('runtime.containerName != "web"', fields).predicate(ev({})), false);
  assert.equal(compileQuery('runtime.containerName != "web"', fields).predicate(ev({ container: 'db' })), true);
  // || short-circuits around the error, as CEL defines
  assert.equal(compileQuery('runtime.containerName == "web" || proc.comm == "curl"', fields).predicate(ev({})), true);
  assert.equal(compileQuery('runtime.containerName == "web"', fields).errors(), 0);
});

test('numbers: ints compare with ints and doubles; lists, in, ternaries, macros, regexes', () => {
  assert.equal(compileQuery('proc.pid in [1, 100, 7]', fields).predicate(ev({})), true);
  assert.equal(compileQuery('proc.pid > 99.5', fields).predicate(ev({})), true);
  assert.equal(compileQuery('latencyMs < 3', fields).predicate(ev({ latencyMs: 2.5 })), true);
  assert.equal(compileQuery('[1, 2, 100].exists(p, p == proc.pid)', fields).predicate(ev({})), true);
  assert.equal(compileQuery('name.matches("^[a-z]+\\\\.test$")', fields).predicate(ev({})), true);
  assert.equal(compileQuery('(proc.pid % 2 == 0 ? "even" : "odd") == "even"', fields).predicate(ev({})), true);
  assert.equal(compileQuery('ech', fields).predicate(ev({ ech: true })), true);
  assert.equal(compileQuery('!ech', fields).predicate(ev({ ech: true })), false);
  assert.equal(compileQuery('size(name) == 6', fields).predicate(ev({})), true);
  assert.equal(compileQuery('proc.mntns_id == 4026531840', fields).predicate(ev({ mntns: 4026531840 })), true);
});

test('a syntax error is a usage error with the column and a caret under it', () => {
  assert.throws(() => compileQuery('proc.comm == "curl" &&', fields), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.equal(e.exitCode, 2);
    const lines = e.message.split('\n');
    assert.match(lines[0] ?? '', /^--query: syntax error: .* at column 23$/);
    assert.equal(lines[1], '    proc.comm == "curl" &&');
    assert.equal(lines[2], `    ${' '.repeat(22)}^`);
    return true;
  });
  usageError('proc.comm == ', /syntax error.*column 14/);
  usageError('name.endsWith(".test"', /syntax error/);
  usageError('"unterminated', /syntax error.*column 1\b/);
});

test('unknown fields are usage errors that point at the name and list the fields', () => {
  assert.throws(() => compileQuery('proc.comm == "curl" && proc.cmd == "x"', fields), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /^--query: unknown field "proc\.cmd" at column 24\n/);
    assert.equal(e.message.split('\n')[2], `    ${' '.repeat(23)}^`);
    assert.match(e.hint ?? '', /known fields: .*proc\.comm/);
    return true;
  });
  usageError('nosuch == 1', /unknown field "nosuch" at column 1\b/);
  usageError('k8s.pod == "x"', /unknown field "k8s\.pod"/);
});

test('type errors are usage errors with the column', () => {
  assert.throws(() => compileQuery('name == "x" && proc.comm == 3', fields), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /^--query: no such overload: string == int at column 16\n/);
    return true;
  });
  usageError('status >= "500"', /no such overload: int >= string at column 1\b/);
  usageError('name.endsWith(5)', /endsWith/);
  usageError('proc.pid', /the expression is int, not true or false/);
  usageError('name', /the expression is string/);
  usageError('  ', /empty/);
});

test('line and column for an expression over several lines', () => {
  assert.throws(() => compileQuery('proc.comm == "curl" &&\n  name == 4', fields), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /at line 2, column 3\n    {3}name == 4\n {6}\^$/);
    return true;
  });
});

test('a field the expression does not read is never computed', () => {
  let reads = 0;
  const counted: CommonField<Ev>[] = [...fields, { name: 'expensive', column: 'X', width: 1, description: '', visible: false, get: () => { reads++; return 'x'; } }];
  const q = compileQuery('proc.comm == "curl"', counted);
  for (let i = 0; i < 10; i++) q.predicate(ev({}));
  assert.equal(reads, 0);
  const r = compileQuery('expensive == "x"', counted);
  assert.equal(r.predicate(ev({})), true);
  assert.equal(reads, 1);
});

test('pushdown: pids and namespaces the expression requires, never more', () => {
  const pd = (s: string) => compileQuery(s, fields).pushdown;
  assert.deepEqual(pd('proc.pid == 42'), { pids: [42] });
  assert.deepEqual(pd('42 == proc.pid && name.endsWith(".test")'), { pids: [42] });
  assert.deepEqual(pd('proc.pid in [3, 1, 2]'), { pids: [1, 2, 3] });
  assert.deepEqual(pd('proc.pid == 1 || proc.pid == 2'), { pids: [1, 2] });
  assert.deepEqual(pd('proc.pid in [1, 2] && proc.pid in [2, 3]'), { pids: [2] });
  assert.deepEqual(pd('proc.pid == 1 || name == "x"'), {}, 'one side unconstrained: nothing to push');
  assert.deepEqual(pd('!(proc.pid == 1)'), {});
  assert.deepEqual(pd('proc.pid != 1'), {});
  assert.deepEqual(pd('proc.pid > 1'), {});
  assert.deepEqual(pd('proc.mntns_id == 4026532000 && proc.netns_id in [4026531992]'), { mntns: [4026532000], netns: [4026531992] });
  assert.deepEqual(pd('(proc.pid == 1 && proc.netns_id == 9) || (proc.pid == 2 && proc.netns_id == 8)'), { pids: [1, 2], netns: [8, 9] });
  // sound: an event outside the pushed set never matches
  const exprs = ['proc.pid == 1 || proc.pid == 2', 'proc.pid in [2, 3] && name == "a.test"', '(proc.pid == 1 && ech) || (proc.pid == 3 && !ech)'];
  for (const s of exprs) {
    const q = compileQuery(s, fields);
    for (let pid = 0; pid < 6; pid++) {
      for (const ech of [true, false]) {
        if (q.predicate(ev({ pid, ech }))) assert.ok(q.pushdown.pids?.includes(pid), `${s}: pid ${pid} matched outside ${String(q.pushdown.pids)}`);
      }
    }
  }
});

test('every gadget field with a numeric or boolean value declares its type (or --query would type it as a string)', () => {
  const sample = {
    timestamp: 1, proc: { pid: 1, tid: 2, comm: 'c', uid: 0, gid: 0, mntns: 5, netns: 6 },
    runtime: { runtimeName: 'docker', containerId: 'i', containerName: 'n', containerImageName: 'img' },
    k8s: { namespace: 'ns', podName: 'p', containerName: 'c', podUid: 'u' },
  };
  const sni = { ...sample, src: '1.2.3.4:5', dst: '1.2.3.4:443', direction: 'out', tlsVersion: 'TLS 1.3', alpn: ['h2'], ech: false, hello: { extensions: [1, 2] }, name: 'a.test' };
  const data = { ...sample, kind: 'data', direction: 'write', len: 5, src: 'a', dst: 'b', local: 'a', remote: 'b', tupleSource: 'socket', source: 'openssl', function: 'SSL_write', library: '/lib', latencyNs: 10n, truncated: false, lostBytes: 0, conn: '0x1', data: new Uint8Array([104, 105]) };
  const http = { ...sample, kind: 'http', role: 'client', method: 'GET', status: 200, latencyMs: 1.5, durationMs: 2.5, client: 'a', server: 'b', host: 'h', reason: 'OK', requestBytes: 10, responseBytes: 20, source: 'openssl', conn: '0x1', path: '/', version: '2', bodyTruncated: false, grpc: { service: 's', method: 'm', status: 0, statusName: 'OK', message: 'ok', requestMessages: 1, responseMessages: 1, requestText: [], responseText: [] } };
  const sets: [string, readonly CommonField<never>[], unknown][] = [
    ['sni', sniFields() as unknown as CommonField<never>[], sni],
    ['tls', tlsDataFields({ json: true, hex: false }) as unknown as CommonField<never>[], data],
    ['tls --http', tlsHttpFields() as unknown as CommonField<never>[], http],
  ];
  for (const [gadget, fs, e] of sets) {
    for (const f of fs) {
      const v = (f.get as (x: unknown) => unknown)(e);
      const want = typeof v === 'number' || typeof v === 'bigint' ? ['int', 'double'] : typeof v === 'boolean' ? ['bool'] : ['string', undefined];
      assert.ok(want.includes(f.type), `${gadget}: ${f.name} holds ${typeof v} but is typed ${f.type ?? 'string'}`);
    }
    // and the query sees the value the JSON shows
    const obj = toJsonObject(fs, e as never);
    const q = compileQuery('proc.pid == 1 && proc.comm == "c" && runtime.containerName == "n"', fs);
    assert.equal(q.predicate(e as never), true, gadget);
    assert.equal((obj as { proc: { pid: number } }).proc.pid, 1);
  }
});
