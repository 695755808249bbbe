// SPDX-License-Identifier: Apache-2.0
// Unfiltered `trace sni` covers every network namespace on the host, not only containers':
// namespaces made with `ip netns add` (pinned under /run/netns) are found when created — a
// client that runs in one right after `ip netns add` is reported — and namespaces held only
// by a process (`unshare -n`) within the process scan's period (1 s). Issue 9 (6). --host
// does not cover them (it means the host's own namespaces).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.sni);
import { buildClientHello } from '../../helpers/clienthello.js';
import { Tracer, runProcess, sh, testName, tracerComplaints, waitUntil } from './helpers.js';

const RUNS = 10;
let dir: string;
let sender: string;
let unfiltered: Tracer;
let hostOnly: Tracer;
const namespaces: string[] = [];

/** In its namespace: loopback up, a TCP sink on 127.0.0.1, one ClientHello for argv[2] sent to it. */
const SENDER = `
const net = require('node:net');
const hello = Buffer.from(process.argv[2], 'hex');
const srv = net.createServer((s) => { s.resume(); s.on('end', () => { s.end(); srv.close(); }); });
srv.listen(0, '127.0.0.1', () => {
  const c = net.connect(srv.address().port, '127.0.0.1', () => { c.end(hello); });
  c.on('close', () => process.exit(0));
});
`;

before(async () => {
  if (kernelSkip) return;
  dir = mkdtempSync(join(tmpdir(), 'tlscope-netns-'));
  sender = join(dir, 'send.cjs');
  writeFileSync(sender, SENDER);
  unfiltered = new Tracer(['--timeout', '600']);
  hostOnly = new Tracer(['--host', '--timeout', '600']);
  // ready: a hello from the host itself
  for (const t of [unfiltered, hostOnly]) await t.ready(async (n) => void (await runProcess(process.execPath, [sender, hex(n)])));
});

after(async () => {
  if (kernelSkip) return;
  for (const t of [unfiltered, hostOnly]) {
    const r = await t?.stop();
    assert.equal(r?.code, 0, r?.stderr);
    assert.deepEqual(tracerComplaints(r?.stderr ?? ''), []);
  }
  for (const ns of namespaces) await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

let seed = 7000;
function hex(name: string): string {
  return Buffer.from(buildClientHello({ serverName: name, seed: seed++ }).bytes).toString('hex');
}

test(`${RUNS} namespaces made by ip netns add, each used at once by a client: every hello is reported unfiltered, none by --host`, { skip: kernelSkip, timeout: 120_000 }, async () => {
  const names: string[] = [];
  for (let i = 0; i < RUNS; i++) {
    const ns = `tlscope-gate-${process.pid}-${i}`;
    const name = testName(`netns-${i}`);
    names.push(name);
    namespaces.push(ns);
    await sh('ip', ['netns', 'add', ns]);
    await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const r = await runProcess('ip', ['netns', 'exec', ns, process.execPath, sender, hex(name)]);
    assert.equal(r.code, 0, r.stderr);
  }
  for (const t of [unfiltered, hostOnly]) await t.marker(async (n) => void (await runProcess(process.execPath, [sender, hex(n)])));
  // `ip netns exec` runs the client in a mount namespace of its own, which no container owns:
  // its events wait out the late binding's bound (2 s) and are shown unattributed ("?")
  await waitUntil('the held hellos', () => names.every((n) => unfiltered.byName(n).length > 0), 5000).catch(() => undefined);
  const missed = names.filter((n) => unfiltered.byName(n).length === 0);
  assert.deepEqual(missed, [], 'every hello from an ip netns namespace is reported');
  assert.deepEqual(names.filter((n) => hostOnly.byName(n).length > 0), [], '--host shows none of them');
  for (const n of names) {
    assert.equal(unfiltered.byName(n).length, 1, `${n} once`);
    assert.notEqual(unfiltered.byName(n)[0]?.runtime?.containerName, undefined, `${n} is not shown as the host's`);
  }
});

test('a namespace held only by its process (unshare -n), used after 1.5 s, is reported unfiltered', { skip: kernelSkip, timeout: 60_000 }, async () => {
  const name = testName('unshare');
  const r = await runProcess('unshare', ['-n', 'sh', '-c', `ip link set lo up && sleep 1.5 && exec "${process.execPath}" "${sender}" ${hex(name)}`]);
  assert.equal(r.code, 0, r.stderr);
  await unfiltered.waitForName(name, 1, 10_000);
});
