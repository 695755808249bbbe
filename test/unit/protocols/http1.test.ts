// SPDX-License-Identifier: Apache-2.0
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Http1Parser, type Http1Message, type Http1Request, type Http1Response, type Http1ParserOptions } from '../../../src/protocols/http1.js';
import { HttpPairer } from '../../../src/protocols/http1-pairer.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const decode = (b: Uint8Array): string => new TextDecoder().decode(b);

function parseAll(mode: Http1ParserOptions['mode'], input: string | Uint8Array, options: Partial<Http1ParserOptions> = {}): { parser: Http1Parser; messages: Http1Message[] } {
  const parser = new Http1Parser({ mode, ...options });
  const messages = [...parser.push(typeof input === 'string' ? text(input) : input, 1)];
  return { parser, messages };
}

function oneRequest(input: string): Http1Request {
  const { messages, parser } = parseAll('request', input);
  assert.equal(messages.length, 1, `state ${parser.state}: ${parser.reason}`);
  assert.equal(messages[0]!.kind, 'request');
  return messages[0] as Http1Request;
}

function responses(messages: readonly Http1Message[]): Http1Response[] {
  return messages.filter((m): m is Http1Response => m.kind === 'response');
}

/** Feeds `input` one byte at a time and returns the messages. */
function byteByByte(parser: Http1Parser, input: Uint8Array): Http1Message[] {
  const out: Http1Message[] = [];
  for (let i = 0; i < input.length; i++) out.push(...parser.push(input.subarray(i, i + 1), i));
  return out;
}

const GET = 'GET /index.html?q=1 HTTP/1.1\r\nHost: www.example.test\r\nAccept: */*\r\n\r\n';

