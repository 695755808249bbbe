// SPDX-License-Identifier: Apache-2.0
// trace tls in user space without a kernel: /proc/PID/maps parsing, decoding ring records,
// putting chunked calls back together (order, interleaving, losses), how data is shown
// (JSON encoding, preview, hex dump), --max-bytes sizes and HTTP pairing of events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mappedCodeFiles, parseProcMaps } from '../../../src/proc/maps.js';
import { CallAssembler, type TlsCall } from '../../../src/gadgets/tls/assembler.js';
import { decodeTlsChunk, TLS_EVENT_LAYOUT, type TlsChunk } from '../../../src/gadgets/tls/decode.js';
import { encodeData, hexDump, preview } from '../../../src/gadgets/tls/fields.js';
import type { TlsEvent } from '../../../src/gadgets/tls/gadget.js';
import { TlsHttp } from '../../../src/gadgets/tls/http.js';
import { parseSize } from '../../../src/gadgets/params.js';
import { encodeTuple, IPPROTO_TCP } from '../../../src/net/tuple.js';
import { PROC_LAYOUT } from '../../../src/gadgets/proc-record.js';

test('/proc/PID/maps: code files once each, by device and inode, deleted ones marked', () => {
  const text = [
    '55d4c9e00000-55d4c9e28000 r--p 00000000 08:01 131090                     /usr/bin/curl',
    '55d4c9e28000-55d4c9e6e000 r-xp 00028000 08:01 131090                     /usr/bin/curl',
    '7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0 ',
    '7f1c2a200000-7f1c2a25f000 r-xp 00022000 08:01 2359344                    /usr/lib/x86_64-linux-gnu/libssl.so.3',
    '7f1c2a25f000-7f1c2a27f000 r--p 00081000 08:01 2359344                    /usr/lib/x86_64-linux-gnu/libssl.so.3',
    '7f1c2b000000-7f1c2b100000 r-xp 00000000 00:2e 77                         /opt/app/libssl.so.3 (deleted)',
    '7ffd1e5f3000-7ffd1e5f5000 r-xp 00000000 00:00 0                          [vdso]',
    'garbage',
  ].join('\n');
  const maps = parseProcMaps(text);
  assert.equal(maps.length, 7);
  assert.equal(maps[0]?.start, 0x55d4c9e00000n);
  assert.equal(maps[2]?.path, undefined);
  const code = mappedCodeFiles(maps);
  assert.deepEqual(code, [
    { path: '/usr/bin/curl', key: '08:01:131090', deleted: false, range: '55d4c9e28000-55d4c9e6e000' },
    { path: '/usr/lib/x86_64-linux-gnu/libssl.so.3', key: '08:01:2359344', deleted: false, range: '7f1c2a200000-7f1c2a25f000' },
    { path: '/opt/app/libssl.so.3', key: '00:2e:77', deleted: true, range: '7f1c2b000000-7f1c2b100000' },
  ]);
});

function record(o: { tid?: number; start?: bigint; total: number; captured?: number; offset?: number; data: Uint8Array; flags?: number; family?: 4 | 6; tupleSource?: number }): DataView {
  const L = TLS_EVENT_LAYOUT;
  const b = Buffer.alloc(L.size + o.data.length);
  b.writeBigUInt64LE(1000n, L.ts_ns);
  b.writeBigUInt64LE(o.start ?? 900n, L.start_ns);
  b.writeBigUInt64LE(0x7f00aa00n, L.conn_id);
  b.writeUInt32LE(42, L.proc + PROC_LAYOUT.pid);
  b.writeUInt32LE(o.tid ?? 43, L.proc + PROC_LAYOUT.tid);
  b.write('curl', L.proc + PROC_LAYOUT.comm);
  const loop6 = [...new Array<number>(15).fill(0), 1]; // ::1
  encodeTuple(o.family === 6
    ? { family: 6, protocol: IPPROTO_TCP, saddr: loop6, daddr: loop6, sport: 50000, dport: 443 }
    : { family: 4, protocol: IPPROTO_TCP, saddr: [127, 0, 0, 1], daddr: [10, 0, 0, 2], sport: 50000, dport: 443 }).copy(b, L.tuple);
  b.writeUInt32LE(o.total, L.total_len);
  b.writeUInt32LE(o.captured ?? o.total, L.captured_len);
  b.writeUInt32LE(o.offset ?? 0, L.offset);
  b.writeUInt32LE(o.data.length, L.chunk_len);
  b[L.source] = 1;
  b[L.func] = 4;
  b[L.direction] = 1;
  b[L.tuple_source] = o.tupleSource ?? 1;
  b[L.flags] = o.flags ?? 0;
  b.writeUInt32LE(7, L.file_id);
  Buffer.from(o.data).copy(b, L.size);
  return new DataView(b.buffer, b.byteOffset, b.length);
}

