// SPDX-License-Identifier: Apache-2.0
/**
 * The capabilities each command needs without root (COMMAND_CAPABILITIES, measured): as uid
 * 65534 with exactly that set (setpriv, ambient), each command does its job on a local TLS
 * client; doctor says which commands can run with a given set and names what the others lack;
 * with the set the docs used to give, nothing claims "privileges ok" while nothing can run.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { COMMAND_CAPABILITIES } from '../../../src/gadgets/catalog.js';
import type { Capability } from '../../../src/ebpf/caps.js';
import { notRoot } from '../../helpers/root.js';
import { CLI, makeWorkDir, runProcess, startPyServer, until, type PyServer } from '../tls/helpers.js';

let work: ReturnType<typeof makeWorkDir>;
let server: PyServer;

before(async () => {
  if (notRoot) return;
  work = makeWorkDir('tlscope-caps-');
  chmodSync(work.dir, 0o755);
  server = await startPyServer(work);
});

after(async () => {
  await server?.close();
  work?.remove();
});

function setpriv(caps: readonly Capability[]): string[] {
  const list = ['-all', ...caps.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`)].join(',');
  return ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', `--inh-caps=${list}`, `--ambient-caps=${list}`, `--bounding-set=${list}`];
}

/** Runs a tlscope command as uid 65534 with `caps`, a curl to the server once it is up; its output. */
async function runWith(caps: readonly Capability[], args: readonly string[], ready: RegExp, name: string): Promise<{ code: number | null; out: string; err: string }> {
  const [cmd, ...pre] = setpriv(caps);
  const child = spawn(cmd!, [...pre, process.execPath, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
  await until(`${args.slice(0, 2).join(' ')} to start`, () => ready.test(err) || child.exitCode !== null, 60_000);
  if (child.exitCode === null) {
    const r = await runProcess('curl', ['-sk', '--http1.1', '--resolve', `${name}:${server.port}:127.0.0.1`, `https://${name}:${server.port}/caps-check`]).done;
    assert.equal(r.code, 0, r.stderr);
    await until('the event', () => out.includes(name) || out.includes('/caps-check'), 30_000).catch(() => {});
    child.kill('SIGINT');
  }
  return { code: await exited, out, err };
}

test('trace sni with exactly CAP_BPF, CAP_PERFMON, CAP_NET_RAW (uid 65534) sees the name', { skip: notRoot }, async () => {
  const r = await runWith(COMMAND_CAPABILITIES['trace sni'], ['trace', 'sni', '--host', '-o', 'json', '-v'], /sending processes/, 'caps-sni.test');
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out.includes('caps-sni.test'), r.err);
});

test('trace tls with exactly its capabilities (uid 65534) sees the request', { skip: notRoot }, async () => {
  const r = await runWith(COMMAND_CAPABILITIES['trace tls'], ['trace', 'tls', '--host', '-o', 'json', '-v'], /tlscope: tracing \d+ file/, 'caps-tls.test');
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out.includes('GET /caps-check'), r.err);
});

test('capture with exactly its capabilities (uid 65534) sees the ClientHello', { skip: notRoot }, async () => {
  const r = await runWith(COMMAND_CAPABILITIES.capture, ['capture', '--host', '-A', '-v', `tcp port ${server.port}`], /listening on/, 'caps-capture.test');
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out.includes('caps-capture.test'), r.err);
});

test('one capability short: the command says exactly which (exit 4), and doctor agrees', { skip: notRoot }, () => {
  const sni = COMMAND_CAPABILITIES['trace sni'].filter((c) => c !== 'CAP_NET_RAW');
  const [cmd, ...pre] = setpriv(sni);
  const r = spawnSync(cmd!, [...pre, process.execPath, CLI, 'trace', 'sni', '--host', '--timeout', '2'], { encoding: 'utf8' });
  assert.equal(r.status, 4, r.stderr);
  assert.match(r.stderr, /tlscope trace sni needs CAP_NET_RAW/);
  assert.match(r.stderr, /run as root, or with CAP_BPF, CAP_PERFMON, CAP_NET_RAW/);
  const d = spawnSync(cmd!, [...pre, process.execPath, CLI, 'doctor', '-o', 'json'], { encoding: 'utf8' });
  const rep = JSON.parse(d.stdout) as { host: { privileged: boolean }; gadgets: { gadget: string; status: string; detail: string }[] };
  assert.equal(rep.host.privileged, false);
  assert.match(rep.gadgets.find((g) => g.gadget === 'trace sni')?.detail ?? '', /^needs CAP_NET_RAW/);
});

test('with the set the docs used to give (BPF, PERFMON, NET_ADMIN, SYS_ADMIN), doctor names what each command lacks and never says "privileges ok"', { skip: notRoot }, () => {
  const [cmd, ...pre] = setpriv(['CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN']);
  const d = spawnSync(cmd!, [...pre, process.execPath, CLI, 'doctor'], { encoding: 'utf8' });
  assert.doesNotMatch(d.stdout, /privileges\s+ok/);
  // none of the commands has all it needs with that set
  assert.match(d.stdout, /privileges\s+missing\s+capabilities CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN; missing: trace sni: CAP_NET_RAW/);
  assert.match(d.stdout, /gadget: trace sni\s+unavailable\s+needs CAP_NET_RAW/);
  assert.match(d.stdout, /gadget: capture\s+unavailable\s+needs CAP_NET_RAW/);
  assert.match(d.stdout, /gadget: trace tls: OpenSSL, GnuTLS, node\s+unavailable\s+needs CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE/);
  assert.equal(d.status, 1);
  assert.match(d.stderr, /nothing can run on this host: not root and without the capabilities the gadgets need/);
  assert.doesNotMatch(d.stderr, /libbpf/);
});
