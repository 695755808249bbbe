// SPDX-License-Identifier: Apache-2.0
// `tlscope capture` (the real CLI) against real containers serving HTTP with busybox httpd (the
// image has busybox only: no tcpdump, no shell tools beyond busybox, nothing is exec'd into
// it), a client (curl) on the host: capture by container name on docker and on containerd
// (CNI bridge), and a real CRI pod whose two containers share one network namespace; the pcapng read by tshark (request path, response body, container name in the
// interface description, the processes in packet comments); the filter keeping out other
// traffic; -A showing the body; `-w - | tshark -r -`; several pods at once, one started
// during the capture; --count; loopback packets once; bad filters and unknown containers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, writeSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { c } from '../../../src/ebpf/native.js';
import { inNetns } from '../../../src/ebpf/netns.js';
import { featureSkip, NEEDS } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip(...NEEDS.capture);
import { CNI_NETWORK, ensureRuntimes, kubeletLabels, runtimeSkipReason, TestContainers, uniqueName, type TestContainer } from '../../helpers/runtimes.js';
import { removeTestCertificate, startTlsServer } from '../sni/helpers.js';
import { BIN, Capture, connectionsFinished, curl, httpdCommand, marker, sh, snmpCounter, tshark, tsharkFields, waitForPort, waitUntil, assertNoDamage } from './helpers.js';


const skipDocker = kernelSkip || runtimeSkipReason('docker');
const skipContainerd = kernelSkip || runtimeSkipReason('containerd');
const noTshark = existsSync('/usr/bin/tshark') ? false : 'tshark is not installed (Debian package tshark)';

let containers: TestContainers;
let work: string;
let criReady = false;
const captures: Capture[] = [];

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'tlscope-capture-'));
  if (skipDocker !== false && skipContainerd !== false) return;
  const env = await ensureRuntimes();
  containers = new TestContainers(env);
  criReady = env.criReady;
});

after(async () => {
  for (const c of captures) await c.stop();
  await containers?.cleanup();
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

function capture(args: readonly string[], opts: { stdout?: 'pipe' | NodeJS.WritableStream } = {}): Capture {
  const c = new Capture(args, opts);
  captures.push(c);
  return c;
}

async function dockerIp(name: string): Promise<string> {
  return (await sh(`docker inspect -f '{{.NetworkSettings.IPAddress}}' ${name}`)).trim();
}

/** The container's eth0 address; `ctr run --cni` can hand out the pid before CNI has set it. */
async function netnsIp(pid: number): Promise<string> {
  let out = '';
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    out = await sh(`nsenter -t ${pid} -n ip -4 -o addr show eth0`).catch((e: unknown) => String(e));
    const ip = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(out)?.[1];
    if (ip !== undefined) return ip;
  }
  throw new Error(`no IPv4 address on eth0 of pid ${pid} within 30 s: ${out}`);
}

interface WebServer {
  c: TestContainer;
  ip: string;
  path: string;
  body: string;
}

/** A busybox-only container serving a file at /<path> on port 8000 (and 8001 when asked). */
async function webServer(runtime: 'docker' | 'containerd', opts: { ports?: number[]; labels?: Record<string, string>; name?: string } = {}): Promise<WebServer> {
  const path = `${marker('page')}.html`;
  const body = marker('hello-tlscope');
  const c = await containers.run(runtime, {
    name: opts.name ?? uniqueName('tlscope-cap'),
    command: httpdCommand({ [path]: body }, opts.ports ?? [8000]),
    ...(runtime === 'containerd' ? { cni: true } : {}),
    ...(opts.labels === undefined ? {} : { labels: opts.labels }),
  });
  const ip = runtime === 'docker' ? await dockerIp(c.name) : await netnsIp(c.pid);
  for (const port of opts.ports ?? [8000]) await waitForPort(ip, port);
  return { c, ip, path, body };
}

/** Names of the processes in the container's mount namespace (no exec: only what it runs itself). */
function containerComms(pid: number): string[] {
  const mnt = readlinkSync(`/proc/${pid}/ns/mnt`);
  const out: string[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readlinkSync(`/proc/${p}/ns/mnt`) === mnt) out.push(readFileSync(`/proc/${p}/comm`, 'utf8').trim());
    } catch {
      // gone
    }
  }
  return out;
}