function chunk(o: Parameters<typeof record>[0]): TlsChunk {
  const dv = record(o);
  return decodeTlsChunk(dv, 0, dv.byteLength);
}

test('a ring record decodes: process, tuple (v4, v6), function, direction, data copied out', () => {
  const c = chunk({ total: 5, data: Buffer.from('hello') });
  assert.equal(c.pid, 42);
  assert.equal(c.comm, 'curl');
  assert.deepEqual(c.endpoints, { family: 4, local: '127.0.0.1:50000', remote: '10.0.0.2:443' });
  assert.equal(c.tupleSource, 'socket');
  assert.equal(c.source, 'openssl');
  assert.equal(c.func, 'SSL_read_ex');
  assert.equal(c.direction, 'read');
  assert.equal(c.fileId, 7);
  assert.equal(Buffer.from(c.data).toString(), 'hello');
  assert.deepEqual(chunk({ total: 1, data: Buffer.from('x'), family: 6 }).endpoints, { family: 6, local: '[::1]:50000', remote: '[::1]:443' });
  assert.equal(chunk({ total: 1, data: Buffer.from('x'), tupleSource: 0 }).endpoints, undefined, 'no tuple found: none shown');
  const dv = record({ total: 5, data: Buffer.from('hello') });
  assert.throws(() => decodeTlsChunk(dv, 0, TLS_EVENT_LAYOUT.size + 2), /claims 5 bytes/);
});

test('assembler: one record is one call; several come back together in order', () => {
  const a = new CallAssembler();
  const out: TlsCall[] = [];
  a.push(chunk({ total: 3, data: Buffer.from('abc') }), out);
  assert.equal(out.length, 1);
  assert.equal(Buffer.from(out[0]!.data).toString(), 'abc');
  const big = Buffer.from('0123456789');
  a.push(chunk({ tid: 1, start: 1n, total: 10, offset: 0, data: big.subarray(0, 4) }), out);
  a.push(chunk({ tid: 2, start: 5n, total: 2, data: Buffer.from('zz') }), out); // another thread in between
  a.push(chunk({ tid: 1, start: 1n, total: 10, offset: 4, data: big.subarray(4, 8) }), out);
  assert.equal(out.length, 2);
  a.push(chunk({ tid: 1, start: 1n, total: 10, offset: 8, data: big.subarray(8) }), out);
  assert.equal(out.length, 3);
  assert.equal(Buffer.from(out[2]!.data).toString(), '0123456789');
  assert.equal(out[2]!.chunks, 3);
  assert.equal(out[2]!.lostBytes, 0);
  assert.equal(a.pendingCount, 0);
});

test('assembler: a lost chunk leaves a counted hole; the call is given out when its thread moves on, when old, or at flush', () => {
  let now = 0;
  const a = new CallAssembler({ now: () => now, maxAgeMs: 100 });
  const out: TlsCall[] = [];
  a.push(chunk({ tid: 1, start: 1n, total: 12, offset: 0, data: Buffer.from('aaaa') }), out);
  a.push(chunk({ tid: 1, start: 1n, total: 12, offset: 8, data: Buffer.from('cccc') }), out); // the middle chunk was lost
  assert.equal(out.length, 0);
  a.push(chunk({ tid: 1, start: 2n, total: 1, data: Buffer.from('n') }), out);
  assert.equal(out.length, 2);
  assert.equal(out[0]!.lostBytes, 4);
  assert.deepEqual([...out[0]!.data], [...Buffer.from('aaaa'), 0, 0, 0, 0, ...Buffer.from('cccc')]);
  assert.equal(a.incomplete, 1);
  a.push(chunk({ tid: 3, start: 1n, total: 8, offset: 0, data: Buffer.from('bbbb') }), out);
  now = 50;
  a.expire(out);
  assert.equal(out.length, 2);
  now = 150;
  a.expire(out);
  assert.equal(out.length, 3);
  a.push(chunk({ tid: 4, start: 1n, total: 8, offset: 0, data: Buffer.from('dddd') }), out);
  a.flush(out);
  assert.equal(out.length, 4);
  assert.equal(a.pendingCount, 0);
});

test('assembler: truncated calls say so', () => {
  const out: TlsCall[] = [];
  new CallAssembler().push(chunk({ total: 100, captured: 3, data: Buffer.from('abc'), flags: 1 }), out);
  assert.equal(out[0]!.truncated, true);
  assert.equal(out[0]!.head.totalLen, 100);
});

