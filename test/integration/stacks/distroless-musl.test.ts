// SPDX-License-Identifier: Apache-2.0
// trace tls finds a container's TLS library by the process's mappings and its root
// (/proc/PID/maps, /proc/PID/root), not by ld.so.cache, which these images do not have:
// - distroless: a root with only the program (tlsget, built against the host's libssl.so.3),
//   its `ldd` closure with the loader, libssl/libcrypto at a directory no loader searches by
//   itself (/opt/tls/lib, found through LD_LIBRARY_PATH in the image's env); no shell, no /etc.
// - musl: the loader /lib/ld-musl-x86_64.so.1, tlsget linked by musl-gcc against an OpenSSL 3
//   built with musl-gcc (toolchains.ts muslOpenSsl), libssl/libcrypto at /opt/openssl-musl/lib
//   (the program's RPATH; musl's loader does not look there by itself).
// Each container's first act is its one request to a TLS server of this test (on the host,
// reached at the container's gateway); `trace tls -r RT -c NAME` must show the request and
// the reply byte-exact, under the container's name. With the container still there, `tlscope
// doctor -p PID` and `containers --tls` must name the musl-built OpenSSL as hooked.
// Runtimes: containerd (ctr run --rm --cni), docker and podman (run --rm), each that is installed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { featureSkip, NEEDS } from '../../helpers/features.js';
import { notRoot } from '../../helpers/root.js';
import { archiveRootfs, sharedLibraries } from '../../helpers/image.js';
import { ensureRuntimes, loadBuiltImage, runtimeSkipReason, STATE_DIR, TestContainers, uniqueName, type RuntimeEnvironment, type TestRuntime } from '../../helpers/runtimes.js';
import { OWNER_LABEL, OWNER_START_LABEL, processStart } from '../../helpers/leftovers.js';
import { runCliSync } from '../../helpers/cli.js';
import { waitUntil } from '../../helpers/wait.js';
import { CliTracer, dataOf, makeWorkDir, type TlsJson } from '../tls/helpers.js';
import { gatewayOf } from '../start/helpers.js';
import { MUSL_OPENSSL_DIR, muslOpenSsl, tlsgetGlibc, tlsgetMusl } from './toolchains.js';

const kernelSkip = featureSkip(...NEEDS.tls);
const RUNTIMES = (['containerd', 'docker', 'podman'] as const).filter((r) => runtimeSkipReason(r) === false);
const runtimeSkip = RUNTIMES.length === 0 ? `no container runtime: ${runtimeSkipReason('containerd')}; ${runtimeSkipReason('docker')}; ${runtimeSkipReason('podman')}` : false;
const muslSkip = (() => {
  try {
    readFileSync('/usr/bin/musl-gcc');
    return false;
  } catch {
    return 'musl-gcc is not installed (Debian package musl-tools)';
  }
})();

const MUSL_LIB_DIR = MUSL_OPENSSL_DIR;
const GLIBC_LIB_DIR = '/opt/tls/lib';

let env: RuntimeEnvironment;
let containers: TestContainers;
let work: ReturnType<typeof makeWorkDir>;
let stage: string;
let server: ReplyServer;

before(async () => {
  if (notRoot || kernelSkip !== false || runtimeSkip !== false) return;
  env = await ensureRuntimes();
  containers = new TestContainers(env);
  work = makeWorkDir('tlscope-stacks-distroless-');
  stage = mkdtempSync(join(tmpdir(), 'tlscope-rootfs-'));
  server = await replyServer(work);
});

after(async () => {
  await server?.close();
  await containers?.cleanup();
  work?.remove();
  if (stage !== undefined) rmSync(stage, { recursive: true, force: true });
});

// ---- the TLS server on the host: reads one request head, answers `reply`, closes ----

interface ReplyServer {
  port: number;
  /** what the next connection is answered */
  reply: Buffer;
  /** the request heads received */
  requests: Buffer[];
  close(): Promise<void>;
}

async function replyServer(w: { cert: string; key: string }): Promise<ReplyServer> {
  const state: ReplyServer = { port: 0, reply: Buffer.alloc(0), requests: [], close: () => Promise.resolve() };
  const srv: Server = createServer({ cert: readFileSync(w.cert), key: readFileSync(w.key) }, (s: TLSSocket) => {
    let got = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.includes('\r\n\r\n')) {
        state.requests.push(got);
        s.end(state.reply);
      }
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => srv.listen(0, '0.0.0.0', resolve));
  state.port = (srv.address() as { port: number }).port;
  state.close = () => new Promise<void>((resolve) => srv.close(() => resolve()));
  return state;
}

// ---- root filesystems ----

function put(root: string, from: string, to: string, mode = 0o755): void {
  mkdirSync(join(root, dirname(to)), { recursive: true });
  copyFileSync(from, join(root, to));
  chmodSync(join(root, to), mode);
}