test('docker: capture by name to pcapng; tshark reads the request path, the body, the container name and the processes; the filter keeps out port 8001 and UDP', { skip: skipDocker || noTshark, timeout: 120_000 }, async () => {
  const web = await webServer('docker', { ports: [8001, 8000] });
  // The image is busybox alone: there is no tcpdump to exec, and nothing is exec'd.
  assert.equal(existsSync(`/proc/${web.c.pid}/root/usr/sbin/tcpdump`) || existsSync(`/proc/${web.c.pid}/root/usr/bin/tcpdump`), false);
  const file = join(work, 'docker.pcapng');
  const cap = capture(['-c', web.c.name, '-w', file, 'tcp port 8000', '--timeout', '90']);
  await cap.listening();
  assert.equal(await curl(`http://${web.ip}:8000/${web.path}`), `${web.body}\n`);
  const other = marker('other');
  await curl(`http://${web.ip}:8001/${web.path}`); // same server, other port: filtered out
  // The UDP datagram must have reached the container before the capture stops, or "no UDP"
  // below proves nothing: nothing listens on UDP 8000 there, so its arrival counts in NoPorts.
  const noPorts = snmpCounter(web.c.pid, 'Udp', 'NoPorts');
  const udp = createSocket('udp4');
  await new Promise<void>((r) => udp.send(`udp-${other}`, 8000, web.ip, () => r()));
  udp.close();
  await waitUntil('the UDP datagram arrived in the container', () => snmpCounter(web.c.pid, 'Udp', 'NoPorts') > noPorts);
  // every packet of the port-8000 exchange (the closing FIN/ACKs too) has passed eth0
  await connectionsFinished(web.c.pid, 8000);
  const r = await cap.stop();
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^\d+ packets captured\n\d+ packets received by filter\n0 packets dropped by kernel$/m);
  assert.match(r.stderr, new RegExp(`listening on every interface of ${web.c.name} \\(docker\\)`));

  const info = await tshark(['-r', file]);
  assert.equal(info.code, 0, info.stderr);
  assertNoDamage(info.stderr);
  const rows = await tsharkFields(file, ['frame.interface_description', 'tcp.srcport', 'tcp.dstport', 'udp.port', 'http.request.uri', 'http.file_data', 'frame.comment']);
  assert.ok(rows.length >= 8, `a whole HTTP exchange: ${rows.length} packets`);
  for (const [desc, sport, dport, udpPort] of rows) {
    assert.equal(desc, `${web.c.name} (docker) eth0`);
    assert.ok(sport === '8000' || dport === '8000', `only port 8000: ${sport} → ${dport}`);
    assert.equal(udpPort, '', 'no UDP');
  }
  assert.ok(rows.some((r) => r[4] === `/${web.path}`), 'the request path');
  assert.ok(rows.some((r) => (r[5] ?? '').includes(web.body)), 'the response body');
  const comments = rows.map((r) => r[6] ?? '').filter(Boolean);
  assert.ok(comments.some((c) => /^sender: pid \d+ curl on the host; receiver: pid \d+ httpd in /.test(c) && c.includes(`${web.c.name} (docker)`)), `curl → httpd comments: ${comments.join(' | ')}`);
  assert.ok(comments.some((c) => /^sender: pid \d+ httpd in .*; receiver: pid \d+ curl on the host$/.test(c)), 'httpd → curl comments');
  // still nothing exec'd: the container runs its httpd (and the shell that started it) only
  assert.deepEqual([...new Set(containerComms(web.c.pid))].filter((c) => c !== 'httpd' && c !== 'sh'), []);
});