describe('Http1Parser: requests', () => {
  it('reads method, target, version, headers and sizes', () => {
    const request = oneRequest(GET);
    assert.equal(request.method, 'GET');
    assert.equal(request.target, '/index.html?q=1');
    assert.equal(request.version, '1.1');
    assert.deepEqual(request.headers, [
      { name: 'Host', value: 'www.example.test' },
      { name: 'Accept', value: '*/*' },
    ]);
    assert.equal(request.headerBytes, GET.length);
    assert.equal(request.totalBytes, GET.length);
    assert.equal(request.bodyBytes, 0);
    assert.equal(request.complete, true);
  });

  it('gives the same result one byte at a time', () => {
    const input = text(`POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello${GET}`);
    const whole = parseAll('request', input).messages;
    const parser = new Http1Parser({ mode: 'request' });
    const pieces = byteByByte(parser, input);
    assert.equal(pieces.length, 2);
    const strip = (m: Http1Message) => ({ ...m, startedAt: 0, headersAt: 0, completedAt: 0 });
    assert.deepEqual(pieces.map(strip), whole.map(strip));
    assert.equal(pieces[0]!.startedAt, 0);
    assert.equal(pieces[0]!.completedAt, input.indexOf(0x6f /* last 'o' of hello */, 30));
  });

  it('reads a Content-Length body', () => {
    const request = oneRequest('POST /upload HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world');
    assert.equal(decode(request.body), 'hello world');
    assert.equal(request.bodyBytes, 11);
    assert.equal(request.chunked, false);
  });

  it('decodes a chunked body with extensions and trailers, counting every byte', () => {
    const input = 'POST /c HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n';
    const request = oneRequest(input);
    assert.equal(decode(request.body), 'hello world');
    assert.equal(request.bodyBytes, 11);
    assert.equal(request.chunked, true);
    assert.equal(request.totalBytes, input.length);
    assert.ok(!request.headers.some((h) => h.name === 'X-Checksum'), 'trailers are not headers');
  });

  it('parses pipelined requests from one chunk', () => {
    const { messages } = parseAll('request', `${GET}${GET.replace('GET', 'HEAD')}DELETE /x HTTP/1.0\r\n\r\n`);
    assert.deepEqual(
      messages.map((m) => (m as Http1Request).method),
      ['GET', 'HEAD', 'DELETE'],
    );
    assert.equal(messages[2]!.version, '1.0');
  });

  it('waits for the rest of a partial message', () => {
    const parser = new Http1Parser({ mode: 'request' });
    assert.deepEqual(parser.push(text('GET / HTTP/1.1\r\nHost: a'), 1), []);
    assert.deepEqual(parser.push(text('\r\n'), 2), []);
    const [request] = parser.push(text('\r\n'), 3);
    assert.equal(request?.startedAt, 1);
    assert.equal(request?.completedAt, 3);
    assert.equal(parser.state, 'http');
  });

  it('tolerates bare LF line ends, empty lines before a request, and folded header lines', () => {
    const request = oneRequest('\r\n\nGET / HTTP/1.1\nHost: a\nX-Long: one\n  two\n\n');
    assert.deepEqual(request.headers, [
      { name: 'Host', value: 'a' },
      { name: 'X-Long', value: 'one two' },
    ]);
  });

  it('keeps only the first maxBodyBytes of a body and counts the rest', () => {
    const body = 'x'.repeat(100_000);
    const { messages } = parseAll('request', `PUT /big HTTP/1.1\r\nContent-Length: ${body.length}\r\n\r\n${body}`, { maxBodyBytes: 1000 });
    assert.equal(messages[0]!.body.length, 1000);
    assert.equal(messages[0]!.bodyBytes, 100_000);
    assert.equal(messages[0]!.bodyTruncated, true);
  });

  it('streams a 1 MiB body in chunks without keeping it', () => {
    const parser = new Http1Parser({ mode: 'request', maxBodyBytes: 16 });
    parser.push(text(`PUT /big HTTP/1.1\r\nContent-Length: ${1 << 20}\r\n\r\n`), 0);
    const chunk = new Uint8Array(64 * 1024).fill(0x61);
    const out: Http1Message[] = [];
    for (let i = 0; i < 16; i++) out.push(...parser.push(chunk, i));
    assert.equal(out.length, 1);
    assert.equal(out[0]!.bodyBytes, 1 << 20);
    assert.equal(out[0]!.body.length, 16);
  });

  it('reports a message cut short by the end of the stream as incomplete', () => {
    const parser = new Http1Parser({ mode: 'request' });
    parser.push(text('POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc'), 0);
    const [cut] = parser.end(5);
    assert.equal(cut?.complete, false);
    assert.equal(cut?.bodyBytes, 3);
    assert.equal(parser.state, 'closed');
  });
});

