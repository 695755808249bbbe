// SPDX-License-Identifier: Apache-2.0
// A ClientHello padded past 1500 bytes with the name at its very end, sent as raw bytes over a
// plain TCP socket through a veth pair (MTU 1500) into a network namespace this test creates,
// watched through the SniGadget API on both ends of the pair: split by the sender into several
// writes, written at once (one GSO packet, as the capture point sees it with offloads on), and
// written at once with segmentation offload off (real 1448-byte MSS segments). IPv4 and IPv6.
// Each is one event with the right name and owner, although every segment crosses two
// watched interfaces; a raw second copy of the kernel side shows the segments really were
// forwarded separately.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { SniGadget, type SniEvent } from '../../../src/gadgets/sni/gadget.js';
import { BpfObject } from '../../../src/ebpf/object.js';
import { RingBufReader } from '../../../src/ebpf/ringbuf.js';
import { openPacketSocket, type PacketSocket } from '../../../src/ebpf/packet-socket.js';
import { decodeSniSegment, type SniSegment } from '../../../src/gadgets/sni/decode.js';
import { buildClientHello, type ClientHelloSpec } from '../../helpers/clienthello.js';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.sni);
import { uniqueName } from '../../helpers/runtimes.js';
import { freshHello, sendChunks, sh, testName, waitUntil } from './helpers.js';


const SINK_PORT = 9443;
const ns = uniqueName('tlscope-sni');
const tag = `${process.pid.toString(36)}${Date.now().toString(36).slice(-3)}`;
const hostIf = `tsh${tag}`.slice(0, 15);
const nsIf = `tsn${tag}`.slice(0, 15);
let v4: { host: string; peer: string };
const v6 = { host: 'fd00:5e1:ab::1', peer: 'fd00:5e1:ab::2' };

let sink: ChildProcess | undefined;
let gadget: SniGadget;
const events: SniEvent[] = [];
let pump: Promise<void> | undefined;
// the raw observer: a second copy of the kernel side, host end only, to count segments
let raw: { obj: BpfObject; sock: PacketSocket; reader: RingBufReader<SniSegment> } | undefined;
const rawSegments: SniSegment[] = [];
let created = { netns: false, link: false };

/** A /24 in 10.213.0.0/16 that no route on this host uses yet. */
async function freeSubnet(): Promise<number> {
  const routes = await sh('ip', ['-4', 'route', 'show', 'table', 'all']);
  for (let i = 0; i < 200; i++) {
    const octet = 20 + ((process.pid + i) % 200);
    if (!routes.includes(`10.213.${octet}.`)) return octet;
  }
  throw new Error('no free 10.213.x.0/24');
}

before(async () => {
  if (kernelSkip) return;
  const octet = await freeSubnet();
  v4 = { host: `10.213.${octet}.1`, peer: `10.213.${octet}.2` };
  await sh('ip', ['netns', 'add', ns]);
  created.netns = true;
  await sh('ip', ['link', 'add', hostIf, 'mtu', '1500', 'type', 'veth', 'peer', 'name', nsIf, 'mtu', '1500']);
  created.link = true;
  await sh('ip', ['link', 'set', nsIf, 'netns', ns]);
  await sh('ip', ['addr', 'add', `${v4.host}/24`, 'dev', hostIf]);
  await sh('ip', ['-6', 'addr', 'add', `${v6.host}/64`, 'dev', hostIf, 'nodad']);
  await sh('ip', ['link', 'set', hostIf, 'up']);
  await sh('ip', ['-n', ns, 'addr', 'add', `${v4.peer}/24`, 'dev', nsIf]);
  await sh('ip', ['-n', ns, '-6', 'addr', 'add', `${v6.peer}/64`, 'dev', nsIf, 'nodad']);
  await sh('ip', ['-n', ns, 'link', 'set', nsIf, 'up']);
  await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);

  // The TCP sink inside the namespace: reads and discards.
  const script = `
    const net = require('node:net');
    let up = 0;
    for (const host of ${JSON.stringify([v4.peer, v6.peer])}) {
      net.createServer((s) => { s.on('error', () => {}); s.resume(); s.on('end', () => s.end()); })
        .listen(${SINK_PORT}, host, () => { if (++up === 2) console.log('ready'); });
    }`;
  sink = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const first = await createInterface({ input: sink.stdout! })[Symbol.asyncIterator]().next();
  assert.equal(first.value, 'ready', 'the sink listens inside the namespace');

  gadget = SniGadget.open();
  gadget.watchNetns(); // the host's end of the pair
  gadget.watchNetns(`/var/run/netns/${ns}`); // and the namespace's
  pump = (async () => {
    for await (const batch of gadget) events.push(...batch);
  })();

  const obj = BpfObject.load('sni', { programs: ['sni_socket'] });
  const reader = new RingBufReader(obj.map('events'), { decode: decodeSniSegment, intervalMs: 5 });
  raw = { obj, sock: openPacketSocket(obj.program('sni_socket')), reader };
  void (async () => {
    for await (const batch of reader) rawSegments.push(...batch.filter((s) => s.dport === SINK_PORT));
  })();
});

after(async () => {
  raw?.sock.close();
  await raw?.reader.close();
  raw?.obj.close();
  await gadget?.close();
  await pump;
  if (sink?.exitCode === null) sink.kill('SIGKILL');
  const errors: string[] = [];
  if (created.link) await sh('ip', ['link', 'del', hostIf]).catch((e: unknown) => errors.push(String(e)));
  if (created.netns) await sh('ip', ['netns', 'del', ns]).catch((e: unknown) => errors.push(String(e)));
  created = { netns: false, link: false };
  assert.deepEqual(errors, [], 'clean-up');
});

