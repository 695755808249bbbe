// SPDX-License-Identifier: Apache-2.0
/**
 * HTTP/1.1 micro benchmark: messages parsed per second, single thread.
 *
 *   npx tsc -p . && node dist/bench/parsers/http1.js [seconds per case, default 1]
 *
 * Cases: a typical browser-like GET request (~450 B of head), the same fed in 64-byte pieces,
 * a chunked 8 KiB response, and request/response pairs through the HttpPairer.
 */
import { Http1Parser } from '../../src/protocols/http1.js';
import { HttpPairer } from '../../src/protocols/http1-pairer.js';
import { opsPerSecond } from '../common.js';

const secondsPerCase = Number(process.argv[2] ?? 1);
const encode = (s: string): Uint8Array => new TextEncoder().encode(s);

const request = encode(
  [
    'GET /api/v1/items?page=2&sort=name HTTP/1.1',
    'Host: shop.example.test',
    'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
    'Accept: application/json, text/plain, */*',
    'Accept-Language: en-US,en;q=0.9',
    'Accept-Encoding: gzip, deflate, br',
    'Cookie: session=0123456789abcdef0123456789abcdef; theme=dark',
    'Referer: https://shop.example.test/items',
    'Connection: keep-alive',
    '',
    '',
  ].join('\r\n'),
);
const chunkedResponse = (() => {
  const chunk = `${'x'.repeat(1024)}`;
  const body = Array.from({ length: 8 }, () => `400\r\n${chunk}\r\n`).join('');
  return encode(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${body}0\r\n\r\n`);
})();
const smallResponse = encode('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');

interface Case {
  name: string;
  /** Parses n messages (or exchanges); returns how many came out. */
  run: (n: number) => number;
}

function parserCase(name: string, mode: 'request' | 'response', bytes: Uint8Array, pieceSize: number): Case {
  const parser = new Http1Parser({ mode, maxBodyBytes: 0 });
  return {
    name,
    run: (n) => {
      let messages = 0;
      for (let i = 0; i < n; i++) {
        for (let at = 0; at < bytes.length; at += pieceSize) messages += parser.push(bytes.subarray(at, at + pieceSize), i).length;
      }
      if (messages !== n) throw new Error(`${name}: ${messages} of ${n} (${parser.state}: ${parser.reason})`);
      return messages;
    },
  };
}

function pairerCase(): Case {
  const pairer = new HttpPairer({ maxBodyBytes: 0 });
  return {
    name: 'pairer, request + small response',
    run: (n) => {
      let exchanges = 0;
      for (let i = 0; i < n; i++) {
        pairer.push('conn', 'outbound', request, i);
        exchanges += pairer.push('conn', 'inbound', smallResponse, i + 1).length;
      }
      if (exchanges !== n) throw new Error(`pairer: ${exchanges} of ${n}`);
      return exchanges;
    },
  };
}

/** Runs batches until the time is up; returns operations per second. */
function measure(c: Case): number {
  return opsPerSecond(c.run, secondsPerCase);
}

console.log(`node ${process.version}, ${secondsPerCase}s per case`);
for (const c of [
  parserCase(`request, ${request.length} B in one piece`, 'request', request, request.length),
  parserCase(`request, ${request.length} B in 64-byte pieces`, 'request', request, 64),
  parserCase(`chunked response, ${chunkedResponse.length} B`, 'response', chunkedResponse, chunkedResponse.length),
  pairerCase(),
]) {
  console.log(`${c.name}: ${Math.round(measure(c)).toLocaleString('en-US')} messages/s`);
}