describe('Http1Parser: responses', () => {
  it('reads status, reason and a Content-Length body', () => {
    const { messages } = parseAll('response', 'HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnope');
    const [response] = responses(messages);
    assert.equal(response?.status, 404);
    assert.equal(response?.reason, 'Not Found');
    assert.equal(decode(response!.body), 'nop');
  });

  it('accepts a status line without a reason phrase', () => {
    const [response] = responses(parseAll('response', 'HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n').messages);
    assert.equal(response?.reason, '');
  });

  it('frames responses to HEAD, and 204 and 304, without a body', () => {
    const parser = new Http1Parser({ mode: 'response' });
    parser.expectResponseTo('HEAD');
    parser.expectResponseTo('GET');
    parser.expectResponseTo('GET');
    parser.expectResponseTo('GET');
    const input = 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
    const got = responses(parser.push(text(input), 0));
    assert.deepEqual(
      got.map((r) => [r.status, r.bodyBytes]),
      [
        [200, 0],
        [204, 0],
        [304, 0],
        [200, 2],
      ],
    );
  });

  it('reads 100 Continue as its own message without using up the expected method', () => {
    const parser = new Http1Parser({ mode: 'response' });
    parser.expectResponseTo('HEAD');
    const got = responses(parser.push(text('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n'), 0));
    assert.deepEqual(
      got.map((r) => [r.status, r.bodyBytes]),
      [
        [100, 0],
        [200, 0],
      ],
    );
  });

  it('ends a close-delimited body at the end of the stream', () => {
    const parser = new Http1Parser({ mode: 'response' });
    assert.deepEqual(parser.push(text('HTTP/1.0 200 OK\r\n\r\nall of '), 1), []);
    assert.deepEqual(parser.push(text('this'), 2), []);
    const [response] = parser.end(3);
    assert.equal(decode(response!.body), 'all of this');
    assert.equal(response?.complete, true);
    assert.equal(response?.completedAt, 3);
  });

  it('treats a non-chunked Transfer-Encoding response as close-delimited', () => {
    const parser = new Http1Parser({ mode: 'response' });
    parser.push(text('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nabcdef'), 0);
    assert.equal(parser.end(1)[0]?.bodyBytes, 6);
  });

  it('stops at 101 Switching Protocols and ignores what follows', () => {
    const parser = new Http1Parser({ mode: 'response' });
    const got = parser.push(text('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello'), 0);
    assert.equal(got.length, 1);
    assert.equal(parser.state, 'tunnel');
    assert.deepEqual(parser.push(text('more frames'), 1), []);
  });

  it('stops after a successful CONNECT', () => {
    const parser = new Http1Parser({ mode: 'response' });
    parser.expectResponseTo('CONNECT');
    parser.push(text('HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01'), 0);
    assert.equal(parser.state, 'tunnel');
  });

  it('detects the direction in auto mode', () => {
    const requests = new Http1Parser({ mode: 'auto' });
    requests.push(text(GET), 0);
    assert.equal(requests.kind, 'request');
    const replies = new Http1Parser({ mode: 'auto' });
    replies.push(text('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), 0);
    assert.equal(replies.kind, 'response');
  });
});

describe('Http1Parser: not HTTP', () => {
  const cases: Array<[string, Http1ParserOptions['mode'], string | Uint8Array, RegExp]> = [
    ['TLS bytes', 'auto', Uint8Array.of(0x16, 0x03, 0x01, 0x02, 0x00, 0x01), /not an HTTP request method/],
    ['binary garbage as a response', 'response', Uint8Array.of(0, 1, 2, 3), /does not start with "HTTP\/"/],
    ['the HTTP/2 preface', 'request', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', /HTTP\/2 connection preface/],
    ['a huge method', 'request', `${'A'.repeat(40)} / HTTP/1.1\r\n`, /no request method within 32 bytes/],
    ['HTTP/2.0 in a request line', 'request', 'GET / HTTP/2.0\r\n\r\n', /bad HTTP version/],
    ['a space before the colon', 'request', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n', /invalid header field name/],
    ['a NUL in a header value', 'request', 'GET / HTTP/1.1\r\nX: a\u0000b\r\n\r\n', /control byte 0x00/],
    ['conflicting Content-Length', 'request', 'POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n', /conflicting Content-Length/],
    ['a bad Content-Length', 'request', 'POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n', /bad Content-Length/],
    ['a request TE without chunked', 'request', 'POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n', /does not end in chunked/],
    ['a bad chunk size', 'request', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', /bad chunk size line/],
    ['chunk data without CRLF', 'request', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY', /chunk data not followed by CRLF/],
    ['a status code of two digits', 'response', 'HTTP/1.1 20 OK\r\n\r\n', /bad status code/],
  ];
  for (const [name, mode, input, reason] of cases) {
    it(`marks ${name} as not HTTP, without throwing`, () => {
      const { parser, messages } = parseAll(mode, input);
      assert.equal(parser.state, 'not-http');
      assert.match(parser.reason ?? '', reason);
      assert.deepEqual(messages, []);
      assert.deepEqual(parser.push(text(GET), 2), []);
    });
  }

  it('rejects a head over the limit while it is still arriving', () => {
    const parser = new Http1Parser({ mode: 'request', maxHeaderBytes: 1024 });
    parser.push(text('GET / HTTP/1.1\r\n'), 0);
    parser.push(text(`X-Big: ${'a'.repeat(2000)}`), 1);
    assert.equal(parser.state, 'not-http');
    assert.match(parser.reason ?? '', /larger than 1024 bytes/);
  });

  it('accepts a head right at the limit', () => {
    const head = `GET / HTTP/1.1\r\nX: ${'a'.repeat(100)}\r\n\r\n`;
    const { messages } = parseAll('request', head, { maxHeaderBytes: head.length });
    assert.equal(messages.length, 1);
    assert.equal(parseAll('request', head, { maxHeaderBytes: head.length - 1 }).parser.state, 'not-http');
  });
});

describe('HttpPairer', () => {
  it('pairs a client request with its response, with sizes and latency', () => {
    const pairer = new HttpPairer();
    assert.deepEqual(pairer.push('c', 'outbound', text(GET), 1000), []);
    const response = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello';
    const [exchange] = pairer.push('c', 'inbound', text(response), 1042);
    assert.equal(exchange?.method, 'GET');
    assert.equal(exchange?.path, '/index.html?q=1');
    assert.equal(exchange?.host, 'www.example.test');
    assert.equal(exchange?.status, 200);
    assert.equal(exchange?.requestBytes, GET.length);
    assert.equal(exchange?.responseBytes, response.length);
    assert.equal(exchange?.latencyMs, 42);
    assert.equal(exchange?.requestDirection, 'outbound');
    assert.equal(pairer.stats.exchanges, 1);
  });

  it('pairs from the server side too (requests inbound)', () => {
    const pairer = new HttpPairer<number>();
    pairer.push(7, 'inbound', text('POST /api HTTP/1.1\r\nHost: api.test\r\nContent-Length: 2\r\n\r\n{}'), 0);
    const [exchange] = pairer.push(7, 'outbound', text('HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n'), 3);
    assert.equal(exchange?.method, 'POST');
    assert.equal(exchange?.status, 201);
    assert.equal(exchange?.requestDirection, 'inbound');
  });

  it('pairs pipelined requests in order, framing the HEAD response without a body', () => {
    const pairer = new HttpPairer();
    pairer.push('c', 'outbound', text('GET /a HTTP/1.1\r\n\r\nHEAD /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n'), 0);
    const replies = 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nHTTP/1.1 404 NF\r\nContent-Length: 0\r\n\r\n';
    const exchanges = pairer.push('c', 'inbound', text(replies), 1);
    assert.deepEqual(
      exchanges.map((e) => [e.method, e.path, e.status]),
      [
        ['GET', '/a', 200],
        ['HEAD', '/b', 200],
        ['GET', '/c', 404],
      ],
    );
  });

  it('skips 100 Continue and pairs the final response', () => {
    const pairer = new HttpPairer();
    pairer.push('c', 'outbound', text('PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n'), 0);
    assert.deepEqual(pairer.push('c', 'inbound', text('HTTP/1.1 100 Continue\r\n\r\n'), 1), []);
    pairer.push('c', 'outbound', text('abc'), 2);
    const [exchange] = pairer.push('c', 'inbound', text('HTTP/1.1 204 No Content\r\n\r\n'), 3);
    assert.equal(exchange?.status, 204);
    assert.equal(exchange?.requestComplete, true);
    assert.equal(exchange?.request?.bodyBytes, 3);
  });

  it('reports a request answered before its body was all seen', () => {
    const pairer = new HttpPairer();
    pairer.push('c', 'outbound', text('POST /big HTTP/1.1\r\nContent-Length: 100000\r\n\r\nabc'), 0);
    const [exchange] = pairer.push('c', 'inbound', text('HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n'), 1);
    assert.equal(exchange?.status, 413);
    assert.equal(exchange?.requestComplete, false);
    assert.equal(exchange?.request, undefined);
  });

  it('takes host and path from an absolute-form target (proxy request)', () => {
    const pairer = new HttpPairer();
    pairer.push('c', 'outbound', text('GET http://proxied.test:8080?x=1 HTTP/1.1\r\n\r\n'), 0);
    const [exchange] = pairer.push('c', 'inbound', text('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), 1);
    assert.equal(exchange?.host, 'proxied.test:8080');
    assert.equal(exchange?.path, '/?x=1');
  });

  it('completes a close-delimited response when the connection ends', () => {
    const pairer = new HttpPairer();
    pairer.push('c', 'outbound', text('GET / HTTP/1.0\r\n\r\n'), 0);
    assert.deepEqual(pairer.push('c', 'inbound', text('HTTP/1.0 200 OK\r\n\r\nbody'), 1), []);
    const [exchange] = pairer.end('c', 2);
    assert.equal(exchange?.response.bodyBytes, 4);
    assert.equal(exchange?.durationMs, 2);
    assert.equal(pairer.connectionCount, 0);
  });

  it('stops both directions after an upgrade, without counting them as not HTTP', () => {
    const pairer = new HttpPairer();
    pairer.push('c', 'outbound', text('GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'), 0);
    const [exchange] = pairer.push('c', 'inbound', text('HTTP/1.1 101 Switching Protocols\r\n\r\n'), 1);
    assert.equal(exchange?.status, 101);
    pairer.push('c', 'outbound', Uint8Array.of(0x81, 0x85, 1, 2, 3, 4, 5), 2);
    pairer.push('c', 'inbound', Uint8Array.of(0x81, 0x02, 0x68, 0x69), 3);
    assert.equal(pairer.stats.notHttpStreams, 0);
  });

  it('counts responses with no request and streams that are not HTTP', () => {
    const pairer = new HttpPairer();
    assert.deepEqual(pairer.push('c', 'inbound', text('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), 0), []);
    assert.equal(pairer.stats.unmatchedResponses, 1);
    pairer.push('d', 'outbound', Uint8Array.of(0x16, 0x03, 0x01, 0, 5), 0);
    pairer.push('d', 'outbound', Uint8Array.of(1, 2, 3), 1);
    assert.equal(pairer.stats.notHttpStreams, 1);
  });

  it('bounds pending requests and connections', () => {
    const pairer = new HttpPairer({ maxPendingRequests: 2, maxConnections: 2 });
    pairer.push('a', 'outbound', text('GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n'), 0);
    assert.equal(pairer.stats.droppedRequests, 1);
    const [exchange] = pairer.push('a', 'inbound', text('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), 1);
    assert.equal(exchange?.path, '/2');
    pairer.push('b', 'outbound', text(GET), 0);
    pairer.push('c', 'outbound', text(GET), 0);
    assert.equal(pairer.connectionCount, 2);
    assert.equal(pairer.stats.evictedConnections, 1);
  });
});

describe('HttpPairer: CONNECT', () => {
  it('keeps parsing after a refused CONNECT, and stops after an accepted one', () => {
    const pairer = new HttpPairer();
    pairer.push('c', 'outbound', text('CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\n'), 0);
    const [refused] = pairer.push('c', 'inbound', text('HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n'), 1);
    assert.equal(refused?.status, 407);
    assert.equal(refused?.path, 'api.test:443');
    pairer.push('c', 'outbound', text('CONNECT api.test:443 HTTP/1.1\r\nProxy-Authorization: Basic eDp5\r\n\r\n'), 2);
    const [accepted] = pairer.push('c', 'inbound', text('HTTP/1.1 200 Connection established\r\n\r\n'), 3);
    assert.equal(accepted?.status, 200);
    assert.equal(accepted?.host, 'api.test:443');
    pairer.push('c', 'outbound', Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0x05), 4);
    assert.equal(pairer.stats.notHttpStreams, 0);
  });
});
