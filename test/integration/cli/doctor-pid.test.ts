// SPDX-License-Identifier: Apache-2.0
// `tlscope doctor -p PID` and `tlscope containers --tls` against real processes: what each
// reports is checked against the process's /proc/PID/maps, the tools' own version output and
// what `trace tls -p` actually attaches.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliProcess, runCliSync } from '../../helpers/cli.js';
import { featureSkip } from '../../helpers/features.js';
import { startProcess, stopChild, type Running } from '../../helpers/process.js';
import { notRoot } from '../../helpers/root.js';
import { ensureRuntimes, runtimeSkipReason, TestContainers, uniqueName, type TestContainer } from '../../helpers/runtimes.js';
import { waitUntil } from '../../helpers/wait.js';
import { buildGoApp, goSkipReason, makeWorkDir, startPyServer, type PyServer } from '../tls/helpers.js';
import { opensslStaticFixture } from '../stacks/toolchains.js';

interface Stack { stack: string; label: string; file: string; hook: boolean; probes: number; detail: string; reason?: string }
interface Report { pid: number; comm: string; stacks: Stack[] }

const has = (cmd: string, args: readonly string[]): boolean => spawnSync(cmd, [...args], { stdio: 'ignore' }).status === 0;
const javaModules = spawnSync('java', ['--list-modules'], { encoding: 'utf8' });
const javaSkip = javaModules.status !== 0 ? 'java is not installed (Debian package default-jdk-headless)'
  : /^jdk\.compiler@/m.test(javaModules.stdout) ? false : 'java has no jdk.compiler module (a JRE only): java Client.java cannot run (Debian package default-jdk-headless)';
const gnutlsSkip = has('gnutls-cli', ['--version']) ? false : 'gnutls-cli is not installed (Debian package gnutls-bin)';
const NSS_LIB = ['/usr/lib/x86_64-linux-gnu/libssl3.so', '/usr/lib64/libssl3.so'].find((p) => existsSync(p));

/** The files a process maps executable, from its maps (the evidence, read here without tlscope's code). */
function mappedExec(pid: number): string[] {
  const out = new Set<string>();
  for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
    const f = line.split(/\s+/);
    if (f[1]?.[2] === 'x' && f[5]?.startsWith('/')) out.add(f.slice(5).join(' '));
  }
  return [...out];
}

function mappedMatching(pid: number, re: RegExp): string {
  const hits = mappedExec(pid).filter((p) => re.test(p));
  assert.equal(hits.length, 1, `pid ${pid} maps one file matching ${re}: ${hits.join(', ')}`);
  return hits[0] as string;
}

const JAVA_CLIENT = `
import javax.net.ssl.*;
import java.io.*;
public class Client {
  public static void main(String[] a) throws Exception {
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(null, new TrustManager[]{ new X509TrustManager() {
      public void checkClientTrusted(java.security.cert.X509Certificate[] c, String t) {}
      public void checkServerTrusted(java.security.cert.X509Certificate[] c, String t) {}
      public java.security.cert.X509Certificate[] getAcceptedIssuers() { return new java.security.cert.X509Certificate[0]; }
    }}, null);
    SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket("127.0.0.1", Integer.parseInt(a[0]));
    s.startHandshake();
    OutputStream o = s.getOutputStream();
    o.write("GET /java HTTP/1.1\\r\\nHost: java.test\\r\\n\\r\\n".getBytes());
    o.flush();
    System.out.println("sent");
    s.getInputStream().read();
  }
}
`;

const PY_CLIENT = `
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[1]))), server_hostname='py.test')
print('connected', flush=True)
s.recv(1)
`;

let work: ReturnType<typeof makeWorkDir>;
let server: PyServer;
const running: Running[] = [];

before(async () => {
  if (notRoot) return;
  work = makeWorkDir('tlscope-doctor-pid-');
  server = await startPyServer(work, 'silent');
});

