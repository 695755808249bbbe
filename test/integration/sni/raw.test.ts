// SPDX-License-Identifier: Apache-2.0
// Raw ClientHello bytes (test/helpers/clienthello.ts) over plain TCP to a local listener while
// the real CLI traces. Malformed, truncated and oversized hellos (every corruption kind the
// builder knows, at every length field, plus seeded garbage behind a valid-looking record
// header) yield no event — so never a wrong or garbled name — a 255-byte name is reported
// whole, and the tracer keeps going: a valid hello sent afterwards is reported and the run ends
// cleanly. A hello whose first segment is only the record header is reported, and so is a new
// connection that reuses a finished connection's ports (loopback reuses them after a second).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildClientHello, buildCorruptedClientHello, fieldExists, LENGTH_FIELDS, seededRandom, splitIntoSegments, type ClientHelloSpec, type Corruption } from '../../helpers/clienthello.js';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.sni);
import { connect } from 'node:net';
import { freshHello, hostTracerOnSink, portOf, sendChunks, sleep, testName } from './helpers.js';


const run = hostTracerOnSink(kernelSkip);
/** local ports of connections that carried a corrupted hello */
const corruptedPorts = new Set<number>();

const BASE: ClientHelloSpec = { serverName: 'corrupt.sni.test', alpn: ['h2', 'http/1.1'], grease: true, seed: 5 };

/** Waits for a marker hello. Every earlier sendChunks resolved once the sink had read all its bytes, which were then past the filter. */
function marker(): Promise<void> {
  return run.tracer.marker((name) => sendChunks(run.sink.host, run.sink.port, [freshHello(name)]));
}

/** Events from the connections on `ports`, leaving out the markers (their ports are new, but be sure). */
function eventsFrom(ports: (port: number) => boolean): typeof run.tracer.events {
  return run.tracer.events.filter((e) => ports(portOf(e.src)) && !run.tracer.markers.has(e.name ?? ''));
}

/** Sends `bytes` (in `pieces` writes) on a new connection, remembers its local port. */
async function sendCorrupted(bytes: Uint8Array, pieces = 1): Promise<void> {
  const size = Math.ceil(bytes.length / pieces);
  const chunks = Array.from({ length: pieces }, (_, i) => bytes.slice(i * size, (i + 1) * size)).filter((c) => c.length > 0);
  corruptedPorts.add(await sendChunks(run.sink.host, run.sink.port, chunks, { pauseMs: pieces > 1 ? 5 : 0, lingerMs: 0 }));
}

function corruptions(spec: ClientHelloSpec): Corruption[] {
  const whole = buildClientHello(spec).bytes.length;
  const list: Corruption[] = [];
  for (const at of [1, 3, 5, 6, 9, 40, 100, Math.floor(whole / 2), whole - 1]) list.push({ kind: 'truncate', at });
  for (const field of LENGTH_FIELDS) {
    if (!fieldExists(spec, field)) continue;
    // each delta changes u8, u16 and u24 fields alike (0x100 would be a no-op on a u8)
    for (const delta of [1, -1, 7, 0x85, -0x80]) list.push({ kind: 'length', field, delta });
  }
  for (const length of [256, 300, 1000, 65000]) list.push({ kind: 'oversized-name', length });
  for (const [position, byte] of [[0, 0x00], [3, 0x0a], [5, 0x20], [7, 0x7f], [9, 0xc3], [2, 0xff]] as const) list.push({ kind: 'non-printable-name', position, byte });
  for (const type of [0x00, 0x14, 0x15, 0x17, 0x18, 0x19, 0xff]) list.push({ kind: 'record-type', type });
  return list;
}

test('every corruption of a ClientHello, in one write and in several: no event at all', { skip: kernelSkip }, async () => {
  const specs: ClientHelloSpec[] = [BASE, { ...BASE, postQuantum: true, paddedLength: 2500, seed: 6 }, { ...BASE, records: 3, seed: 7 }];
  let sent = 0;
  for (const spec of specs) {
    for (const c of corruptions(spec)) {
      let bytes: Uint8Array;
      try {
        bytes = buildCorruptedClientHello(spec, c);
      } catch (e) {
        // A length shift that overflows the field's own encoding; not a hello to send.
        if (/cannot pad/.test(String(e))) continue;
        throw e;
      }
      await sendCorrupted(bytes, sent % 3 === 0 ? 3 : 1);
      sent++;
    }
  }
  assert.ok(sent > 250, `${sent} corrupted hellos sent`);
  await marker();
  const fromCorrupted = eventsFrom((p) => corruptedPorts.has(p));
  assert.deepEqual(fromCorrupted, [], 'no event from a corrupted hello');
});

test('garbage behind a valid-looking record and handshake header: no event', { skip: kernelSkip }, async () => {
  const random = seededRandom(2024);
  const ports: number[] = [];
  for (let i = 0; i < 60; i++) {
    const len = 10 + Math.floor(random() * 3000);
    const bytes = new Uint8Array(len);
    for (let j = 0; j < len; j++) bytes[j] = Math.floor(random() * 256);
    // 16 03 01 <len> 01 <hs len> 03 03 …: passes the kernel's first-segment test
    bytes.set([0x16, 0x03, 0x01, ((len - 5) >> 8) & 0xff, (len - 5) & 0xff, 0x01, 0x00, ((len - 9) >> 8) & 0xff, (len - 9) & 0xff, 0x03, 0x03]);
    const before = corruptedPorts.size;
    await sendCorrupted(bytes, 1 + (i % 4));
    ports.push(...[...corruptedPorts].slice(before));
  }
  await marker();
  const evs = eventsFrom((p) => ports.includes(p));
  for (const e of evs) assert.match(e.name ?? '', /^[\x21-\x7e]{1,255}$/, 'a name that is reported is printable ASCII');
  assert.deepEqual(evs, [], 'random bytes never make a ClientHello');
});