test('docker: -A prints the request and the response body as text, tcpdump style', { skip: skipDocker, timeout: 120_000 }, async () => {
  const web = await webServer('docker');
  const cap = capture(['-c', web.c.name, 'tcp', 'port', '8000', '-A', '--timeout', '90']);
  await cap.listening();
  await curl(`http://${web.ip}:8000/${web.path}`);
  await waitUntil('the body in the output', () => cap.stdoutText.includes(web.body), 30_000, () => cap.stdoutText);
  const r = await cap.stop();
  assert.equal(r.code, 0, r.stderr);
  const text = r.stdout.toString('utf8');
  assert.match(text, new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{6} ${web.c.name} eth0 In IP [\\d.]+\\.\\d+ > ${web.ip.replace(/\./g, '\\.')}\\.8000: Flags \\[S\\], seq \\d+, win \\d+, options \\[`, 'm'));
  assert.match(text, new RegExp(`GET /${web.path} HTTP/1\\.1\nHost: ${web.ip.replace(/\./g, '\\.')}:8000\n`));
  assert.match(text, /Out IP [\d.]+\.8000 > [\d.]+\.\d+: Flags \[P\.\], seq 1:\d+, ack \d+, win \d+, options \[nop,nop,TS val \d+ ecr \d+\], length \d+\n/);
  assert.match(text, new RegExp(`\n.*${web.body}\n`));
  assert.doesNotMatch(text, /\r/);
});

test('the seed\'s walkthrough: -A -s 0 with its payload-only expression shows the request and the body, and only packets with data', { skip: skipDocker, timeout: 120_000 }, async () => {
  const web = await webServer('docker');
  const cap = capture(['-c', web.c.name, '-A', '-s', '0', '(((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)', '--timeout', '90']);
  await cap.listening();
  await curl(`http://${web.ip}:8000/${web.path}`);
  await waitUntil('the body in the output', () => cap.stdoutText.includes(web.body), 30_000, () => cap.stdoutText);
  const r = await cap.stop();
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.toString('utf8').split('\n').filter((l) => /^\d\d:\d\d:\d\d\.\d{6} /.test(l));
  assert.ok(lines.length >= 2, lines.join('\n'));
  for (const l of lines) assert.match(l, /Flags \[P?\.\], seq \d+:\d+, .*length [1-9]\d*$/, l);
  assert.match(r.stdout.toString('utf8'), new RegExp(`GET /${web.path} HTTP/1\\.1`));
});

test('docker: `tlscope capture … -w - | tshark -r -` (a real pipe) reads the stream', { skip: skipDocker || noTshark, timeout: 120_000 }, async () => {
  const web = await webServer('docker');
  const errFile = join(work, 'pipe.stderr');
  // The capture ends by itself after the request's one packet (the filter matches a payload
  // that starts with "GET "), not at a short --timeout that a slow start on a busy machine
  // could use up before the request is sent; --timeout is only the backstop.
  const getRequest = 'tcp dst port 8000 and tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420';
  const pipeline = `"${process.execPath}" "${BIN}" capture -c ${web.c.name} -w - --count 1 '${getRequest}' --timeout 90 2>"${errFile}" | tshark -r - -T fields -e http.request.uri -e frame.interface_description`;
  const sh = spawn('sh', ['-c', pipeline], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  sh.stdout.setEncoding('utf8').on('data', (x: string) => (out += x));
  sh.stderr.setEncoding('utf8').on('data', (x: string) => (err += x));
  const done = new Promise<number | null>((r) => sh.on('close', (code) => r(code)));
  const stderrText = (): string => (existsSync(errFile) ? readFileSync(errFile, 'utf8') : '');
  await waitUntil('tlscope listening', () => stderrText().includes('listening on'), 30_000, stderrText);
  await curl(`http://${web.ip}:8000/${web.path}`);
  assert.equal(await done, 0, `${err}\n${stderrText()}`);
  assertNoDamage(err);
  assert.match(stderrText(), /^1 packet captured$/m);
  assert.ok(out.split('\n').some((l) => l === `/${web.path}\t${web.c.name} (docker) eth0`), out);
});

test('containerd (CNI bridge): capture by name; tshark sees the request, the body and the containerd container', { skip: skipContainerd || noTshark, timeout: 120_000 }, async () => {
  const web = await webServer('containerd');
  const file = join(work, 'containerd.pcapng');
  const cap = capture(['-c', web.c.name, '-w', file, 'tcp port 8000', '--timeout', '90']);
  await cap.listening();
  assert.equal(await curl(`http://${web.ip}:8000/${web.path}`), `${web.body}\n`);
  await connectionsFinished(web.c.pid, 8000);
  const r = await cap.stop();
  assert.equal(r.code, 0, r.stderr);
  const rows = await tsharkFields(file, ['frame.interface_description', 'http.request.uri', 'http.file_data']);
  assert.ok(rows.every((x) => x[0] === `${web.c.name} (containerd) eth0`), JSON.stringify(rows.map((x) => x[0])));
  assert.ok(rows.some((x) => x[1] === `/${web.path}`));
  assert.ok(rows.some((x) => (x[2] ?? '').includes(web.body)));
});

test('a CRI pod (two containers, one network namespace): --k8s-podname and -c of the other container both see one container\'s TLS connection, SYN and ClientHello, the owner comments naming that container', { skip: skipContainerd || noTshark, timeout: 120_000 }, async () => {
  assert.ok(criReady, "containerd's CRI plugin answers (it is enabled in Debian's default config)");
  const pod = { namespace: marker('shop'), name: marker('cart'), uid: randomUUID() };
  const p = await containers.runPod(pod, [{ name: 'client' }, { name: 'sidecar' }]);
  const [clientPid, sidecarPid] = p.pids;
  assert.ok(clientPid !== undefined && sidecarPid !== undefined);
  assert.equal(readlinkSync(`/proc/${clientPid}/ns/net`), readlinkSync(`/proc/${sidecarPid}/ns/net`), 'the containers share the pod\'s network namespace');
  const client: TestContainer = { runtime: 'containerd', name: p.containerIds[0]!, id: p.containerIds[0]!, pid: clientPid, namespace: 'k8s.io' };
  // the host, as the pod sees it: the CNI bridge's gateway (the server listens on every address)
  const gateway = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(await sh(`ip -4 -o addr show dev ${CNI_NETWORK.bridge}`))?.[1];
  assert.ok(gateway !== undefined, `no address on ${CNI_NETWORK.bridge}`);
  const server = await startTlsServer('0.0.0.0');
  try {
    const byPod = join(work, 'pod.pcapng');
    const bySidecar = join(work, 'pod-sidecar.pcapng');
    const filter = `tcp port ${server.port}`;
    const capPod = capture(['--k8s-namespace', pod.namespace, '--k8s-podname', pod.name, '-w', byPod, filter, '--timeout', '90']);
    const capSidecar = capture(['-c', 'sidecar', '--k8s-podname', pod.name, '-w', bySidecar, filter, '--timeout', '90']);
    await capPod.listening();
    await capSidecar.listening();
    assert.match(capPod.stderr, new RegExp(`listening on every interface of pod ${pod.namespace}/${pod.name} \\(containerd\\)`));
    const sni = `${marker('pod')}.test`;
    await containers.exec(client, ['curl', '-sk', '--http1.1', '--max-time', '10', '--resolve', `${sni}:${server.port}:${gateway}`, `https://${sni}:${server.port}/`]);
    assert.ok(server.seen.includes(sni));
    await connectionsFinished(clientPid, server.port);
    for (const cap of [capPod, capSidecar]) {
      const r = await cap.stop();
      assert.equal(r.code, 0, r.stderr);
    }
    const iface = `pod ${pod.namespace}/${pod.name} (containerd) eth0`;
    const sender = new RegExp(`^sender: pid \\d+ curl in client of pod ${pod.namespace}/${pod.name} \\(containerd\\)(;|$)`);
    for (const file of [byPod, bySidecar]) {
      const rows = await tsharkFields(file, ['frame.interface_description', 'ip.src', 'frame.comment']);
      assert.ok(rows.length >= 6, `${file}: a whole TLS connection: ${rows.length} packets`);
      assert.ok(rows.every((r) => r[0] === iface), JSON.stringify(rows.map((r) => r[0])));
      const syn = await tsharkFields(file, ['ip.src', 'frame.comment'], 'tcp.flags.syn==1 && tcp.flags.ack==0');
      assert.equal(syn.length, 1, `${file}: one SYN: ${JSON.stringify(syn)}`);
      assert.notEqual(syn[0]![0], gateway, 'the SYN leaves the pod');
      const hello = await tsharkFields(file, ['tls.handshake.extensions_server_name', 'frame.comment'], 'tls.handshake.type==1');
      assert.deepEqual(hello.map((r) => r[0]), [sni], `${file}: the ClientHello`);
      // the owner comments name the container that sent it, not its sibling that shares the namespace
      assert.match(hello[0]![1] ?? '', sender, `${file}: ${hello[0]![1]}`);
      const comments = rows.map((r) => r[2] ?? '').filter((c) => c !== '');
      assert.ok(comments.length > 0);
      assert.deepEqual(comments.filter((c) => /sidecar/.test(c)), [], 'the sibling sent nothing');
    }
  } finally {
    await server.close();
    removeTestCertificate();
    await containers.removePod(p.sandboxId);
  }
});

test('every pod of a namespace at once, each interface labelled; a pod started during the capture is added', { skip: skipDocker || noTshark, timeout: 120_000 }, async () => {
  const ns = marker('shop');
  const pod = (name: string): Record<string, string> => kubeletLabels({ namespace: ns, name, uid: marker('uid'), container: 'web' });
  const a = await webServer('docker', { labels: pod('cart') });
  const file = join(work, 'pods.pcapng');
  const cap = capture(['--k8s-namespace', ns, '-w', file, 'tcp port 8000', '--timeout', '90']);
  await cap.listening(1);
  const b = await webServer('docker', { labels: pod('checkout') });
  await cap.listening(2);
  assert.match(cap.stderr, new RegExp(`listening on every interface of pod ${ns}/checkout \\(docker\\)`));
  await curl(`http://${a.ip}:8000/${a.path}`);
  await curl(`http://${b.ip}:8000/${b.path}`);
  await connectionsFinished(a.c.pid, 8000);
  await connectionsFinished(b.c.pid, 8000);
  const r = await cap.stop();
  assert.equal(r.code, 0, r.stderr);
  const rows = await tsharkFields(file, ['frame.interface_description', 'http.request.uri']);
  const byIface = new Map<string, Set<string>>();
  for (const [desc = '', uri = ''] of rows) {
    const set = byIface.get(desc) ?? new Set();
    if (uri) set.add(uri);
    byIface.set(desc, set);
  }
  assert.deepEqual([...byIface.keys()].sort(), [`pod ${ns}/cart (docker) eth0`, `pod ${ns}/checkout (docker) eth0`]);
  assert.deepEqual([...(byIface.get(`pod ${ns}/cart (docker) eth0`) ?? [])], [`/${a.path}`]);
  assert.deepEqual([...(byIface.get(`pod ${ns}/checkout (docker) eth0`) ?? [])], [`/${b.path}`]);
});

test('--count stops after that many packets', { skip: skipDocker, timeout: 120_000 }, async () => {
  const web = await webServer('docker');
  const cap = capture(['-c', web.c.name, '--count', '3', 'tcp port 8000', '--timeout', '60']);
  await cap.listening();
  await curl(`http://${web.ip}:8000/${web.path}`);
  const r = await cap.finished;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.toString('utf8').trim().split('\n').length, 3);
  assert.match(r.stderr, /^3 packets captured$/m);
});

test('loopback inside a container: each packet once (the kernel drops the outgoing copy), as tcpdump -i lo', { skip: skipDocker, timeout: 120_000 }, async () => {
  const body = marker('lo');
  const c = await containers.run('docker', {
    name: uniqueName('tlscope-cap-lo'),
    command: ['sh', '-c', `mkdir -p /www && echo ${body} > /www/index.html && httpd -p 127.0.0.1:8002 -h /www && while true; do wget -q -O /dev/null http://127.0.0.1:8002/; sleep 0.2; done`],
  });
  const cap = capture(['-c', c.name, '-i', 'lo', '--count', '20', 'tcp port 8002', '--timeout', '60']);
  const r = await cap.finished;
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.toString('utf8').trim().split('\n');
  assert.equal(lines.length, 20);
  for (const l of lines) assert.match(l, new RegExp(`^\\S+ ${c.name} lo In IP 127\\.0\\.0\\.1\\.\\d+ > 127\\.0\\.0\\.1\\.\\d+: Flags`));
  assert.match(r.stderr, /^20 packets captured$/m);
});

test('no scope flag: the host\'s own namespace, like tcpdump', { skip: kernelSkip, timeout: 60_000 }, async () => {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const cap = capture(['-i', 'lo', '--count', '1', `udp port ${port}`, '--timeout', '30']);
  await cap.listening();
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.send('x', port, '127.0.0.1', () => r()));
  s.close();
  const r = await cap.finished;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout.toString('utf8'), new RegExp(`^\\S+ host lo In IP 127\\.0\\.0\\.1\\.\\d+ > 127\\.0\\.0\\.1\\.${port}: UDP, length 1\n$`));
  assert.match(r.stderr, /listening on lo of host/);
});

