// SPDX-License-Identifier: Apache-2.0
/**
 * The --http stage (src/gadgets/tls/http.ts) on plaintext events as the TLS gadget yields them:
 * a session pointer reused for a later connection (node does this) starts a new connection;
 * responses that end at connection close or are cut off are reported, at close and at the
 * end of the trace; HTTP/2 chosen by the preface or by frames; gRPC fields; redaction.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { TlsHttp, type TlsHttpEvent } from '../../../src/gadgets/tls/http.js';
import type { TlsEvent } from '../../../src/gadgets/tls/gadget.js';
import { HpackEncoder } from '../../../src/protocols/hpack.js';
import { Redactor } from '../../../src/protocols/redact.js';
import { concat, data, headers, settings, CONNECTION_PREFACE } from '../../helpers/http2-frames.js';

let clock = 1_000_000_000n;
function ev(o: { dir: 'write' | 'read'; data: string | Uint8Array; conn?: string; local?: string; remote?: string; pid?: number; lostBytes?: number }): TlsEvent {
  clock += 1_000_000n;
  const bytes = typeof o.data === 'string' ? new TextEncoder().encode(o.data) : o.data;
  const local = o.local ?? '127.0.0.1:8443';
  const remote = o.remote ?? '127.0.0.1:50000';
  const write = o.dir === 'write';
  return {
    kind: 'data', timestamp: Number(clock / 1_000_000n), monotonicNs: clock, proc: { pid: o.pid ?? process.pid, tid: 1, comm: 'node' },
    source: 'openssl', function: write ? 'SSL_write' : 'SSL_read', library: undefined, direction: o.dir, len: bytes.length, data: bytes,
    truncated: false, lostBytes: o.lostBytes ?? 0, fault: false, chunks: 1, src: write ? local : remote, dst: write ? remote : local,
    local, remote, tupleSource: 'socket', latencyNs: 1000, conn: o.conn ?? '55d0c0de',
  };
}

describe('--http connections', () => {
  it('a session pointer reused by a later connection (node): both connections\' exchanges, each paired right', () => {
    const h = new TlsHttp();
    const out: TlsHttpEvent[] = [];
    // connection 1 (client port 50001): an HTTP/1.0 response without a length, ended by close
    out.push(...h.process([ev({ dir: 'read', data: 'GET /one HTTP/1.0\r\nHost: a.test\r\n\r\n', remote: '127.0.0.1:50001' })]));
    out.push(...h.process([ev({ dir: 'write', data: 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst body', remote: '127.0.0.1:50001' })]));
    // connection 2 reuses the SSL* (same conn), from another client port
    out.push(...h.process([ev({ dir: 'read', data: 'GET /two HTTP/1.1\r\nHost: a.test\r\n\r\n', remote: '127.0.0.1:50002' })]));
    out.push(...h.process([ev({ dir: 'write', data: 'HTTP/1.1 204 No Content\r\n\r\n', remote: '127.0.0.1:50002' })]));
    assert.deepEqual(out.map((e) => [e.path, e.status, e.end, e.client]), [
      ['/one', 200, 'complete', '127.0.0.1:50001'],
      ['/two', 204, 'complete', '127.0.0.1:50002'],
    ]);
    assert.equal(Buffer.from(out[0]!.responseBody).toString(), 'first body');
    assert.equal(h.stats.reusedSessions, 1);
  });

  it('an unanswered request on the old connection is never paired with the new connection\'s response', () => {
    const h = new TlsHttp();
    const out: TlsHttpEvent[] = [];
    out.push(...h.process([ev({ dir: 'read', data: 'GET /lost HTTP/1.1\r\n\r\n', remote: '127.0.0.1:50011' })]));
    out.push(...h.process([ev({ dir: 'read', data: 'GET /new HTTP/1.1\r\n\r\n', remote: '127.0.0.1:50012' })]));
    out.push(...h.process([ev({ dir: 'write', data: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', remote: '127.0.0.1:50012' })]));
    out.push(...h.flush());
    assert.deepEqual(out.map((e) => [e.path, e.status]), [['/new', 200]]);
  });

  it('a response cut off (or ended by close) is reported when the trace ends, marked as such', () => {
    const h = new TlsHttp();
    const out: TlsHttpEvent[] = [];
    out.push(...h.process([ev({ dir: 'write', data: 'GET /cut HTTP/1.1\r\nHost: b.test\r\n\r\n', conn: 'c1', local: '10.0.0.1:40000', remote: '10.0.0.2:443' })]));
    out.push(...h.process([ev({ dir: 'read', data: 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..', conn: 'c1', local: '10.0.0.1:40000', remote: '10.0.0.2:443' })]));
    out.push(...h.process([ev({ dir: 'write', data: 'GET /close HTTP/1.0\r\n\r\n', conn: 'c2', local: '10.0.0.1:40001', remote: '10.0.0.2:443' })]));
    out.push(...h.process([ev({ dir: 'read', data: 'HTTP/1.0 200 OK\r\n\r\nuntil close', conn: 'c2', local: '10.0.0.1:40001', remote: '10.0.0.2:443' })]));
    assert.equal(out.length, 0);
    out.push(...h.flush());
    const by = new Map(out.map((e) => [e.path, e]));
    assert.equal(by.get('/cut')?.end, 'cut-off');
    assert.equal(by.get('/cut')?.status, 200);
    assert.equal(by.get('/cut')?.role, 'client');
    assert.equal(by.get('/close')?.end, 'complete');
    assert.equal(Buffer.from(by.get('/close')!.responseBody).toString(), 'until close');
    assert.equal(h.flush().length, 0, 'reported once');
  });

  it('the connections of a process that is gone are ended by the sweep', () => {
    const h = new TlsHttp({ sweepMs: 0 });
    const dead = 0x7ffffff0; // no such pid
    h.process([ev({ dir: 'write', data: 'GET /x HTTP/1.0\r\n\r\n', pid: dead })]);
    h.process([ev({ dir: 'read', data: 'HTTP/1.0 200 OK\r\n\r\nbody', pid: dead })]);
    clock += 2_000_000_000n;
    const out = h.process([ev({ dir: 'write', data: 'x', pid: process.pid, conn: 'other' })]);
    assert.deepEqual(out.map((e) => [e.path, e.status, e.proc.pid]), [['/x', 200, dead]]);
  });
});

describe('--http protocol choice', () => {
  const req = [{ name: ':method', value: 'POST' }, { name: ':scheme', value: 'https' }, { name: ':authority', value: 'grpc.test' }, { name: ':path', value: '/pkg.Greeter/SayHello' }, { name: 'content-type', value: 'application/grpc' }, { name: 'grpc-encoding', value: 'gzip' }, { name: 'authorization', value: 'Bearer s3cret' }, { name: 'x-token-bin', value: 'AAEC' }];
  const msg = (payload: Uint8Array, gzip: boolean): Uint8Array => {
    const body = gzip ? new Uint8Array(gzipSync(payload)) : payload;
    const p = new Uint8Array(5 + body.length);
    p[0] = gzip ? 1 : 0;
    new DataView(p.buffer).setUint32(1, body.length);
    p.set(body, 5);
    return p;
  };
  // protobuf: field 1 = "world" (0a 05 ...)
  const hello = Uint8Array.from([0x0a, 0x05, ...new TextEncoder().encode('world')]);

  function grpcCall(h: TlsHttp, redact = false): TlsHttpEvent[] {
    void redact;
    const c = new HpackEncoder();
    const s = new HpackEncoder();
    const out: TlsHttpEvent[] = [];
    out.push(...h.process([ev({ dir: 'write', data: concat([CONNECTION_PREFACE, settings(), headers(c, 1, req)]), conn: 'g' })]));
    out.push(...h.process([ev({ dir: 'write', data: data(1, concat([msg(hello, true), msg(hello, false)]), true), conn: 'g' })]));
    out.push(...h.process([ev({ dir: 'read', data: concat([settings(), headers(s, 1, [{ name: ':status', value: '200' }, { name: 'content-type', value: 'application/grpc' }, { name: 'set-cookie', value: 'sid=abc' }]), data(1, msg(hello, false), false)]), conn: 'g' })]));
    out.push(...h.process([ev({ dir: 'read', data: headers(s, 1, [{ name: 'grpc-status', value: '5' }, { name: 'grpc-message', value: 'no%20such%20user' }], { endStream: true }), conn: 'g' })]));
    return out;
  }

  it('h2 by the preface: a gRPC call with service, method, status, messages (gzip too)', () => {
    const out = grpcCall(new TlsHttp());
    assert.equal(out.length, 1);
    const e = out[0]!;
    assert.equal(e.version, '2');
    assert.equal(e.method, 'POST');
    assert.equal(e.path, '/pkg.Greeter/SayHello');
    assert.equal(e.status, 200);
    assert.equal(e.role, 'client');
    assert.deepEqual([e.grpc?.service, e.grpc?.method, e.grpc?.status, e.grpc?.statusName, e.grpc?.message], ['pkg.Greeter', 'SayHello', 5, 'NOT_FOUND', 'no such user']);
    assert.equal(e.grpc?.requestMessages, 2);
    assert.equal(e.grpc?.responseMessages, 1);
    assert.deepEqual(e.grpc?.requestText, ['1: "world"', '1: "world"']);
    assert.equal(e.requestHeaders.find((x) => x.name === 'authorization')?.value, 'Bearer s3cret');
  });

  it('--redact masks credentials and -bin metadata in headers before the event leaves the stage', () => {
    const out = grpcCall(new TlsHttp({ redactor: new Redactor() }));
    const e = out[0]!;
    assert.equal(e.requestHeaders.find((x) => x.name === 'authorization')?.value, '[redacted]');
    assert.equal(e.requestHeaders.find((x) => x.name === 'x-token-bin')?.value, '[redacted]');
    assert.equal(e.responseHeaders.find((x) => x.name === 'set-cookie')?.value, '[redacted]');
    assert.ok(!JSON.stringify(e.requestHeaders).includes('s3cret'));
  });

  it('h2 mid-connection (no preface, a frame first) is read as h2 and says what it could not decode', () => {
    const h = new TlsHttp();
    const c = new HpackEncoder();
    const s = new HpackEncoder();
    headers(c, 1, req); // indexed before the trace
    headers(s, 1, [{ name: ':status', value: '200' }, { name: 'content-type', value: 'application/grpc' }]);
    const out: TlsHttpEvent[] = [];
    out.push(...h.process([ev({ dir: 'write', data: concat([headers(c, 3, req), data(3, msg(hello, false), true)]), conn: 'm' })]));
    out.push(...h.process([ev({ dir: 'read', data: headers(s, 3, [{ name: ':status', value: '200' }, { name: 'content-type', value: 'application/grpc' }, { name: 'grpc-status', value: '0' }], { endStream: true }), conn: 'm' })]));
    assert.equal(out.length, 1);
    const e = out[0]!;
    assert.equal(e.version, '2');
    assert.equal(e.method, 'POST'); // static table
    assert.equal(e.path, undefined); // was in the dynamic table
    assert.equal(e.status, 200);
    assert.match(e.note ?? '', /7 header fields not decoded: the trace began mid-connection/);
    assert.equal(e.grpc, undefined, 'without :path there is no gRPC method to name');
  });

  it('HTTP/1 stays HTTP/1', () => {
    const h = new TlsHttp();
    const out = [...h.process([ev({ dir: 'write', data: 'GET / HTTP/1.1\r\n\r\n', conn: 'h1' })]), ...h.process([ev({ dir: 'read', data: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', conn: 'h1' })])];
    assert.deepEqual(out.map((e) => [e.version, e.method, e.status]), [['1.1', 'GET', 200]]);
  });
});
