// SPDX-License-Identifier: Apache-2.0
/**
 * bench/tls load: HTTP/1.1 over one keep-alive TLS connection on loopback, between two node
 * processes (node's OpenSSL: SSL_write/SSL_read), with requests and responses of exactly known
 * sizes so the share of plaintext bytes a tracer captured can be counted.
 *
 *   node dist/bench/tls/load.js server CERT KEY BODY_BYTES      prints "port N"
 *   node dist/bench/tls/load.js client PORT REQUESTS BODY_BYTES  connects, prints "ready",
 *        waits for a line on stdin, makes REQUESTS sequential requests, prints one JSON line
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { connect, createServer } from 'node:tls';

export function request(i: number): Buffer {
  return Buffer.from(`GET /item/${String(i % 1_000_000).padStart(6, '0')} HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: tlscope-bench\r\nAccept: */*\r\n\r\n`);
}

export function response(bodyBytes: number): Buffer {
  const body = Buffer.alloc(bodyBytes);
  for (let i = 0; i < bodyBytes; i++) body[i] = 0x61 + (i % 26); // printable, a..z
  return Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${bodyBytes}\r\n\r\n`), body]);
}

function server(cert: string, key: string, bodyBytes: number): void {
  const res = response(bodyBytes);
  const s = createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (sock) => {
    let pending = '';
    sock.on('data', (d: Buffer) => {
      pending += d.toString('latin1');
      for (let at = pending.indexOf('\r\n\r\n'); at >= 0; at = pending.indexOf('\r\n\r\n')) {
        pending = pending.slice(at + 4);
        sock.write(res);
      }
    });
    sock.on('error', () => {});
  });
  s.listen(0, '127.0.0.1', () => {
    const a = s.address();
    console.log(`port ${typeof a === 'object' && a !== null ? a.port : 0}`);
  });
}

function client(port: number, requests: number, bodyBytes: number): void {
  const want = response(bodyBytes).length;
  const sock = connect({ host: '127.0.0.1', port, servername: 'bench.test', rejectUnauthorized: false }, () => {
    console.log('ready');
    const rl = createInterface({ input: process.stdin });
    rl.once('line', () => {
      rl.close();
      let i = 0;
      let got = 0;
      let requestBytes = 0;
      const start = process.hrtime.bigint();
      const next = (): void => {
        const r = request(i);
        requestBytes += r.length;
        sock.write(r);
      };
      sock.on('data', (d: Buffer) => {
        got += d.length;
        if (got < want) return;
        if (got > want) throw new Error(`response of ${got} bytes, expected ${want}`);
        got = 0;
        i++;
        if (i < requests) {
          next();
          return;
        }
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        console.log(JSON.stringify({ requests, seconds, requestBytes, responseBytes: want * requests }));
        sock.end();
      });
      next();
    });
  });
  sock.on('error', (e) => {
    console.error(e);
    process.exit(1);
  });
}

const [mode, a, b, c] = process.argv.slice(2);
if (mode === 'server') server(a ?? '', b ?? '', Number(c));
else if (mode === 'client') client(Number(a), Number(b), Number(c));