test('a bad filter is a usage error (exit 2) with libpcap\'s message', { timeout: 30_000 }, async () => {
  const cap = capture(['-c', 'whatever', 'tcp', 'port']);
  const r = await cap.finished;
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^tlscope: bad filter expression "tcp port": can't parse filter expression: syntax error$/m);
  const r2 = await capture(['port 99999']).finished;
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /bad filter expression "port 99999": illegal port number 99999 > 65535/);
});

test('an unknown container: tlscope waits for it, then says it never appeared at --timeout', { skip: kernelSkip, timeout: 60_000 }, async () => {
  const name = uniqueName('tlscope-nobody');
  const started = Date.now();
  const r = await capture(['-c', name, '--timeout', '2', 'tcp']).finished;
  assert.ok(Date.now() - started >= 2000);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`waiting for container ${name} to start \\(up to 2 s\\)`));
  assert.match(r.stderr, new RegExp(`container ${name} never appeared`));
  assert.match(r.stderr, /^0 packets captured$/m);
});

test('-i with an interface no target has: a warning per target, then an error', { skip: skipDocker, timeout: 60_000 }, async () => {
  const web = await webServer('docker');
  // Stopped once it has said so, not at a short --timeout: on a busy machine the container
  // index can take longer than that to find the container (then it "never appeared").
  const cap = capture(['-c', web.c.name, '-i', 'nosuch0', '--timeout', '90']);
  await waitUntil('the warning about nosuch0', () => /no interface "nosuch0"/.test(cap.stderr), 60_000, () => cap.stderr);
  const r = await cap.stop();
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /no interface "nosuch0"/);
  assert.match(r.stderr, /nothing was captured/);
});

