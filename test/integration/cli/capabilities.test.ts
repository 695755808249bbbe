// SPDX-License-Identifier: Apache-2.0
/**
 * The capabilities each command needs without root (COMMAND_CAPABILITIES, measured): as uid
 * 65534 with exactly that set (setpriv, ambient), each command does its job on a local TLS
 * client; doctor says which commands can run with a given set and names what the others lack;
 * with the set the docs used to give, nothing claims "privileges ok" while nothing can run.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import { COMMAND_CAPABILITIES } from '../../../src/gadgets/catalog.js';
import type { Capability } from '../../../src/ebpf/caps.js';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.sni, ...NEEDS.tls, ...NEEDS.capture);
import { makeWorkDir, startPyServer, type PyServer } from '../tls/helpers.js';
import { CliProcess, runCliSync } from '../../helpers/cli.js';
import { runProcess } from '../../helpers/process.js';
import { waitUntil } from '../../helpers/wait.js';


let work: ReturnType<typeof makeWorkDir>;
let server: PyServer;

before(async () => {
  if (kernelSkip) return;
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
  const cli = new CliProcess(args, { prefix: setpriv(caps) });
  await waitUntil(`${args.slice(0, 2).join(' ')} to start`, () => ready.test(cli.stderr) || cli.exited, 60_000);
  if (!cli.exited) {
    const r = await runProcess('curl', ['-sk', '--http1.1', '--resolve', `${name}:${server.port}:127.0.0.1`, `https://${name}:${server.port}/caps-check`]);
    assert.equal(r.code, 0, r.stderr);
    await waitUntil('the event', () => cli.stdoutText.includes(name) || cli.stdoutText.includes('/caps-check'), 30_000).catch(() => {});
  }
  const r = await cli.stop();
  return { code: r.code, out: r.stdout.toString('utf8'), err: r.stderr };
}

test('trace sni with exactly CAP_BPF, CAP_PERFMON, CAP_NET_RAW (uid 65534) sees the name', { skip: kernelSkip }, async () => {
  const r = await runWith(COMMAND_CAPABILITIES['trace sni'], ['trace', 'sni', '--host', '-o', 'json', '-v'], /sending processes/, 'caps-sni.test');
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out.includes('caps-sni.test'), r.err);
});

test('trace tls with exactly its capabilities (uid 65534) sees the request', { skip: kernelSkip }, async () => {
  const r = await runWith(COMMAND_CAPABILITIES['trace tls'], ['trace', 'tls', '--host', '-o', 'json', '-v'], /tlscope: tracing \d+ file/, 'caps-tls.test');
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out.includes('GET /caps-check'), r.err);
});

test('capture with exactly its capabilities (uid 65534) sees the ClientHello', { skip: kernelSkip }, async () => {
  const r = await runWith(COMMAND_CAPABILITIES.capture, ['capture', '--host', '-A', '-v', `tcp port ${server.port}`], /listening on/, 'caps-capture.test');
  assert.equal(r.code, 0, r.err);
  assert.ok(r.out.includes('caps-capture.test'), r.err);
});

test('one capability short: the command says exactly which (exit 4), and doctor agrees', { skip: kernelSkip }, () => {
  const sni = COMMAND_CAPABILITIES['trace sni'].filter((c) => c !== 'CAP_NET_RAW');
  const r = runCliSync(['trace', 'sni', '--host', '--timeout', '2'], { prefix: setpriv(sni) });
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /tlscope trace sni needs CAP_NET_RAW/);
  assert.match(r.stderr, /run as root, or with CAP_BPF, CAP_PERFMON, CAP_NET_RAW/);
  const d = runCliSync(['doctor', '-o', 'json'], { prefix: setpriv(sni) });
  const rep = JSON.parse(d.stdout) as { host: { privileged: boolean }; gadgets: { gadget: string; status: string; detail: string }[] };
  assert.equal(rep.host.privileged, false);
  assert.match(rep.gadgets.find((g) => g.gadget === 'trace sni')?.detail ?? '', /^needs CAP_NET_RAW/);
});

test('with the set the docs used to give (BPF, PERFMON, NET_ADMIN, SYS_ADMIN), doctor names what each command lacks and never says "privileges ok"', { skip: kernelSkip }, () => {
  const d = runCliSync(['doctor'], { prefix: setpriv(['CAP_BPF', 'CAP_PERFMON', 'CAP_NET_ADMIN', 'CAP_SYS_ADMIN']) });
  assert.doesNotMatch(d.stdout, /privileges\s+ok/);
  // none of the commands has all it needs with that set
  assert.match(d.stdout, /privileges\s+missing\s+capabilities CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN; missing: trace sni: CAP_NET_RAW/);
  assert.match(d.stdout, /gadget: trace sni\s+unavailable\s+needs CAP_NET_RAW/);
  assert.match(d.stdout, /gadget: capture\s+unavailable\s+needs CAP_NET_RAW/);
  assert.match(d.stdout, /gadget: trace tls: OpenSSL, GnuTLS, node, NSS, rustls\s+unavailable\s+needs CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE/);
  assert.equal(d.code, 1);
  assert.match(d.stderr, /nothing can run on this host: not root and without the capabilities the gadgets need/);
  assert.doesNotMatch(d.stderr, /libbpf/);
});
