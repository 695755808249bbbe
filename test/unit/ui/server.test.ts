// SPDX-License-Identifier: Apache-2.0
// The UI server without a kernel: plaintext events as trace tls makes them go in through the
// hub; what the page reads comes out over real HTTP on loopback — the token rule (401), the
// stream (paired HTTP exchanges with their detail), the query (errors at their position),
// the download as JSON lines, and back-pressure (a slow view drops and counts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tlsDataFields, tlsHttpFields } from '../../../src/gadgets/tls/fields.js';
import type { TlsEvent } from '../../../src/gadgets/tls/gadget.js';
import { UiHub, View, type SourceMessage } from '../../../src/ui/hub.js';
import type { Entry, EntryDetail, StreamEvent } from '../../../src/ui/protocol.js';
import { compileViewQuery } from '../../../src/ui/query.js';
import { sniFields } from '../../../src/gadgets/sni/fields.js';
import { EntryRing } from '../../../src/ui/ring.js';
import { UiServer } from '../../../src/ui/server.js';
import { entry, exchange, tlsEvent } from './fixtures.js';

class Feed implements AsyncIterable<SourceMessage<TlsEvent>> {
  private items: SourceMessage<TlsEvent>[] = [];
  private wake: (() => void) | undefined;
  private done = false;
  push(m: SourceMessage<TlsEvent>): void {
    this.items.push(m);
    this.wake?.();
  }
  end(): void {
    this.done = true;
    this.wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<SourceMessage<TlsEvent>> {
    for (;;) {
      while (this.items.length > 0) yield this.items.shift() as SourceMessage<TlsEvent>;
      if (this.done) return;
      await new Promise<void>((r) => (this.wake = r));
    }
  }
}

async function withServer(fn: (s: UiServer, feed: Feed, hub: UiHub) => Promise<void>, capacity = 1000): Promise<void> {
  const hub = new UiHub({ ring: new EntryRing({ capacity, maxBytes: 1 << 24 }), node: 'node-a', flushMs: 20 });
  const feed = new Feed();
  const running = hub.run({ gadget: 'trace tls', fields: tlsDataFields({ json: true, hex: false }), httpFields: tlsHttpFields(), messages: feed });
  const server = await UiServer.start({ hub, host: '127.0.0.1', port: 0, statsMs: 50 });
  try {
    await fn(server, feed, hub);
  } finally {
    feed.end();
    await running;
    await server.close();
    hub.stop();
  }
}

/** Reads server-sent events until `until` says enough (or 20 s pass). */
async function readEvents(url: string, headers: Record<string, string>, until: (evs: StreamEvent[]) => boolean): Promise<StreamEvent[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 20_000);
  const res = await fetch(url, { headers, signal: ac.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
  const evs: StreamEvent[] = [];
  let buf = '';
  const dec = new TextDecoder();
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  try {
    for (;;) {
      const { value: chunk, done } = await reader.read();
      if (done) break;
      buf += dec.decode(chunk, { stream: true });
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const data = block.split('\n').find((l) => l.startsWith('data: '));
        if (data !== undefined) evs.push(JSON.parse(data.slice(6)) as StreamEvent);
      }
      if (until(evs)) break;
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
    await reader.cancel().catch(() => undefined);
  }
  return evs;
}

function entriesOf(evs: StreamEvent[]): Entry[] {
  return evs.flatMap((e) => (e.type === 'entries' ? e.entries : []));
}

test('ui server: 401 without the token, everywhere; the URL token sets a cookie that works after', async () => {
  await withServer(async (s) => {
    const base = `http://127.0.0.1:${s.port}`;
    for (const path of ['/', '/app.js', '/api/stream', '/api/entry/1', '/api/download.jsonl', '/api/query?q=x']) {
      const r = await fetch(base + path);
      assert.equal(r.status, 401, path);
      await r.body?.cancel();
    }
    assert.equal((await fetch(`${base}/?token=wrong${s.token.slice(5)}`)).status, 401);
    assert.equal((await fetch(`${base}/app.js`, { headers: { authorization: 'Bearer nope' } })).status, 401);
    assert.match(s.url, new RegExp(`^http://127\\.0\\.0\\.1:${s.port}/\\?token=[A-Za-z0-9_-]{32}$`));
    const page = await fetch(s.url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<script type="module" src="app.js">/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    assert.match(cookie, /^tlscope_ui=/);
    const js = await fetch(`${base}/app.js`, { headers: { cookie } });
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /javascript/);
    assert.ok((await js.text()).length > 1000, 'the bundled page script');
    assert.equal((await fetch(`${base}/app.css`, { headers: { authorization: `Bearer ${s.token}` } })).status, 200);
  });
});

test('ui server: TLS calls become HTTP exchanges (both ends) with headers, body and raw calls; other calls stay rows', async () => {
  await withServer(async (s, feed) => {
    const auth = { authorization: `Bearer ${s.token}` };
    const x = exchange('/api/items/7', 200, '{"id":7}', 40001);
    feed.push({ type: 'events', events: [...x.client, ...x.server] });
    feed.push({ type: 'events', events: [tlsEvent({ pid: 9, comm: 'redis', conn: 'r1', direction: 'write', text: '*1\r\n$4\r\nPING\r\n', local: '127.0.0.1:50000', remote: '127.0.0.1:6380' })] });
    feed.push({ type: 'stats', stats: { shown: 5, lost: 3, misses: { unattributed: 2 }, outOfScope: 1, filtered: 0, held: 0 } });
    const evs = await readEvents(`http://127.0.0.1:${s.port}/api/stream`, auth, (e) => entriesOf(e).length >= 3 && e.some((m) => m.type === 'stats' && m.stats.sessions['trace tls']?.lost === 3));
    const hello = evs[0];
    assert.equal(hello?.type, 'hello');
    if (hello?.type === 'hello') assert.deepEqual(hello.gadgets, ['trace tls']);
    const rows = entriesOf(evs);
    const http = rows.filter((r) => r.kind === 'http');
    assert.deepEqual(http.map((r) => [r.comm, r.role, r.method, r.path, r.status, r.tls]).sort(), [
      ['curl', 'client', 'GET', '/api/items/7', 200, 'openssl'],
      ['python3', 'server', 'GET', '/api/items/7', 200, 'openssl'],
    ]);
    assert.equal(http[0]?.node, 'node-a');
    assert.equal(http.find((r) => r.role === 'client')?.dst, '127.0.0.1:8443');
    assert.equal((http.find((r) => r.role === 'client')?.json['http'] as { method?: string } | undefined)?.method, 'GET', 'the -o json object of trace tls --http');
    const tls = rows.filter((r) => r.kind === 'tls');
    assert.equal(tls.length, 1, 'the non-HTTP connection is a row of its own');
    assert.equal(tls[0]?.comm, 'redis');
    assert.match(tls[0]?.summary ?? '', /^write 14 B {2}\*1\\r\\n\$4\\r\\nPING/);
    assert.equal(tls[0]?.json['data'], undefined, 'bulky data stays in the detail');

    const client = http.find((r) => r.role === 'client');
    const d = await fetch(`http://127.0.0.1:${s.port}/api/entry/${client?.seq}`, { headers: auth });
    assert.equal(d.status, 200);
    const { detail } = (await d.json()) as { detail: EntryDetail };
    assert.equal(detail.request?.startLine, 'GET /api/items/7 HTTP/1.1');
    assert.deepEqual(detail.request?.headers[0], ['Host', 'shop.test']);
    assert.equal(detail.response?.startLine, 'HTTP/1.1 200 X');
    assert.equal(Buffer.from(detail.response?.body?.base64 ?? '', 'base64').toString(), '{"id":7}');
    assert.deepEqual(detail.chunks.map((c) => [c.direction, c.len]), [['write', 66], ['read', 77]]);

    const stats = evs.filter((e) => e.type === 'stats').at(-1);
    assert.ok(stats?.type === 'stats');
    if (stats?.type === 'stats') {
      assert.deepEqual(stats.stats.sessions['trace tls'], { shown: 5, lost: 3, misses: { unattributed: 2 }, outOfScope: 1, filtered: 0, held: 0 });
      assert.deepEqual(stats.stats.notes, []);
      assert.equal(stats.stats.ring.size, 3);
    }
    assert.equal((await fetch(`http://127.0.0.1:${s.port}/api/entry/999`, { headers: auth })).status, 404);
  });
});

test('ui server: a CEL query (as --query) narrows the stream and the download; a bad one is a 400 with its position', async () => {
  await withServer(async (s, feed) => {
    const auth = { authorization: `Bearer ${s.token}` };
    const a = exchange('/ok', 200, '{}', 40010);
    const b = exchange('/broken', 503, '{"error":true}', 40011);
    feed.push({ type: 'events', events: [...a.client, ...a.server, ...b.client, ...b.server] });
    const base = `http://127.0.0.1:${s.port}`;
    const q = encodeURIComponent('proc.comm == "curl" && http.status >= 500');
    const evs = await readEvents(`${base}/api/stream?q=${q}`, auth, (e) => e.some((m) => m.type === 'stats' && m.stats.view.queryFiltered === 3));
    const rows = entriesOf(evs);
    assert.deepEqual(rows.map((r) => [r.comm, r.path, r.status]), [['curl', '/broken', 503]]);

    const dl = await fetch(`${base}/api/download.jsonl?q=${encodeURIComponent('http.status == 200 && tls')}`, { headers: auth });
    assert.equal(dl.status, 200);
    assert.match(dl.headers.get('content-disposition') ?? '', /attachment/);
    const lines = (await dl.text()).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines.map((l) => [(l['proc'] as { comm: string }).comm, (l['http'] as { path: string }).path, (l['http'] as { status: number }).status]).sort(), [['curl', '/ok', 200], ['python3', '/ok', 200]]);

    const bad = await fetch(`${base}/api/query?q=${encodeURIComponent('http.status >= 500 && proc.cmd == "x"')}`, { headers: auth });
    assert.equal(bad.status, 400);
    const err = (await bad.json()) as { error: string; position: number; hint?: string };
    assert.equal(err.position, 22, 'the unknown field starts at 22');
    assert.match(err.error, /unknown field "proc\.cmd"/);
    assert.match(err.hint ?? '', /proc\.comm/, 'the hint lists the known fields');
    const bad2 = await fetch(`${base}/api/stream?q=${encodeURIComponent('http.status >= "5"')}`, { headers: auth });
    assert.equal(bad2.status, 400, 'a type error');
    const syntax = await fetch(`${base}/api/stream?q=${encodeURIComponent('tls && (kind == "http"')}`, { headers: auth });
    assert.equal(syntax.status, 400, 'a syntax error');
    assert.equal(typeof ((await syntax.json()) as { position: unknown }).position, 'number');
    assert.equal((await fetch(`${base}/api/query?q=${encodeURIComponent('tls == true && kind == "http" && proc.comm.startsWith("cu")')}`, { headers: auth })).status, 200);
    const none = await readEvents(`${base}/api/stream?q=${encodeURIComponent('!tls')}`, auth, (e) => e.some((m) => m.type === 'stats' && m.stats.view.queryFiltered === 4));
    assert.equal(entriesOf(none).length, 0, 'every row here was decrypted');
  });
});

test('ui server: a new view gets what the ring kept after the given sequence number', async () => {
  await withServer(async (s, feed, hub) => {
    const auth = { authorization: `Bearer ${s.token}` };
    for (let i = 0; i < 5; i++) {
      const x = exchange(`/n/${i}`, 200, '{}', 41000 + i);
      feed.push({ type: 'events', events: x.client });
    }
    const deadline = Date.now() + 20_000;
    while (hub.ring.evicted < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const evs = await readEvents(`http://127.0.0.1:${s.port}/api/stream?after=3`, auth, (e) => entriesOf(e).length >= 2);
    assert.equal(hub.ring.size, 4);
    assert.deepEqual(entriesOf(evs).map((r) => r.seq), [4, 5]);
  }, 4);
});

test('view: a page that reads too slowly has its oldest unsent entries dropped and counted', () => {
  let accept = false;
  const sent: Entry[][] = [];
  const v = new View({ write: (es) => (sent.push(es), accept) }, { query: compileViewQuery('kind == "http"', [{ gadget: 'trace sni', fields: sniFields() }]), maxQueued: 10 });
  v.offer(entry({ seq: 1, kind: 'http' }));
  v.flush();
  assert.equal(sent.length, 1, 'first write goes out; the sink says it is full');
  for (let i = 2; i <= 30; i++) v.offer(entry({ seq: i, kind: i % 2 === 0 ? 'http' : 'tls' }));
  v.flush();
  assert.equal(sent.length, 1, 'nothing written while the sink is full');
  assert.equal(v.queued, 10);
  assert.equal(v.dropped, 5);
  assert.equal(v.queryFiltered, 14);
  accept = true;
  v.drained();
  assert.deepEqual(sent[1]?.map((e) => e.seq), [12, 14, 16, 18, 20, 22, 24, 26, 28, 30]);
  assert.equal(v.queued, 0);
});

const tshark = spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0;

test('ui server: the view as decrypted pcapng (as trace tls -w): the matching rows\' calls as TCP streams, one interface per process', async () => {
  await withServer(async (s, feed) => {
    const auth = { authorization: `Bearer ${s.token}` };
    const a = exchange('/pcap/one', 200, '{"n":1}', 40020);
    const b = exchange('/pcap/two', 404, '{"n":2}', 40021);
    feed.push({ type: 'events', events: [...a.client, ...a.server, ...b.client, ...b.server] });
    const base = `http://127.0.0.1:${s.port}`;
    await readEvents(`${base}/api/stream`, auth, (e) => entriesOf(e).length >= 4);
    const get = async (q: string): Promise<Buffer> => {
      const r = await fetch(`${base}/api/download.pcapng?q=${encodeURIComponent(q)}`, { headers: auth });
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-disposition') ?? '', /tlscope-view\.pcapng/);
      return Buffer.from(await r.arrayBuffer());
    };
    const curlOnly = await get('proc.comm == "curl" && http.status == 200');
    assert.equal(curlOnly.readUInt32LE(0), 0x0a0d0d0a, 'a pcapng section header');
    assert.ok(curlOnly.includes('GET /pcap/one HTTP/1.1'), 'the request, in clear');
    assert.ok(curlOnly.includes('{"n":1}'), 'the response body');
    assert.ok(!curlOnly.includes('/pcap/two'), 'rows outside the query are not in it');
    assert.ok(!curlOnly.includes('python3'), "the server's copy is not in it: only curl's rows matched");
    const none = await get('http.status == 999');
    assert.ok(!none.includes('HTTP/1.1'), 'no row, no packet');
    assert.ok(none.length < curlOnly.length);
    if (tshark) {
      const dir = mkdtempSync(join(tmpdir(), 'tlscope-ui-pcap-'));
      try {
        const f = join(dir, 'view.pcapng');
        writeFileSync(f, await get(''));
        const r = spawnSync('tshark', ['-r', f, '-Y', 'http.request', '-T', 'fields', '-e', 'http.request.uri'], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        // both ends' copies carry the same sequence numbers: tshark reads the second as a retransmission
        assert.deepEqual([...new Set(r.stdout.trim().split('\n'))].sort(), ['/pcap/one', '/pcap/two'], 'tshark reads each request');
        const ifs = spawnSync('tshark', ['-r', f, '-T', 'fields', '-e', 'frame.interface_description'], { encoding: 'utf8' });
        const owners = [...new Set(ifs.stdout.trim().split('\n'))].sort();
        assert.equal(owners.length, 3, `one interface per process: ${owners.join(', ')}`);
        assert.ok(owners.some((o) => /\(curl\)$/.test(o)) && owners.some((o) => /\(python3\)$/.test(o)), owners.join(', '));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});