/** distroless: /app/tlsget, libc and the loader where `ldd` found them, libssl/libcrypto in /opt/tls/lib. */
function distrolessRoot(): string {
  const root = join(stage, 'distroless');
  rmSync(root, { recursive: true, force: true });
  const bin = tlsgetGlibc();
  put(root, bin, '/app/tlsget');
  for (const lib of sharedLibraries(bin)) {
    put(root, lib, /^lib(ssl|crypto)\.so/.test(basename(lib)) ? `${GLIBC_LIB_DIR}/${basename(lib)}` : lib);
  }
  return root;
}

/** musl: its loader, /app/tlsget (RPATH /opt/openssl-musl/lib) and the musl-built libssl/libcrypto there. */
function muslRoot(): string {
  const root = join(stage, 'musl');
  rmSync(root, { recursive: true, force: true });
  const ossl = muslOpenSsl();
  put(root, tlsgetMusl(MUSL_LIB_DIR), '/app/tlsget');
  put(root, '/lib/ld-musl-x86_64.so.1', '/lib/ld-musl-x86_64.so.1');
  for (const l of ['libssl.so.3', 'libcrypto.so.3']) put(root, join(ossl.lib, l), `${MUSL_LIB_DIR}/${l}`);
  return root;
}

// ---- one container, its first act the request ----

const OWNER = [`${OWNER_LABEL}=${process.pid}`, `${OWNER_START_LABEL}=${processStart(process.pid) ?? ''}`];

interface FirstAct {
  name: string;
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** removes the container (it lingers after its request) */
  stop(): Promise<void>;
}

/** `docker run --rm` / `ctr run --rm --cni` in the foreground, as a user types it. */
function runFirstAct(runtime: TestRuntime, ref: string, name: string, command: readonly string[]): FirstAct {
  const labels = OWNER.flatMap((l) => ['--label', l]);
  const [cmd, args] = runtime === 'containerd'
    ? ['ctr', ['run', '--rm', '--cni', ...labels, ref, name, ...command]]
    : [runtime, ['run', '--rm', '--name', name, ...labels, ref, ...command]];
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    name, child, stdout: () => out, stderr: () => err,
    async stop() {
      const quiet = (c: string, a: string[]): Promise<void> => new Promise((resolve) => spawn(c, a, { stdio: 'ignore' }).once('exit', () => resolve()).once('error', () => resolve()));
      if (runtime === 'containerd') await quiet('ctr', ['task', 'kill', '-s', 'SIGKILL', name]);
      else await quiet(runtime, ['rm', '-f', name]);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
      if (runtime === 'containerd') await quiet('ctr', ['container', 'delete', name]);
    },
  };
}

/** The host pid of a running container's first process. */
function containerPid(runtime: TestRuntime, name: string): number {
  if (runtime === 'containerd') return Number(readFileSync(`/run/containerd/io.containerd.runtime.v2.task/default/${name}/init.pid`, 'utf8').trim());
  return Number(execFileSync(runtime, ['inspect', '-f', '{{.State.Pid}}', name], { encoding: 'utf8', timeout: 30_000 }).trim());
}

function streamOf(events: readonly TlsJson[], name: string, direction: 'read' | 'write'): Buffer {
  return Buffer.concat(events.filter((e) => e.runtime?.containerName === name && e.direction === direction).map(dataOf));
}

interface Case {
  kind: 'distroless' | 'musl';
  root: () => string;
  env: string[];
  /** the libssl path inside the container */
  libssl: string;
}

const CASES: Record<'distroless' | 'musl', Case> = {
  distroless: { kind: 'distroless', root: distrolessRoot, env: [`LD_LIBRARY_PATH=${GLIBC_LIB_DIR}`], libssl: `${GLIBC_LIB_DIR}/libssl.so.3` },
  musl: { kind: 'musl', root: muslRoot, env: [], libssl: `${MUSL_LIB_DIR}/libssl.so.3` },
};