test('a 255-byte name is reported whole; a valid hello after all the garbage is reported', { skip: kernelSkip }, async () => {
  const suffix = `.${process.pid}.long.sni.test`;
  const long = `${'l'.repeat(255 - suffix.length)}${suffix}`;
  assert.equal(long.length, 255);
  const bytes = buildClientHello({ serverName: long, alpn: ['http/1.1'], postQuantum: true, seed: 8 }).bytes;
  // in segments the way the kernel would cut them, through a real socket
  const segments = splitIntoSegments(bytes, { mss: 600 }).map((s) => s.payload);
  const port = await sendChunks(run.sink.host, run.sink.port, segments, { pauseMs: 5 });
  const [e] = await run.tracer.waitForName(long);
  assert.equal(e!.proc.pid, process.pid);
  assert.equal(portOf(e!.src), port);
  assert.equal(e!.alpn, 'http/1.1');

  const name = testName('after-garbage');
  const okPort = await sendChunks(run.sink.host, run.sink.port, [buildClientHello({ serverName: name, alpn: ['x-after'], seed: 9 }).bytes]);
  const [ok] = await run.tracer.waitForName(name);
  assert.equal(portOf(ok!.src), okPort);
  assert.equal(ok!.alpn, 'x-after');
  assert.equal(ok!.tlsVersion, 'TLS1.3');
  assert.equal(run.tracer.child.exitCode, null, 'the tracer is still running');
});

test('an oversized hello (more than the 16 KiB a flow may carry) never gives a wrong name nor stops the tracer', { skip: kernelSkip }, async () => {
  const name = testName('huge');
  const bytes = buildClientHello({ serverName: name, paddedLength: 20_000, seed: 10 }).bytes;
  const port = await sendChunks(run.sink.host, run.sink.port, [bytes]);
  const okName = testName('after-huge');
  await sendChunks(run.sink.host, run.sink.port, [buildClientHello({ serverName: okName, seed: 11 }).bytes]);
  // okName is the marker: sent once the sink had read all of the huge one
  await run.tracer.waitForName(okName);
  // The kernel forwards at most 16 KiB of a flow's hello, so this one cannot complete (a
  // documented limit); whatever happens, no other name may come out of that connection.
  for (const e of run.tracer.events.filter((ev) => portOf(ev.src) === port)) assert.equal(e.name, name);
});

test('a client that writes the record header (or less) on its own is reported', { skip: kernelSkip }, async () => {
  for (const cut of [3, 5, 6, 9]) {
    const name = testName(`header${cut}`);
    const bytes = buildClientHello({ serverName: name, postQuantum: cut === 5, seed: 30 + cut }).bytes;
    const port = await sendChunks(run.sink.host, run.sink.port, [bytes.slice(0, cut), bytes.slice(cut)], { pauseMs: 30 });
    const [e] = await run.tracer.waitForName(name);
    assert.equal(portOf(e!.src), port, `first write of ${cut} bytes`);
  }
});

/** Sends `bytes` from a fixed local port; resolves once the connection closed. */
function sendFrom(localPort: number, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: run.sink.host, port: run.sink.port, localAddress: '127.0.0.1', localPort, noDelay: true }, () => {
      s.write(bytes, () => setTimeout(() => s.end(), 30));
    });
    s.on('error', reject);
    s.on('close', () => resolve());
    s.resume();
  });
}

test('a new connection on the ports of a finished one (same 4-tuple, a second later) is reported', { skip: kernelSkip }, async () => {
  const localPort = 20000 + (process.pid % 20000);
  const first = testName('reuse-first');
  await sendFrom(localPort, buildClientHello({ serverName: first, seed: 21 }).bytes);
  await run.tracer.waitForName(first);
  // The client closed first, so its end is in TIME_WAIT: loopback lets a connect reuse it
  // after a second (tcp_tw_reuse=2).
  await sleep(1100);
  const second = testName('reuse-second');
  await sendFrom(localPort, buildClientHello({ serverName: second, alpn: ['x-second'], seed: 22 }).bytes);
  const [e] = await run.tracer.waitForName(second);
  assert.equal(portOf(e!.src), localPort);
  assert.equal(e!.alpn, 'x-second');
  assert.equal(e!.proc.pid, process.pid);
  // and after an incomplete (truncated) hello on the same ports, too
  await sleep(1100);
  await sendFrom(localPort, buildClientHello({ serverName: testName('reuse-cut'), seed: 23 }).bytes.slice(0, 120));
  await sleep(1100);
  const third = testName('reuse-third');
  await sendFrom(localPort, buildClientHello({ serverName: third, seed: 24 }).bytes);
  const [e3] = await run.tracer.waitForName(third);
  assert.equal(portOf(e3!.src), localPort);
});
