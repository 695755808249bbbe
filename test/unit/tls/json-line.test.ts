// SPDX-License-Identifier: Apache-2.0
// -o json's compiled line encoder against the generic one (JSON.stringify of toJsonObject, what
// every -o json line was before it): trace tls's fields, over events with every kind of data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileJsonLine, JsonWriter, toJsonObject } from '../../../src/output/json.js';
import { dataEncodingJson, dataJson, encodeData, tlsDataFields, tlsHttpFields, type TraceTlsEvent } from '../../../src/gadgets/tls/fields.js';
import type { TlsEvent } from '../../../src/gadgets/tls/gadget.js';
import type { TlsHttpEvent } from '../../../src/gadgets/tls/http.js';
import type { Field } from '../../../src/fields/field.js';

const enc = new TextEncoder();
const DATA: Uint8Array[] = [
  new Uint8Array(0),
  enc.encode('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n'),
  enc.encode('quote " backslash \\ slash / tab \t nul \0 bell \x07 del \x7f esc \x1b'),
  enc.encode('grüße, 日本語, emoji 😀, line sep \u2028 para sep \u2029, C1 \u0085'),
  enc.encode('\ufeffBOM first'),
  enc.encode('BOM inside \ufeff'),
  Uint8Array.from([0xff, 0xfe, 0x00, 0x41]), // not UTF-8
  Uint8Array.from([0xed, 0xa0, 0x80]), // an encoded surrogate: not UTF-8
  Uint8Array.from([0xc0, 0xaf]), // overlong
  Uint8Array.from([0xe6, 0x97]), // cut in the middle of a character
  Uint8Array.from({ length: 4163 }, (_, i) => (i < 70 ? 0x48 : 0x61 + (i % 26))),
  Uint8Array.from({ length: 1000 }, (_, i) => (i * 7919) & 0xff),
];

function dataEvent(i: number, data: Uint8Array): TlsEvent {
  const asBuffer = i % 2 === 1; // the gadget hands out Uint8Arrays; a Buffer must encode the same
  return {
    kind: 'data',
    monotonicNs: 123456789n * BigInt(i + 1),
    timestamp: 1_733_300_000_000 + i * 1.5,
    proc: { pid: 100 + i, tid: 200 + i, comm: i === 3 ? 'weird "comm"\n' : 'node', uid: 0, gid: 0, mntns: 4026531841, netns: 4026531840 },
    ...(i % 3 === 0 ? { runtime: { runtimeName: 'docker', containerId: 'abc', containerName: `c${i}` } } : {}),
    ...(i % 4 === 0 ? { k8s: { namespace: 'default', podName: 'p', containerName: 'c' } } : {}),
    source: i % 2 === 0 ? 'openssl' : 'go',
    function: i % 2 === 0 ? 'SSL_write' : 'crypto/tls.(*Conn).Read',
    library: i % 5 === 0 ? undefined : '/usr/bin/node',
    direction: i % 2 === 0 ? 'write' : 'read',
    len: data.length + (i % 3 === 0 ? 10 : 0),
    data: asBuffer ? Buffer.from(data) : data,
    truncated: i % 3 === 0,
    lostBytes: i === 5 ? 3 : 0,
    fault: false,
    chunks: 1,
    src: i % 6 === 0 ? undefined : '127.0.0.1:443',
    dst: i % 6 === 0 ? undefined : '[::1]:51234',
    local: '127.0.0.1:443',
    remote: i % 7 === 0 ? undefined : '[::1]:51234',
    tupleSource: i % 6 === 0 ? undefined : 'socket',
    latencyNs: i === 2 ? Number.NaN : 1500 + i,
    conn: (0xdeadbeefn + BigInt(i)).toString(16),
  };
}

