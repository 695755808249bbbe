// SPDX-License-Identifier: Apache-2.0
/**
 * HTTP/2: node's own HTTP/2 (nghttp2) over cleartext through a recording proxy, then fed to the
 * parser as a traced process would see it; generated connections cut anywhere; reset, GOAWAY,
 * push, padding, CONTINUATION; a trace begun mid-connection; any bytes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import fc from 'fast-check';
import { Http2Connection, type Http2Direction, type Http2Exchange } from '../../../src/protocols/http2.js';
import { HpackEncoder, type HeaderField } from '../../../src/protocols/hpack.js';
import { concat, connection, data, frame, F, headers, settings, T, u32be, CONNECTION_PREFACE, type GenExchange } from '../../helpers/http2-frames.js';

const RUNS = Number(process.env.FC_RUNS ?? 200);

interface Recorded { dir: 'client' | 'server'; bytes: Uint8Array; at: number }

/** A TCP proxy in front of `port` that records what each side wrote, in order. */
async function recordingProxy(port: number): Promise<{ port: number; log: Recorded[]; close(): Promise<void> }> {
  const log: Recorded[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((c) => {
    const up = net.connect(port, '127.0.0.1');
    sockets.add(c).add(up);
    c.on('data', (b) => { log.push({ dir: 'client', bytes: new Uint8Array(b), at: performance.now() }); up.write(b); });
    up.on('data', (b) => { log.push({ dir: 'server', bytes: new Uint8Array(b), at: performance.now() }); c.write(b); });
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
    c.on('error', () => {});
    up.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    log,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

/** Feeds a recording as the client (writes outbound) or the server would see it. */
function feed(log: readonly { dir: 'client' | 'server'; bytes: Uint8Array; at?: number }[], as: 'client' | 'server', c = new Http2Connection()): { conn: Http2Connection; out: Http2Exchange[] } {
  const out: Http2Exchange[] = [];
  for (const r of log) {
    const d: Http2Direction = r.dir === as ? 'outbound' : 'inbound';
    out.push(...c.push(d, r.bytes, r.at ?? 0));
  }
  return { conn: c, out };
}

const text = (b: Uint8Array): string => Buffer.from(b).toString('utf8');
const header = (h: readonly HeaderField[], n: string): string | undefined => h.find((x) => x.name === n)?.value;

describe('http2 with node (nghttp2) as client and server', () => {
  it('pairs GET, POST with a body, a large truncated body, a reset and the GOAWAY, seen from either side', async () => {
    const server = http2.createServer();
    server.on('stream', (stream, h) => {
      stream.on('error', () => {}); // the refused stream errors on this side too
      const path = h[':path'] ?? '';
      if (path === '/reset') {
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      let body = '';
      stream.on('data', (c: Buffer) => { body += c.toString(); });
      stream.on('end', () => {
        if (path === '/big') {
          stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' });
          stream.end(Buffer.alloc(100_000, 0x61));
        } else {
          stream.respond({ ':status': path === '/post' ? 201 : 200, 'x-echo': body, 'set-cookie': 'a=b' });
          stream.end(`hello ${path} ${body}`);
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const proxy = await recordingProxy((server.address() as net.AddressInfo).port);
    try {
      const client = http2.connect(`http://127.0.0.1:${proxy.port}`);
      const call = (path: string, method = 'GET', body?: string): Promise<number> => new Promise((resolve) => {
        const req = client.request({ ':method': method, ':path': path, 'authorization': 'Bearer t0ken' }, { endStream: body === undefined });
        req.on('response', (h) => { req.resume(); req.on('end', () => resolve(Number(h[':status']))); });
        req.on('error', () => resolve(-req.rstCode));
        if (body !== undefined) req.end(body);
      });
      assert.equal(await call('/a'), 200);
      assert.equal(await call('/post', 'POST', 'the body'), 201);
      assert.equal(await call('/big'), 200);
      assert.equal(await call('/reset'), -http2.constants.NGHTTP2_REFUSED_STREAM);
      await new Promise<void>((r) => client.close(() => r()));
    } finally {
      await proxy.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
    for (const as of ['client', 'server'] as const) {
      const { conn, out } = feed(proxy.log, as);
      out.push(...conn.end(0));
      assert.equal(conn.state, 'closed', `${as}: ${conn.reason}`);
      const by = new Map(out.map((x) => [x.path, x]));
      assert.deepEqual([...by.keys()].sort(), ['/a', '/big', '/post', '/reset'], as);
      const a = by.get('/a')!;
      assert.equal(a.method, 'GET');
      assert.equal(a.status, 200);
      assert.equal(a.authority, `127.0.0.1:${proxy.port}`);
      assert.equal(a.end, 'complete');
      assert.equal(a.requestDirection, as === 'client' ? 'outbound' : 'inbound');
      assert.equal(header(a.request.headers, 'authorization'), 'Bearer t0ken');
      assert.equal(text(a.response.body), 'hello /a ');
      const post = by.get('/post')!;
      assert.equal(post.status, 201);
      assert.equal(text(post.request.body), 'the body');
      assert.equal(header(post.response.headers, 'x-echo'), 'the body');
      const big = by.get('/big')!;
      assert.equal(big.response.bodyBytes, 100_000);
      assert.equal(big.response.body.length, 16 * 1024);
      assert.equal(big.response.bodyTruncated, true);
      const reset = by.get('/reset')!;
      assert.equal(reset.end, 'reset');
      assert.equal(reset.status, undefined);
      assert.deepEqual(reset.reset, { code: 'REFUSED_STREAM', by: 'server' });
      assert.ok(out.every((x) => x.request.undecoded.length === 0 && x.response.undecoded.length === 0 && !x.midConnection));
      assert.ok(out.every((x) => (x.latencyMs ?? 0) >= 0 && x.durationMs >= 0));
    }
  });

  it('reads the server push node sends', async () => {
    const server = http2.createServer();
    server.on('stream', (stream) => {
      stream.pushStream({ ':path': '/pushed.css' }, (err, push) => {
        if (err) throw err;
        push.respond({ ':status': 200 });
        push.end('body{}');
      });
      stream.respond({ ':status': 200 });
      stream.end('page');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const proxy = await recordingProxy((server.address() as net.AddressInfo).port);
    try {
      const client = http2.connect(`http://127.0.0.1:${proxy.port}`);
      const pushed = new Promise<void>((r) => client.on('stream', (s) => { s.resume(); s.on('end', r); }));
      const req = client.request({ ':path': '/page' });
      req.resume();
      await new Promise((r) => req.on('end', r));
      await pushed;
      await new Promise<void>((r) => client.close(() => r()));
    } finally {
      await proxy.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
    const { conn, out } = feed(proxy.log, 'client');
    out.push(...conn.end(0));
    const p = out.find((x) => x.path === '/pushed.css');
    assert.ok(p !== undefined && p.pushed && p.status === 200 && text(p.response.body) === 'body{}', JSON.stringify(out.map((x) => [x.path, x.status, x.end])));
    assert.ok(out.some((x) => x.path === '/page' && x.status === 200 && !x.pushed));
  });
});

function genExchanges(): fc.Arbitrary<GenExchange[]> {
  const hv = fc.stringMatching(/^[ -~]{0,30}$/);
  return fc.array(fc.record({
    path: fc.stringMatching(/^\/[a-z0-9/]{0,20}$/),
    method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
    status: fc.integer({ min: 200, max: 599 }),
    extra: fc.array(fc.tuple(fc.stringMatching(/^x-[a-z]{1,8}$/), hv), { maxLength: 4 }),
    reqBody: fc.uint8Array({ maxLength: 300 }),
    resBody: fc.uint8Array({ maxLength: 300 }),
    trailers: fc.boolean(),
  }), { maxLength: 8 }).map((xs) => xs.map((x, i) => ({
    streamId: 2 * i + 1,
    request: [{ name: ':method', value: x.method }, { name: ':scheme', value: 'https' }, { name: ':authority', value: 'svc.test' }, { name: ':path', value: `${x.path}#${2 * i + 1}` }, ...x.extra.map(([name, value]) => ({ name, value }))],
    requestBody: x.reqBody,
    response: [{ name: ':status', value: String(x.status) }, ...x.extra.map(([name, value]) => ({ name, value }))],
    responseBody: x.resBody,
    trailers: x.trailers ? [{ name: 'grpc-status', value: '0' }] : undefined,
  })));
}

/** Cuts each direction's bytes at the given points, keeping the order of the writes. */
function recut(log: ReturnType<typeof connection>, cuts: number[]): ReturnType<typeof connection> {
  const out: ReturnType<typeof connection> = [];
  let k = 0;
  for (const w of log) {
    let at = 0;
    while (at < w.bytes.length) {
      const n = Math.max(1, (cuts[k++ % Math.max(1, cuts.length)] ?? w.bytes.length));
      out.push({ dir: w.dir, bytes: w.bytes.subarray(at, at + n) });
      at += n;
    }
  }
  return out;
}

describe('http2 properties', () => {
  it('generated connections, cut anywhere, in HEADERS+CONTINUATION pieces: every exchange, exactly, on both sides', () => {
    fc.assert(fc.property(genExchanges(), fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 10 }), fc.integer({ min: 1, max: 3 }), fc.boolean(), (xs, cuts, pieces, huffman) => {
      const log = recut(connection(xs, { pieces, huffman }), cuts);
      for (const as of ['client', 'server'] as const) {
        const { conn, out } = feed(log, as);
        assert.equal(conn.state, 'h2', conn.reason);
        assert.equal(out.length, xs.length);
        for (const x of xs) {
          const got = out.find((e) => e.streamId === x.streamId);
          assert.ok(got !== undefined);
          assert.equal(got.path, x.request.find((h) => h.name === ':path')?.value);
          assert.equal(got.method, x.request[0]?.value);
          assert.equal(String(got.status), x.response[0]?.value);
          assert.deepEqual(got.request.body, x.requestBody);
          assert.deepEqual(got.response.body, x.responseBody);
          assert.deepEqual(got.response.trailers, x.trailers);
          assert.equal(got.end, 'complete');
        }
      }
    }), { numRuns: RUNS });
  });

  it('cut short, interleaved differently across directions, a lost write, duplicated, reordered, garbage: never throws, and never reports another stream\'s request', () => {
    const kinds = ['truncate', 'cross', 'lost', 'duplicate', 'reorder', 'garbage'] as const;
    fc.assert(fc.property(genExchanges(), fc.array(fc.nat(), { maxLength: 12 }), fc.constantFrom(...kinds), fc.uint8Array({ maxLength: 64 }), (xs, picks, how, junk) => {
      let log: Array<{ dir: 'client' | 'server'; bytes: Uint8Array; gap?: boolean }> = connection(xs);
      const pick = (i: number): number => (picks[i] ?? 0) % Math.max(1, log.length);
      const a = pick(0);
      if (how === 'truncate') log = log.slice(0, a);
      else if (how === 'cross') {
        // what the tracer can do: the client's next write reported before the server's write
        // that preceded it (never a response before its own request: a process reads the
        // request before it can answer it, and writes it before it can read the answer)
        for (const i of picks.map((p) => p % Math.max(1, log.length - 1))) {
          if (log[i]!.dir === 'server' && log[i + 1]!.dir === 'client') [log[i], log[i + 1]] = [log[i + 1]!, log[i]!];
        }
      } else if (how === 'lost') log = [...log.slice(0, a), { dir: log[a]?.dir ?? 'client', bytes: new Uint8Array(0), gap: true }, ...log.slice(a + 1)];
      else if (how === 'duplicate') log = [...log.slice(0, a + 1), ...log.slice(a)];
      else if (how === 'reorder') { const b = pick(1); [log[a], log[b]] = [log[b]!, log[a]!]; log = [...log]; }
      else log = [...log.slice(0, a), { dir: 'client', bytes: junk }, ...log.slice(a)];
      for (const as of ['client', 'server'] as const) {
        const conn = new Http2Connection();
        const out: Http2Exchange[] = [];
        for (const r of log) {
          if (r.gap === true) out.push(...conn.gap(0));
          else out.push(...conn.push(r.dir === as ? 'outbound' : 'inbound', r.bytes, 0));
        }
        out.push(...conn.end(1));
        // Paths carry their stream id: a report may be partial, but never another stream's.
        // Duplicated or reordered writes of one direction and inserted garbage are not what a
        // tracer produces; for them only "no exception" is asked (HPACK cannot tell).
        if (how === 'truncate' || how === 'cross' || how === 'lost') {
          for (const e of out) if (e.path !== undefined) assert.ok(e.path.endsWith(`#${e.streamId}`), `${how}: ${e.path} on ${e.streamId}`);
        }
        if (how === 'cross') assert.equal(out.filter((e) => e.end === 'complete').length, xs.length);
        if (how === 'truncate') assert.equal(conn.state, 'closed');
      }
    }), { numRuns: RUNS * 2 });
    fc.assert(fc.property(fc.array(fc.tuple(fc.boolean(), fc.uint8Array({ maxLength: 100 })), { maxLength: 20 }), fc.boolean(), (writes, preface) => {
      const c = new Http2Connection();
      if (preface) c.push('outbound', CONNECTION_PREFACE, 0);
      for (const [out, b] of writes) c.push(out ? 'outbound' : 'inbound', b, 0);
      c.end(0);
      if (c.state === 'not-h2') assert.ok((c.reason ?? '').length > 0);
    }), { numRuns: RUNS * 5 });
  });
});

describe('http2 frames', () => {
  const c = new HpackEncoder();
  const s = new HpackEncoder();
  const req = (id: number, path: string): HeaderField[] => [{ name: ':method', value: 'GET' }, { name: ':scheme', value: 'https' }, { name: ':path', value: path }, { name: ':authority', value: 'a.test' }];

  it('padding, priority, unknown frame types, PING, WINDOW_UPDATE, PRIORITY, and interim 1xx responses', () => {
    const conn = new Http2Connection();
    const out: Http2Exchange[] = [];
    out.push(...conn.push('outbound', concat([CONNECTION_PREFACE, settings(), headers(c, 1, req(1, '/p'), { padding: 7, priority: true }), data(1, new TextEncoder().encode('xyz'), true, 2, 3)]), 1));
    out.push(...conn.push('inbound', concat([settings(), frame(0xfa, 0, 0, [1, 2, 3]), frame(T.PING, 0, 0, new Uint8Array(8)), frame(T.WINDOW_UPDATE, 0, 1, u32be(100)), frame(T.PRIORITY, 0, 1, [0, 0, 0, 0, 1])]), 2));
    out.push(...conn.push('inbound', headers(s, 1, [{ name: ':status', value: '100' }]), 3));
    out.push(...conn.push('inbound', concat([headers(s, 1, [{ name: ':status', value: '204' }], { endStream: true })]), 5));
    assert.equal(conn.state, 'h2', conn.reason);
    assert.equal(out.length, 1);
    assert.equal(out[0]?.status, 204);
    assert.equal(out[0]?.response.informational.length, 1);
    assert.equal(text(out[0]!.request.body), 'xyz');
    assert.equal(out[0]?.latencyMs, 2);
    assert.equal(out[0]?.durationMs, 4);
  });

  it('a GOAWAY ends the streams above its last stream id with its code and debug text', () => {
    const cc = new HpackEncoder();
    const conn = new Http2Connection();
    conn.push('outbound', concat([CONNECTION_PREFACE, settings(), headers(cc, 1, req(1, '/one'), { endStream: true }), headers(cc, 3, req(3, '/two'), { endStream: true })]), 0);
    const out = [...conn.push('inbound', frame(T.GOAWAY, 0, 0, [...u32be(1), ...u32be(11), ...new TextEncoder().encode('calm down')]), 1)];
    assert.equal(out.length, 1);
    assert.equal(out[0]?.path, '/two');
    assert.equal(out[0]?.end, 'goaway');
    assert.deepEqual(out[0]?.goaway, { code: 'ENHANCE_YOUR_CALM', lastStreamId: 1, debug: 'calm down', by: 'server' });
    const rest = conn.end(2);
    assert.equal(rest.length, 1);
    assert.equal(rest[0]?.path, '/one');
    assert.equal(rest[0]?.end, 'connection-closed');
  });

  it('a trace begun mid-connection reads new streams, lists fields it cannot decode, and never reports a stream whose request it missed', () => {
    const cc = new HpackEncoder();
    const ss = new HpackEncoder();
    const early = headers(cc, 1, [...req(1, '/early'), { name: 'x-tenant', value: 'blue' }]);
    const earlyResp = headers(ss, 1, [{ name: ':status', value: '200' }, { name: 'x-served-by', value: 'node-7' }]);
    void early; void earlyResp; // sent before the trace began
    const conn = new Http2Connection();
    const out: Http2Exchange[] = [];
    out.push(...conn.push('outbound', headers(cc, 3, [...req(3, '/late'), { name: 'x-tenant', value: 'blue' }], { endStream: true }), 1));
    out.push(...conn.push('inbound', concat([data(1, new Uint8Array(5), true), headers(ss, 3, [{ name: ':status', value: '200' }, { name: 'x-served-by', value: 'node-7' }], { endStream: true })]), 2));
    assert.equal(conn.state, 'h2', conn.reason);
    assert.equal(out.length, 1);
    const x = out[0]!;
    assert.equal(x.path, '/late');
    assert.equal(x.midConnection, true);
    // ':authority' and 'x-tenant' were indexed in the dynamic table before the trace began
    assert.equal(x.request.undecoded.length, 2);
    assert.equal(x.response.undecoded.length, 1);
    assert.equal(conn.stats.exchanges, 1);
  });

  it('bytes that are neither a preface nor a frame say so', () => {
    const conn = new Http2Connection();
    conn.push('outbound', new TextEncoder().encode('GET / HTTP/1.1\r\n\r\n'), 0);
    assert.equal(conn.state, 'not-h2');
    assert.match(conn.reason ?? '', /neither/);
  });
});