test('nothing stays behind: the packet socket in the container\'s namespace goes with tlscope', { skip: skipDocker, timeout: 60_000 }, async () => {
  const web = await webServer('docker');
  const packetSockets = (): number => readFileSync(`/proc/${web.c.pid}/net/packet`, 'utf8').trim().split('\n').length - 1;
  const idle = packetSockets();
  const cap = capture(['-c', web.c.name, '--timeout', '60']);
  await cap.listening();
  assert.equal(packetSockets(), idle + 1, 'one socket in the container\'s namespace while capturing');
  const r = await cap.stop();
  assert.equal(r.code, 0, r.stderr);
  await waitUntil('the packet socket closed with tlscope', () => packetSockets() === idle, 30_000, () => readFileSync(`/proc/${web.c.pid}/net/packet`, 'utf8'));
});

/** An IPv4/UDP packet with a correct header checksum (UDP checksum 0: none). */
function udpPacket(src: string, dst: string, sport: number, dport: number, payload: string): Buffer {
  const data = Buffer.from(payload);
  const p = Buffer.alloc(28 + data.length);
  p.writeUInt8(0x45, 0);
  p.writeUInt16BE(p.length, 2);
  p.writeUInt16BE(0x4000, 6);
  p.writeUInt8(64, 8);
  p.writeUInt8(17, 9);
  Buffer.from(src.split('.').map(Number)).copy(p, 12);
  Buffer.from(dst.split('.').map(Number)).copy(p, 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += p.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  p.writeUInt16BE(~sum & 0xffff, 10);
  p.writeUInt16BE(sport, 20);
  p.writeUInt16BE(dport, 22);
  p.writeUInt16BE(8 + data.length, 24);
  data.copy(p, 28);
  return p;
}

test('a tun device (ARPHRD_NONE: raw IP, no link header): captured as raw IP, filtered by the raw-IP program', { skip: kernelSkip || noTshark, timeout: 60_000 }, async () => {
  const ns = `tlscope-tun-${process.pid}`;
  const dev = 'tlstun0';
  let tunFd: number | undefined;
  let holder: ChildProcess | undefined;
  await sh(`ip netns add ${ns}`);
  try {
    // the device is made in the namespace of the thread that asks for it
    tunFd = inNetns(`/run/netns/${ns}`, () => {
      const fd = openSync('/dev/net/tun', 'r+');
      const ifr = Buffer.alloc(40);
      ifr.write(dev, 0);
      ifr.writeUInt16LE(0x0001 | 0x1000, 16); // IFF_TUN | IFF_NO_PI
      if ((c.ioctl(fd, 0x400454ca /* TUNSETIFF */, ifr) as number) < 0) {
        closeSync(fd);
        throw new Error('TUNSETIFF failed');
      }
      return fd;
    });
    await sh(`ip -n ${ns} addr add 10.99.0.1/24 dev ${dev} && ip -n ${ns} link set ${dev} up`);
    holder = spawn('ip', ['netns', 'exec', ns, 'sleep', '120'], { stdio: 'ignore' });
    const file = join(work, 'tun.pcapng');
    const cap = capture(['--pid', String(holder.pid), '-i', dev, '-w', file, 'udp port 7777', '--timeout', '50']);
    await cap.listening();
    const body = marker('tun');
    for (const port of [7777, 7778, 7777]) writeSync(tunFd, udpPacket('10.99.0.2', '10.99.0.1', 5555, port, `${body}-${port}`));
    // A write to a tun device is received before write() returns; the counter shows all three
    // arrived (and the 7778 one between the two 7777 ones, which must both be captured).
    await waitUntil('3 packets received on the tun device', async () => {
      const link = JSON.parse(await sh(`ip -n ${ns} -s -j link show dev ${dev}`)) as { stats64?: { rx?: { packets?: number } } }[];
      return (link[0]?.stats64?.rx?.packets ?? 0) >= 3;
    });
    const r = await cap.stop();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^2 packets captured$/m);
    const rows = await tsharkFields(file, ['frame.interface_name', 'frame.encap_type', 'udp.dstport', 'data.text', 'frame.p2p_dir'], undefined, ['-o', 'data.show_as_text:TRUE']);
    assert.deepEqual(rows.map((x) => x.slice(0, 4)), [[dev, '7', '7777', `${body}-7777`], [dev, '7', '7777', `${body}-7777`]]);
    const info = await sh(`capinfos -M ${file}`);
    assert.match(info, /Encapsulation = Raw IPv4 \(129 - rawip4\)|Encapsulation = Raw IP/);
  } finally {
    if (tunFd !== undefined) closeSync(tunFd);
    holder?.kill('SIGKILL');
    await sh(`ip netns del ${ns}`).catch(() => undefined);
  }
});