/** A ~3 KB ClientHello: post-quantum key share, padding, and the server name last of all. */
function lateNameHello(name: string, seed: number): Uint8Array {
  const spec: ClientHelloSpec = { serverName: name, alpn: ['h2', 'http/1.1'], postQuantum: true, grease: true, paddedLength: 3000, seed };
  const others = buildClientHello(spec).extensionTypes.filter((t) => t !== 0);
  const built = buildClientHello({ ...spec, extensionOrder: others });
  assert.ok((built.serverNameOffset ?? 0) > 1500 * 2 - 100, `the name starts at byte ${built.serverNameOffset}, in the third MSS segment`);
  assert.equal(built.extensionTypes.at(-1), 0, 'server_name is the last extension');
  return built.bytes;
}

const MY_COMM = readFileSync('/proc/self/comm', 'utf8').trim();

/**
 * One more hello through the pair, under a fresh name; waits for its event. Every earlier
 * sendChunks resolved once the sink had read all its bytes, so both ends' copies had passed the
 * filters, and the gadget gives events out in ring order: nothing of them can come after this.
 */
async function marker(): Promise<void> {
  const name = testName('veth-marker');
  await sendChunks(v4.peer, SINK_PORT, [freshHello(name)]);
  await waitUntil(`the marker ${name}`, () => events.some((e) => e.name === name), 30_000);
}

async function expectOne(name: string, localPort: number, family: 4 | 6): Promise<SniEvent> {
  await waitUntil(`an event for ${name}`, () => events.some((e) => e.name === name), 30_000);
  await marker();
  const mine = events.filter((e) => e.name === name);
  assert.equal(mine.length, 1, `one event although the hello crossed two watched ends: ${mine.length}`);
  const e = mine[0]!;
  assert.equal(e.proc.pid, process.pid);
  assert.equal(e.proc.tid, process.pid, 'node writes on its main thread');
  assert.equal(e.proc.comm, MY_COMM);
  assert.equal(e.direction, 'out');
  assert.deepEqual(e.alpn, ['h2', 'http/1.1']);
  assert.equal(e.tlsVersion, 'TLS1.3');
  assert.equal(e.hello.grease, true);
  assert.equal(e.hello.handshakeLength, 3000);
  assert.equal(e.src, family === 4 ? `${v4.host}:${localPort}` : `[${v6.host}]:${localPort}`);
  assert.equal(e.dst, family === 4 ? `${v4.peer}:${SINK_PORT}` : `[${v6.peer}]:${SINK_PORT}`);
  return e;
}

function rawFor(localPort: number): SniSegment[] {
  return rawSegments.filter((s) => s.sport === localPort);
}

for (const family of [4, 6] as const) {
  const peer = (): string => (family === 4 ? v4.peer : v6.peer);

  test(`IPv${family}: a 3 KB hello with the name last, in several writes`, { skip: kernelSkip }, async () => {
    const name = testName(`veth-writes${family}`);
    const bytes = lateNameHello(name, 10 + family);
    const cuts = [0, 700, 1400, 2100, bytes.length];
    const chunks = cuts.slice(1).map((end, i) => bytes.slice(cuts[i], end));
    const port = await sendChunks(peer(), SINK_PORT, chunks, { pauseMs: 30 });
    await expectOne(name, port, family);
    await waitUntil('the raw observer saw the four writes', () => rawFor(port).length >= 4, 30_000);
    assert.deepEqual(rawFor(port).map((s) => s.payloadLen), [700, 700, 700, bytes.length - 2100], 'one forwarded segment per write');
    assert.deepEqual(rawFor(port).map((s) => s.first), [true, false, false, false]);
  });

  test(`IPv${family}: the same in one write (one GSO packet at the capture point)`, { skip: kernelSkip }, async () => {
    const name = testName(`veth-gso${family}`);
    const bytes = lateNameHello(name, 20 + family);
    const port = await sendChunks(peer(), SINK_PORT, [bytes]);
    await expectOne(name, port, family);
    await waitUntil('the raw observer saw it', () => rawFor(port).reduce((n, s) => n + s.payloadLen, 0) >= bytes.length, 30_000);
  });

  test(`IPv${family}: one write that TCP cuts into MSS segments (segmentation offload off)`, { skip: kernelSkip }, async () => {
    await sh('ip', ['link', 'set', hostIf, 'gso_max_segs', '1']);
    try {
      const name = testName(`veth-mss${family}`);
      const bytes = lateNameHello(name, 30 + family);
      const port = await sendChunks(peer(), SINK_PORT, [bytes]);
      await expectOne(name, port, family);
      await waitUntil('the raw observer saw all segments', () => rawFor(port).reduce((n, s) => n + s.payloadLen, 0) >= bytes.length, 30_000);
      const sizes = rawFor(port).map((s) => s.payloadLen);
      assert.ok(sizes.length >= 3, `several segments: ${sizes.join(',')}`);
      assert.ok(sizes.every((n) => n <= 1500 - (family === 4 ? 20 : 40) - 20), `each fits the MTU: ${sizes.join(',')}`);
      assert.equal(sizes.reduce((a, b) => a + b, 0), bytes.length);
      assert.deepEqual(rawFor(port).map((s) => s.first), sizes.map((_, i) => i === 0));
    } finally {
      await sh('ip', ['link', 'set', hostIf, 'gso_max_segs', '65535']);
    }
  });
}

test('the gadget counts what it deduplicated and lost nothing', { skip: kernelSkip }, () => {
  const s = gadget.stats();
  assert.equal(s.lost, 0n);
  assert.equal(s.decodeErrors, 0);
  assert.ok(s.duplicates > 0, 'the second end of the pair showed every segment again');
  const k = gadget.kernelStats();
  assert.ok(k.segmentsForwarded! > 0n && k.ownersRecorded! > 0n);
});