async function firstActCase(c: Case, runtime: TestRuntime, diagnostic: (m: string) => void): Promise<void> {
  const t0 = Date.now();
  const built = archiveRootfs(c.root(), STATE_DIR, `tlscope-test-${c.kind}`, { env: c.env, cmd: ['/app/tlsget'], createdBy: `tlscope test harness: ${c.kind} root (tlsget and its libraries only)` });
  const ref = await loadBuiltImage(runtime, built);
  diagnostic(`${c.kind}: image ${ref} ready in ${Date.now() - t0} ms`);
  // a busybox container on the same network: the gateway to the host, and the tracer's warm-up
  const warm = await containers.run(runtime, { name: uniqueName(`dl-warm-${c.kind[0]}`), ...(runtime === 'containerd' ? { cni: true } : {}) });
  const gateway = await gatewayOf(containers, warm);
  const name = uniqueName(`dl-${c.kind}-${runtime[0]}`);
  const tracer = new CliTracer(['-r', runtime, '-c', `${warm.name},${name}`, '--timeout', '600']);
  let act: FirstAct | undefined;
  try {
    await tracer.ready();
    await waitUntil('a warm-up request traced', async () => {
      const path = `/warm-${Date.now()}`;
      server.reply = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
      await containers.exec(warm, ['curl', '-sk', '--http1.1', '--max-time', '10', '--resolve', `warm.test:${server.port}:${gateway}`, `https://warm.test:${server.port}${path}`]).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 300));
      return tracer.events.some((e) => dataOf(e).includes(path));
    }, 60_000);

    const path = `/${c.kind}-${randomBytes(6).toString('hex')}`;
    const req = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${c.kind}.test\r\nConnection: close\r\n\r\n`);
    const body = randomBytes(30_000);
    server.reply = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`), body]);
    const reply = server.reply;
    act = runFirstAct(runtime, ref, name, ['/app/tlsget', gateway, String(server.port), `${c.kind}.test`, req.toString('hex'), 'linger']);
    await waitUntil(`${name} got its reply`, () => act!.stdout().includes('\n') || act!.child.exitCode !== null, 60_000)
      .catch((e: Error) => { throw new Error(`${e.message}; its stderr: ${act!.stderr()}`); });
    assert.equal(act.stdout(), `reply ${reply.toString('hex')}\n`, `the container's program got the reply (stderr: ${act.stderr()})`);
    assert.ok(server.requests.some((r) => r.equals(req)), 'the server got the request');
    const ev = tracer.events;
    await waitUntil('its bytes traced', () => streamOf(ev, name, 'write').length >= req.length && streamOf(ev, name, 'read').length >= reply.length, 20_000)
      .catch((e: Error) => {
        const said = tracer.stderr.split('\n').filter((l) => !l.startsWith('{')).slice(-15).join('\n');
        throw new Error(`${e.message}: write ${streamOf(ev, name, 'write').length}/${req.length}, read ${streamOf(ev, name, 'read').length}/${reply.length} bytes; the tracer said:\n${said}`);
      });
    assert.ok(streamOf(ev, name, 'write').equals(req), 'the request, byte-exact, under the container\'s name');
    assert.ok(streamOf(ev, name, 'read').equals(reply), 'the reply, byte-exact, under the container\'s name');
    const mine = ev.filter((e) => e.runtime?.containerName === name);
    const pid = containerPid(runtime, name);
    for (const e of mine) {
      assert.equal(e.source, 'openssl');
      assert.equal(e.proc.pid, pid, 'the container\'s program');
      assert.equal(e.library, c.libssl);
      assert.equal(e.runtime?.runtimeName, runtime);
      assert.equal(e.remote, `${gateway}:${server.port}`);
    }
    diagnostic(`${c.kind} on ${runtime}: ${mine.length} events, ${req.length} bytes written, ${reply.length} read, all traced (${mine.map((e) => `${e.function}@${e.tupleSource}`).join(' ')})`);

    // doctor and containers --tls name the library as hooked
    const doctor = runCliSync(['doctor', '-p', String(pid), '-o', 'json']);
    assert.equal(doctor.code, 0, doctor.stderr);
    const report = JSON.parse(doctor.stdout.trim().split('\n')[0] ?? '{}') as { pid: number; stacks: { stack: string; label: string; file: string; hook: boolean }[] };
    const hooked = report.stacks.filter((s) => s.hook);
    assert.deepEqual(hooked.map((s) => [s.stack, s.file]), [['openssl', c.libssl]], doctor.stdout);
    if (c.kind === 'musl') assert.equal(hooked[0]?.label, `OpenSSL ${muslOpenSsl().version} (libssl.so.3)`, 'the musl build, named by its version');
    const cols = runCliSync(['containers', '--tls', '-r', runtime, '-c', name]);
    assert.equal(cols.code, 0, cols.stderr);
    assert.match(cols.stdout, new RegExp(`tlsget\\[${pid}\\]: OpenSSL \\S+ \\(libssl\\.so\\.3\\) hooked`), cols.stdout);
    diagnostic(`${c.kind} on ${runtime}: doctor -p ${pid}: ${hooked[0]?.label} hooked; containers --tls: ${cols.stdout.trim().split('\n').at(-1)}`);
  } finally {
    await act?.stop();
    await containers.remove(warm);
    const r = await tracer.stop();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /tlscope: \d+ events? shown, 0 lost/);
  }
}

for (const runtime of RUNTIMES.length > 0 ? RUNTIMES : (['containerd'] as const)) {
  test(`distroless root (program + ldd closure, libssl via LD_LIBRARY_PATH, no ld.so.cache) on ${runtime}: first act traced`, { skip: kernelSkip || runtimeSkip, timeout: 300_000 }, async (t) => {
    await firstActCase(CASES.distroless, runtime, (m) => t.diagnostic(m));
  });
  test(`musl root (ld-musl, musl-built OpenSSL via RPATH) on ${runtime}: first act traced, doctor names it hooked`, { skip: kernelSkip || runtimeSkip || muslSkip, timeout: 1_800_000 }, async (t) => {
    await firstActCase(CASES.musl, runtime, (m) => t.diagnostic(m));
  });
}