function httpEvent(i: number): TlsHttpEvent {
  return {
    kind: 'http',
    timestamp: 1_733_300_000_000 + i,
    proc: { pid: 7, tid: 8, comm: 'curl' },
    role: i % 2 === 0 ? 'client' : 'server',
    version: i % 2 === 0 ? '1.1' : '2',
    method: 'POST',
    path: '/ä?q="x"',
    host: 'a.test',
    ...(i % 2 === 0 ? { status: 200, reason: 'OK' } : {}),
    latencyMs: 1.25 * i,
    durationMs: 3.5,
    client: '127.0.0.1:5000',
    server: '127.0.0.1:443',
    requestHeaders: i % 2 === 0 ? [{ name: 'content-type', value: 'application/json' }, { name: 'x-q', value: 'a"b\\c' }] : [],
    responseHeaders: [{ name: ':status', value: '200' }],
    requestBody: DATA[i % DATA.length] as Uint8Array,
    responseBody: DATA[(i + 3) % DATA.length] as Uint8Array,
    bodyTruncated: i % 3 === 0,
    requestBytes: 100,
    responseBytes: 200,
    source: 'openssl',
    conn: 'ab',
    end: 'complete',
    ...(i % 2 === 1 ? { grpc: { service: 'pkg.Svc', method: 'Do', status: 0, statusName: 'OK', message: '', requestMessages: 1, responseMessages: 1, requestText: ['1: "x"'], responseText: [] } } : {}),
  } as unknown as TlsHttpEvent;
}

const generic = <E>(fields: readonly Field<E>[], e: E): string => JSON.stringify(toJsonObject(fields, e));

function sameLines<E>(fields: readonly Field<E>[], events: readonly E[]): void {
  const line = compileJsonLine(fields);
  assert.ok(line !== undefined, 'these fields compile');
  for (const e of events) {
    const want = generic(fields, e);
    assert.equal(line(e), want);
    JSON.parse(line(e));
  }
}

test('the compiled JSON line of trace tls equals the generic one, for every kind of data', () => {
  const events = DATA.flatMap((d, i) => [dataEvent(i, d), dataEvent(i + DATA.length, d)]);
  for (const hex of [false, true]) {
    const fields = tlsDataFields({ json: true, hex });
    sameLines(fields, events);
    // the bench's selection and a reordered one that splits proc.*
    const pick = (names: string[]): Field<TraceTlsEvent>[] => names.map((n) => fields.find((f) => f.name === n) as Field<TraceTlsEvent>);
    sameLines(pick(['proc.pid', 'len', 'lostBytes', 'data', 'dataEncoding']), events);
    sameLines(pick(['data', 'proc.comm', 'len', 'proc.pid', 'k8s.podName', 'runtime.containerName', 'timestamp']), events);
  }
  // an http event seen through the data fields has none of them but the common ones
  sameLines(tlsDataFields({ json: true, hex: false }), [httpEvent(0), httpEvent(1)]);
});

test('the compiled JSON line of trace tls --http equals the generic one', () => {
  sameLines(tlsHttpFields(), Array.from({ length: 12 }, (_, i) => httpEvent(i)));
});

test('data as JSON text is what encodeData gives, stringified', () => {
  for (const d of DATA) {
    for (const hex of [false, true]) {
      const e = encodeData(d, hex);
      assert.equal(dataJson(d, hex), JSON.stringify(e.text));
      assert.equal(dataEncodingJson(d, hex), JSON.stringify(e.encoding));
    }
  }
});

test('names the compiler cannot keep in order fall back to the generic writer, with the same output', () => {
  type Ev = { a: number; b: bigint };
  const f = (name: string, get: (e: Ev) => number | bigint | string | undefined): Field<Ev> => ({ name, column: name, width: 4, description: '', visible: true, get });
  const prefix = [f('x', (e) => e.a), f('x.y', (e) => e.a)];
  const repeated = [f('x', (e) => e.a), f('x', (e) => e.a + 1)];
  const numeric = [f('z', (e) => e.a), f('x.1', (e) => e.a)];
  for (const fs of [prefix, repeated, numeric]) assert.equal(compileJsonLine(fs), undefined);
  const evs: Ev[] = [{ a: 1, b: 2n }, { a: -0, b: 2n ** 60n }, { a: Infinity, b: -(2n ** 60n) }];
  const ok = [f('n.a', (e) => e.a), f('b', (e) => e.b), f('n.s', (e) => (e.a === 1 ? undefined : `s${e.a}`)), f('m.u', () => undefined)];
  sameLines(ok, evs);
  for (const fs of [prefix, repeated, numeric, ok]) {
    let out = '';
    new JsonWriter(fs, { write: (s: string) => (out += s) }).write(evs);
    assert.equal(out, evs.map((e) => `${generic(fs, e)}\n`).join(''));
  }
});