test('data as JSON carries it: UTF-8 text, else base64, or hex on request', () => {
  assert.deepEqual(encodeData(Buffer.from('GET / HTTP/1.1\r\n')), { text: 'GET / HTTP/1.1\r\n', encoding: 'utf8' });
  assert.deepEqual(encodeData(Buffer.from('größe')), { text: 'größe', encoding: 'utf8' });
  assert.deepEqual(encodeData(Buffer.from([0xff, 0x00, 0x80])), { text: '/wCA', encoding: 'base64' });
  assert.deepEqual(encodeData(Buffer.from([0xc3])), { text: 'ww==', encoding: 'base64' }, 'a cut multi-byte sequence is not valid UTF-8');
  assert.deepEqual(encodeData(Buffer.from('hi'), true), { text: '6869', encoding: 'hex' });
});

test('preview: one printable line', () => {
  assert.equal(preview(Buffer.from('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n')), 'GET / HTTP/1.1\\r\\nHost: a.test\\r\\n\\r\\n');
  assert.equal(preview(Buffer.from([0x16, 0x03, 0x01, 0x41])), '...A');
  assert.equal(preview(Buffer.from('x'.repeat(100)), 10), `${'x'.repeat(10)}…`);
  assert.equal(preview(Buffer.from('größe\t1')), 'größe\\t1');
});

test('hex dump: hexdump -C lines', () => {
  assert.equal(hexDump(Buffer.from('GET /columns HTTP/1.1\r\n'), ''), [
    '00000000  47 45 54 20 2f 63 6f 6c  75 6d 6e 73 20 48 54 54  |GET /columns HTT|',
    '00000010  50 2f 31 2e 31 0d 0a                              |P/1.1..|',
  ].join('\n'));
  assert.equal(hexDump(Buffer.alloc(0)), '');
});

test('--max-bytes sizes', () => {
  assert.equal(parseSize('max-bytes', '4096'), 4096);
  assert.equal(parseSize('max-bytes', '64k'), 65536);
  assert.equal(parseSize('max-bytes', '4m'), 4 << 20);
  assert.equal(parseSize('max-bytes', '2MiB'), 2 << 20);
  assert.equal(parseSize('max-bytes', undefined), undefined);
  assert.throws(() => parseSize('max-bytes', 'lots'), /wants a size/);
  assert.throws(() => parseSize('max-bytes', '8192m'), /too large/);
});

function ev(direction: 'read' | 'write', text: string, ms: number, conn = 'c1', pid = 10): TlsEvent {
  return {
    kind: 'data', monotonicNs: BigInt(ms * 1e6), timestamp: ms, proc: { pid, tid: pid, comm: 'app' }, source: 'openssl', function: 'SSL_write', library: undefined,
    direction, len: text.length, data: Buffer.from(text), truncated: false, lostBytes: 0, fault: false, chunks: 1,
    src: undefined, dst: undefined, local: '127.0.0.1:5000', remote: '127.0.0.1:443', tupleSource: 'socket', latencyNs: 1, conn,
  };
}

test('--http: requests and responses paired per connection, the client side and the server side', () => {
  const h = new TlsHttp();
  const res = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
  const out = [
    ...h.process([ev('write', 'GET /a?x=1 HTTP/1.1\r\nHost: a.test\r\n\r\n', 100)]),
    ...h.process([ev('write', 'GET /other HTTP/1.1\r\nHost: b.test\r\n\r\n', 101, 'c2')]),
    ...h.process([ev('read', res.slice(0, 10), 130), ev('read', res.slice(10), 131)]),
  ];
  assert.equal(out.length, 1);
  const x = out[0]!;
  assert.equal(x.role, 'client');
  assert.equal(x.method, 'GET');
  assert.equal(x.path, '/a?x=1');
  assert.equal(x.host, 'a.test');
  assert.equal(x.status, 200);
  assert.equal(x.latencyMs, 30);
  assert.equal(x.durationMs, 31);
  assert.equal(x.client, '127.0.0.1:5000');
  assert.equal(x.server, '127.0.0.1:443');
  // a server reads requests and writes responses
  const s = new TlsHttp();
  const got = s.process([ev('read', 'POST /submit HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc', 5, 's1', 20), ev('write', 'HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n', 9, 's1', 20)]);
  assert.deepEqual(got.map((e) => [e.role, e.method, e.path, e.status, e.client, e.server]), [['server', 'POST', '/submit', 201, '127.0.0.1:443', '127.0.0.1:5000']]);
  assert.equal(s.stats.exchanges, 1);
});