after(async () => {
  for (const r of running) await stopChild(r.child, 'SIGKILL');
  await server?.close();
  work?.remove();
});

function start(cmd: string, args: readonly string[], opts: { input?: string; cwd?: string } = {}): Running {
  const r = startProcess(cmd, args, { timeoutMs: 300_000, ...opts });
  running.push(r);
  return r;
}

async function waitMapped(r: Running, re: RegExp, what: string): Promise<void> {
  await waitUntil(`${what} to map ${re}`, () => {
    if (r.child.exitCode !== null) throw new Error(`${what} exited: ${r.errors()}`);
    return existsSync(`/proc/${r.pid}/maps`) && mappedExec(r.pid).some((p) => re.test(p));
  }, 120_000, () => r.errors());
}

function doctorJson(pids: readonly number[]): Map<number, Report> {
  const r = runCliSync(['doctor', '-p', pids.join(','), '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Report);
  assert.deepEqual(lines.map((l) => l.pid), [...pids]);
  return new Map(lines.map((l) => [l.pid, l]));
}

const hooked = (rep: Report | undefined): Stack[] => rep?.stacks.filter((s) => s.hook) ?? [];

test('doctor -p: curl, python ssl, gnutls-cli, node, Go, java and a process without TLS, against their maps and what trace tls attaches', { skip: notRoot || featureSkip('uprobe'), timeout: 600_000 }, async (t) => {
  // parts whose tool is missing are left out, and say so
  for (const [what, why] of [['gnutls-cli', gnutlsSkip], ['Go', goSkipReason()], ['java', javaSkip], ['NSS', NSS_LIB === undefined ? 'no libssl3.so (Debian package libnss3, which chromium brings in setup --test)' : false]] as const) {
    if (why !== false) t.diagnostic(`${what} part not run: ${why}`);
  }
  const port = String(server.port);
  const url = `https://shop.test:${port}/`;
  const curl = start('curl', ['-sk', '--max-time', '280', '--resolve', `shop.test:${port}:127.0.0.1`, url]);
  writeFileSync(join(work.dir, 'client.py'), PY_CLIENT);
  const py = start('python3', [join(work.dir, 'client.py'), port]);
  const node = start(process.execPath, ['-e', `const s = require('tls').connect(${port}, '127.0.0.1', { rejectUnauthorized: false, servername: 'node.test' }, () => console.log('connected')); s.on('error', (e) => { console.error(e); process.exit(1); });`]);
  const none = start('sleep', ['280']);
  const gnutls = gnutlsSkip === false ? start('gnutls-cli', ['--insecure', '-p', port, '127.0.0.1']) : undefined;
  let go: Running | undefined;
  let goVersion = '';
  if (goSkipReason() === false) {
    const app = buildGoApp(work.dir);
    goVersion = /go\d+\.\d+(\.\d+)?/.exec(app.version)?.[0] ?? '';
    go = start(app.path, ['hang', `127.0.0.1:${port}`], { input: '\n' });
  }
  let java: Running | undefined;
  if (javaSkip === false) {
    writeFileSync(join(work.dir, 'Client.java'), JAVA_CLIENT);
    java = start('java', [join(work.dir, 'Client.java'), port], { cwd: work.dir });
  }
  // OpenSSL 3 linked statically and stripped (the stacks tests' fixture); it waits for a line on stdin
  const staticBin = opensslStaticFixture('stripped');
  const stat = start(staticBin, ['client', port, Buffer.from('GET /static HTTP/1.1\r\n\r\n').toString('hex')]);
  const nss = NSS_LIB === undefined ? undefined : start('python3', ['-c', `import ctypes, sys; ctypes.CDLL(${JSON.stringify(NSS_LIB)}); print('loaded', flush=True); sys.stdin.read()`]);

  await waitMapped(curl, /libssl\.so/, 'curl');
  await waitMapped(py, /libssl\.so/, 'python3');
  await waitUntil('node connected', () => node.output().includes('connected'), 60_000, () => node.errors());
  if (gnutls !== undefined) await waitMapped(gnutls, /libgnutls\.so/, 'gnutls-cli');
  if (go !== undefined) await waitUntil('the Go client reading', () => go!.output().includes('reading'), 60_000, () => go!.errors());
  if (java !== undefined) await waitUntil('the java client sent its request', () => java!.output().includes('sent'), 180_000, () => java!.errors());
  if (nss !== undefined) await waitUntil('python loaded NSS', () => nss.output().includes('loaded'), 30_000, () => nss.errors());

  await waitMapped(stat, /sslpeer-static/, 'the static OpenSSL program');
  const procs = [curl, py, node, none, stat, gnutls, go, java, nss].filter((r): r is Running => r !== undefined);
  const pids = procs.map((r) => r.pid);
  const rep = doctorJson(pids);
  const opensslVersion = /OpenSSL (\d+\.\d+\.\d+\S*)/.exec(execFileSync('openssl', ['version'], { encoding: 'utf8' }))?.[1];

  // curl and python: the distribution's libssl, the one their maps hold, with its version; and
  // whatever GnuTLS they map besides (Debian's curl does, through librtmp)
  for (const [r, what] of [[curl, 'curl'], [py, 'python3']] as const) {
    const lib = mappedMatching(r.pid, /\/libssl\.so\.\d+$/);
    const gnutlsLibs = mappedExec(r.pid).filter((p) => /\/libgnutls\.so\.\d+/.test(p)).map((p) => ['gnutls', p]);
    const h = hooked(rep.get(r.pid));
    assert.deepEqual(h.map((s) => [s.stack, s.file]).sort(), [...gnutlsLibs, ['openssl', lib]].sort(), `${what}: ${JSON.stringify(rep.get(r.pid))}`);
    const o = h.find((s) => s.stack === 'openssl');
    assert.equal(o?.label, `OpenSSL ${opensslVersion} (${lib.split('/').at(-1)})`);
    assert.ok((o?.probes ?? 0) >= 4);
  }
  // node: its OpenSSL is built in (no libssl in its maps), the version node itself reports
  const nodeExe = readlinkSync(`/proc/${node.pid}/exe`);
  assert.ok(!mappedExec(node.pid).some((p) => /libssl\.so/.test(p)), 'this node carries OpenSSL in its executable');
  assert.deepEqual(hooked(rep.get(node.pid)).map((s) => [s.stack, s.file, s.label]), [['openssl', nodeExe, `node's built-in OpenSSL ${process.versions.openssl}`]]);
  // static and stripped: found without symbols; a version only where the program linked in
  // OpenSSL's version string (this one does not: OpenSSL_version is not called)
  const st = hooked(rep.get(stat.pid));
  const staticVersion = /OpenSSL (\d+\.\d+\.\d+\S*) /.exec(readFileSync(staticBin).toString('latin1'))?.[1];
  assert.deepEqual(st.map((s) => [s.stack, s.file, s.label]), [['openssl', staticBin, `OpenSSL ${staticVersion === undefined ? '' : `${staticVersion} `}linked statically (in ${staticBin.split('/').at(-1)})`]]);
  assert.match(st[0]?.detail ?? '', /without symbols: /);
  // no TLS at all: nothing, and the columns say so
  assert.deepEqual(rep.get(none.pid)?.stacks, []);
  const cols = runCliSync(['doctor', '-p', String(none.pid)]);
  assert.equal(cols.code, 0);
  assert.match(cols.stdout, new RegExp(`^${none.pid}\\s+sleep\\s+-\\s+-\\s+no TLS library mapped`, 'm'));
  if (gnutls !== undefined) {
    const lib = mappedMatching(gnutls.pid, /\/libgnutls\.so(\.\d+)+$/);
    assert.deepEqual(hooked(rep.get(gnutls.pid)).map((s) => [s.stack, s.file]), [['gnutls', lib]]);
  }
  if (go !== undefined) {
    const h = hooked(rep.get(go.pid));
    assert.deepEqual(h.map((s) => [s.stack, s.file]), [['go', readlinkSync(`/proc/${go.pid}/exe`)]]);
    assert.match(h[0]?.label ?? '', new RegExp(`^Go crypto/tls ${goVersion.replace(/\./g, '\\.')} `));
  }
  if (java !== undefined) {
    const jvm = mappedMatching(java.pid, /\/libjvm\.so$/);
    const r = rep.get(java.pid);
    assert.deepEqual(hooked(r), [], 'nothing in a JVM is hooked');
    const j = r?.stacks.find((s) => s.stack === 'java');
    assert.equal(j?.file, jvm);
    assert.match(j?.reason ?? '', /^java: plaintext needs an in-process agent; not done/);
    const release = readFileSync(join(jvm, '../../../release'), 'utf8');
    assert.equal(j?.label, `JVM ${/JAVA_VERSION="([^"]+)"/.exec(release)?.[1]} (libjvm.so)`);
    const c = runCliSync(['doctor', '-p', String(java.pid)]);
    assert.match(c.stdout, /JVM \S+ \(libjvm\.so\)\s+\S+libjvm\.so\s+no: java: plaintext needs an in-process agent; not done/);
  }
  if (nss !== undefined) {
    const n = rep.get(nss.pid)?.stacks.filter((s) => s.stack === 'nss') ?? [];
    // libssl3 (what users look for: no probes of its own) and libnspr4, where its plaintext is read
    const ssl3 = mappedMatching(nss.pid, /\/libssl3\.so$/);
    const nspr = mappedMatching(nss.pid, /\/libnspr4\.so$/);
    assert.deepEqual(n.map((s) => [s.file, s.hook, s.probes]).sort(), [[nspr, true, 8], [ssl3, true, 0]].sort());
    assert.match(n.find((s) => s.file === ssl3)?.label ?? '', /^NSS 3\.\d+(\.\d+)? \(libssl3\.so\)$/);
    assert.match(n.find((s) => s.file === nspr)?.label ?? '', /^NSS's I\/O layer: NSPR 4\.\d+ \(libnspr4\.so\)$/);
    const c = runCliSync(['doctor', '-p', String(nss.pid)]);
    assert.match(c.stdout, /NSS \S+ \(libssl3\.so\)\s+\S+libssl3\.so\s+yes \(its plaintext is read at NSPR's PR_Write\/PR_Read\/PR_Send\/PR_Recv/);
  }

  // what trace tls -p attaches for the same processes is exactly what doctor said it would
  // (a stack hooked through another file, NSS's libssl3 through libnspr4, has no probes of its own)
  const want = new Set(pids.flatMap((pid) => hooked(rep.get(pid)).filter((s) => s.probes > 0).map((s) => `${pid} ${s.stack === 'boringssl' ? 'openssl' : s.stack} ${s.file}`)));
  const tracer = new CliProcess(['trace', 'tls', '-o', 'json', '-v', '-p', pids.join(','), '--timeout', '120']);
  try {
    const probing = (): Set<string> => new Set([...tracer.stderr.matchAll(/probing (\w+) in \/proc\/(\d+)\/root(\S+) for pid (\d+)/g)].map((m) => `${m[4]} ${m[1]} ${m[3]}`));
    await waitUntil('trace tls to probe every file doctor named', () => {
      if (tracer.exited) throw new Error(tracer.stderr);
      return [...want].every((w) => probing().has(w)) && /tlscope: tracing \d+ file/.test(tracer.stderr);
    }, 120_000, () => tracer.stderr);
    assert.deepEqual([...probing()].sort(), [...want].sort());
    if (java !== undefined) assert.match(tracer.stderr, new RegExp(`TLS library found, no hook: java in /proc/${java.pid}/root\\S+libjvm\\.so: java: plaintext needs an in-process agent; not done`));
    assert.doesNotMatch(tracer.stderr, /TLS library found, no hook: nss/);
  } finally {
    await tracer.stop();
  }
});

test('doctor -p with a pid that does not exist, or is not a pid: a clear error and the next step', { skip: notRoot }, async () => {
  const gone = await startProcess('true', []).done;
  await waitUntil('the process to be gone', () => !existsSync(`/proc/${gone.pid}`), 5000);
  const r = runCliSync(['doctor', '-p', String(gone.pid)]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, new RegExp(`no process ${gone.pid} on this host`));
  assert.match(r.stderr, /hint: .*ps -eo pid,comm.*tlscope containers --tls/);
  const bad = runCliSync(['doctor', '-p', 'web']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /-p web: not a process id/);
});

test('--help of doctor and containers names -p and --tls', () => {
  const h = runCliSync(['doctor', '--help']).stdout;
  assert.match(h, /tlscope doctor -p PID/);
  assert.match(h, /java: plaintext needs an in-process agent/);
  assert.match(h, /-p, --pid PID/);
  assert.match(runCliSync(['containers', '--help']).stdout, /--tls/);
});

const dockerSkip = notRoot || runtimeSkipReason('docker');

test('containers --tls: a docker container\'s processes, openssl s_server on its own libssl and a shell without TLS', { skip: dockerSkip, timeout: 300_000 }, async () => {
  const containers = new TestContainers(await ensureRuntimes());
  const name = uniqueName('tlscope-dp');
  let c: TestContainer | undefined;
  try {
    c = await containers.run('docker', { name });
    execFileSync('docker', ['cp', work.cert, `${c.id}:/tmp/c.pem`]);
    execFileSync('docker', ['cp', work.key, `${c.id}:/tmp/k.pem`]);
    execFileSync('docker', ['exec', '-d', c.id, 'openssl', 's_server', '-accept', '127.0.0.1:8443', '-cert', '/tmp/c.pem', '-key', '/tmp/k.pem', '-www', '-quiet']);
    const mntns = statSync(`/proc/${c.pid}/ns/mnt`).ino;
    const inside = (): number[] => readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
      try {
        return statSync(`/proc/${pid}/ns/mnt`).ino === mntns;
      } catch {
        return false;
      }
    });
    let sServer = 0;
    await waitUntil('s_server in the container', () => {
      sServer = inside().find((pid) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'openssl' && mappedExec(pid).some((p) => /libssl\.so/.test(p))) ?? 0;
      return sServer > 0;
    }, 30_000);
    const lib = mappedMatching(sServer, /\/libssl\.so\.\d+$/);
    const r = runCliSync(['containers', '--tls', '-r', 'docker', '-c', name, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { runtime: { containerName: string }; tls: Report[] });
    assert.equal(rows.length, 1, r.stdout);
    const tls = rows[0]?.tls ?? [];
    assert.deepEqual(tls.map((p) => p.pid).sort((a, b) => a - b), inside().sort((a, b) => a - b), 'every process of the container, none else');
    const s = tls.find((p) => p.pid === sServer);
    assert.deepEqual(hooked(s).map((x) => [x.stack, x.file]), [['openssl', lib]]);
    assert.deepEqual(tls.find((p) => p.pid === c!.pid)?.stacks, [], 'its first process (busybox sleep) maps no TLS');
    const cols = runCliSync(['containers', '--tls', '-r', 'docker', '-c', name]);
    assert.equal(cols.code, 0, cols.stderr);
    assert.match(cols.stdout, /TLS\s*$/m);
    assert.match(cols.stdout, new RegExp(`openssl\\[${sServer}\\]: OpenSSL \\S+ \\(libssl\\.so\\.\\d+\\) hooked`));
  } finally {
    if (c !== undefined) await containers.remove(c);
    await containers.cleanup();
  }
});
