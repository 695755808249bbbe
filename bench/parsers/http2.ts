// SPDX-License-Identifier: Apache-2.0
/**
 * Parser throughput, MB/s of plaintext, HTTP/2 next to HTTP/1.1, single thread, the same
 * exchanges (a browser-like GET with a 2-byte JSON answer; a POST of 8 KiB answered with
 * 8 KiB) fed both directions the way `trace tls --http` feeds them.
 *
 *   npx tsc -p . && node dist/bench/parsers/http2.js [seconds per case, default 1]
 *
 * HTTP/2 cases: frames of a connection encoded by this repository's HPACK encoder (dynamic
 * table on, Huffman on) and replayed through a fresh Http2Connection each round; gRPC adds
 * the length-prefixed message reader.
 */
import { Http2Connection } from '../../src/protocols/http2.js';
import { HttpPairer } from '../../src/protocols/http1-pairer.js';
import { GrpcMessageReader, isGrpc } from '../../src/protocols/grpc.js';
import type { HeaderField } from '../../src/protocols/hpack.js';
import { connection, type GenExchange } from '../../test/helpers/http2-frames.js';
import { opsPerSecond } from '../common.js';

const secondsPerCase = Number(process.argv[2] ?? 1);
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const EXCHANGES = 50;

const browserHeaders: HeaderField[] = [
  { name: 'user-agent', value: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36' },
  { name: 'accept', value: 'application/json, text/plain, */*' },
  { name: 'accept-language', value: 'en-US,en;q=0.9' },
  { name: 'accept-encoding', value: 'gzip, deflate, br' },
  { name: 'cookie', value: 'session=0123456789abcdef0123456789abcdef; theme=dark' },
];

function h2Exchanges(kind: 'get' | 'post' | 'grpc'): GenExchange[] {
  const body = kind === 'post' ? new Uint8Array(8192).fill(0x78) : kind === 'grpc' ? Uint8Array.from([0, 0, 0, 0, 7, 0x0a, 5, 0x77, 0x6f, 0x72, 0x6c, 0x64]) : new Uint8Array(0);
  return Array.from({ length: EXCHANGES }, (_, i) => ({
    streamId: 2 * i + 1,
    request: [
      { name: ':method', value: kind === 'get' ? 'GET' : 'POST' }, { name: ':scheme', value: 'https' }, { name: ':authority', value: 'shop.example.test' },
      { name: ':path', value: kind === 'grpc' ? '/shop.Items/Get' : `/api/v1/items?page=${i}&sort=name` },
      ...(kind === 'grpc' ? [{ name: 'content-type', value: 'application/grpc' }, { name: 'te', value: 'trailers' }] : browserHeaders),
    ],
    requestBody: body,
    response: [{ name: ':status', value: '200' }, { name: 'content-type', value: kind === 'grpc' ? 'application/grpc' : 'application/json' }],
    responseBody: kind === 'get' ? enc('{}') : body,
    trailers: kind === 'grpc' ? [{ name: 'grpc-status', value: '0' }] : undefined,
  }));
}

function h1Stream(kind: 'get' | 'post'): Array<{ dir: 'client' | 'server'; bytes: Uint8Array }> {
  const out: Array<{ dir: 'client' | 'server'; bytes: Uint8Array }> = [];
  const body = 'x'.repeat(8192);
  for (let i = 0; i < EXCHANGES; i++) {
    const head = [`${kind === 'get' ? 'GET' : 'POST'} /api/v1/items?page=${i}&sort=name HTTP/1.1`, 'Host: shop.example.test',
      ...browserHeaders.map((h) => `${h.name}: ${h.value}`), ...(kind === 'post' ? [`Content-Length: ${body.length}`] : []), '', ''].join('\r\n');
    out.push({ dir: 'client', bytes: enc(kind === 'post' ? head + body : head) });
    out.push({ dir: 'server', bytes: enc(kind === 'post' ? `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}` : 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}') });
  }
  return out;
}

interface Case {
  name: string;
  bytes: number;
  run: (n: number) => number;
}

function h2Case(name: string, kind: 'get' | 'post' | 'grpc'): Case {
  const log = connection(h2Exchanges(kind));
  const bytes = log.reduce((a, w) => a + w.bytes.length, 0);
  return {
    name,
    bytes,
    run: (n) => {
      let got = 0;
      for (let i = 0; i < n; i++) {
        const c = new Http2Connection(kind === 'grpc' ? { bodySink: (_side, h) => (isGrpc(h) ? new GrpcMessageReader(h) : undefined) } : {});
        for (const w of log) got += c.push(w.dir === 'client' ? 'outbound' : 'inbound', w.bytes, i).length;
      }
      if (got !== n * EXCHANGES) throw new Error(`${name}: ${got} of ${n * EXCHANGES}`);
      return got;
    },
  };
}

function h1Case(name: string, kind: 'get' | 'post'): Case {
  const log = h1Stream(kind);
  const bytes = log.reduce((a, w) => a + w.bytes.length, 0);
  return {
    name,
    bytes,
    run: (n) => {
      let got = 0;
      for (let i = 0; i < n; i++) {
        const p = new HttpPairer();
        for (const w of log) got += p.push('c', w.dir === 'client' ? 'outbound' : 'inbound', w.bytes, i).length;
      }
      if (got !== n * EXCHANGES) throw new Error(`${name}: ${got} of ${n * EXCHANGES}`);
      return got;
    },
  };
}

const cases = [
  h1Case('HTTP/1.1 GET + small JSON', 'get'),
  h2Case('HTTP/2   GET + small JSON', 'get'),
  h1Case('HTTP/1.1 POST 8 KiB + 8 KiB', 'post'),
  h2Case('HTTP/2   POST 8 KiB + 8 KiB', 'post'),
  h2Case('gRPC     unary, 12-byte messages', 'grpc'),
];
console.log(`${EXCHANGES} exchanges per connection; ${secondsPerCase} s per case`);
console.log('case'.padEnd(36), 'bytes/conn'.padStart(10), 'MB/s'.padStart(8), 'exchanges/s'.padStart(12));
for (const c of cases) {
  const perSecond = opsPerSecond((n) => c.run(Math.max(1, Math.round(n / 100))), secondsPerCase) / 100;
  console.log(c.name.padEnd(36), String(c.bytes).padStart(10), ((perSecond * c.bytes) / 1e6).toFixed(1).padStart(8), Math.round(perSecond * EXCHANGES).toString().padStart(12));
}
