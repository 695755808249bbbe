// SPDX-License-Identifier: Apache-2.0
/**
 * Shared by the `trace sni` integration tests (no tests here): the real CLI as a child process
 * whose JSON lines are collected, a TLS server in this process that answers any SNI with a
 * throw-away self-signed certificate, a plain TCP sink, and small process helpers.
 *
 * Other tests (and other engineers' tracers) may run at the same time: every helper here lets
 * a test look only at events for its own names, ports and pids.
 */
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createTcpServer, connect as tcpConnect, type Server as TcpServer, type Socket, type AddressInfo } from 'node:net';
import { createServer as createTlsServer, connect as tlsConnect, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildClientHello } from '../../helpers/clienthello.js';
import type { OwnerHook } from '../../../src/gadgets/sni/gadget.js';
import { featureSkip, NEEDS } from '../../helpers/features.js';
import { CliProcess } from '../../helpers/cli.js';
import type { Ran } from '../../helpers/process.js';
import { sleep, waitUntil } from '../../helpers/wait.js';

export { CLI as BIN } from '../../helpers/cli.js';

/** One `-o json` line of `tlscope trace sni` (the fields the tests look at). */
export interface SniJson {
  timestamp: string;
  name?: string;
  proc: { pid: number; tid: number; comm: string; uid?: number; gid?: number; mntns_id?: number; netns_id?: number };
  src: string;
  dst: string;
  direction: 'in' | 'out';
  tlsVersion: string;
  alpn: string;
  ech: boolean;
  extensions: number;
  runtime?: { runtimeName?: string; containerName?: string; containerId?: string; containerImageName?: string };
  k8s?: { namespace?: string; podName?: string; containerName?: string; podUid?: string };
}

export { sleep, waitUntil } from '../../helpers/wait.js';

let nameCounter = 0;
/** A made-up server name unique to this process and call: `<label>-<pid>-<n>.sni.test`. */
export function testName(label: string): string {
  return `${label}-${process.pid}-${nameCounter++}.sni.test`;
}

// ---------------------------------------------------------------------------------------------
// the CLI

export class Tracer extends CliProcess {
  readonly events: SniJson[];
  /** names of the markers sent through marker() */
  readonly markers = new Set<string>();
  private readonly badLines: string[];

  /** Starts `tlscope trace sni -o json <args>` (add `--timeout` yourself for a self-stopping run). */
  constructor(args: readonly string[]) {
    const badLines: string[] = [];
    const events: SniJson[] = [];
    super(['trace', 'sni', '-o', 'json', ...args], {
      onLine: (line) => {
        try {
          events.push(JSON.parse(line) as SniJson);
        } catch {
          badLines.push(line);
        }
      },
    });
    this.events = events;
    this.badLines = badLines;
  }

  /** Lines on stdout that were not JSON (there must be none). */
  get nonJsonLines(): readonly string[] {
    return this.badLines;
  }

  byName(name: string): SniJson[] {
    return this.events.filter((e) => e.name === name);
  }

  /** Waits until `count` events carry `name` (and a little longer, so duplicates would show). */
  async waitForName(name: string, count = 1, ms = 30_000): Promise<SniJson[]> {
    await waitUntil(`${count} event(s) named ${name} (stderr: ${this.stderr.trim()})`, () => this.byName(name).length >= count, ms);
    return this.byName(name);
  }

  /**
   * Returns once the tracer reports handshakes: repeats `handshake(name)` with fresh names until
   * one is seen. JSON output has no header, so this is how a test knows the sockets are attached.
   */
  async ready(handshake: (name: string) => Promise<void>, ms = 60_000): Promise<void> {
    const deadline = Date.now() + ms;
    const tried: string[] = [];
    const seen = (): boolean => tried.some((n) => this.byName(n).length > 0); // a late event for an earlier try counts too
    for (;;) {
      if (this.child.exitCode !== null) throw new Error(`tracer exited early (${this.child.exitCode}): ${this.stderr}`);
      const name = testName('warmup');
      tried.push(name);
      await handshake(name).catch(() => undefined);
      const until = Date.now() + 600;
      while (Date.now() < until && !seen()) await sleep(20);
      if (seen()) return;
      if (Date.now() > deadline) throw new Error(`tracer saw no warm-up handshake within ${ms} ms: ${this.stderr}`);
    }
  }

  /**
   * A positive marker: sends one more hello under a fresh name with `send` and waits until its
   * event is out. Segments enter the one ring in the order they pass the socket filter, which
   * is before the receiver gets them; the tracer reads the ring in order and prints at once. So
   * once the marker is out, so is every event of traffic that was received before `send` was
   * called: counts taken then are final. A failed send is tried again under a new name.
   */
  async marker(send: (name: string) => Promise<unknown>, ms = 30_000): Promise<void> {
    const deadline = Date.now() + ms;
    const tried: string[] = [];
    const seen = (): boolean => tried.some((n) => this.byName(n).length > 0);
    let failure = '';
    while (!seen()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for a marker (${tried.join(', ')}; ${failure}; stderr: ${this.stderr.trim()})`);
      const name = testName('marker');
      tried.push(name);
      this.markers.add(name);
      const sent = await send(name).then(() => true, (e: unknown) => ((failure = String(e)), false));
      const until = sent ? deadline : Math.min(deadline, Date.now() + 500);
      while (!seen() && Date.now() <= until) await sleep(20);
    }
  }
}

let helloSeed = 0x5eed0000 + (process.pid % 0x10000) * 0x100;
/**
 * A ClientHello for `name` whose client random no earlier call here gave: the tracer reports a
 * random once (a copy seen elsewhere), so a fixed seed would be reported only the first time.
 */
export function freshHello(name: string): Uint8Array {
  return buildClientHello({ serverName: name, seed: helloSeed++ }).bytes;
}

// ---------------------------------------------------------------------------------------------
// TLS server

let certDir: string | undefined;
let certPair: { key: string; cert: string } | undefined;

/** A throw-away self-signed certificate (clients here never verify it). */
export function testCertificate(): { key: string; cert: string; keyPath: string; certPath: string } {
  if (certPair === undefined || certDir === undefined) {
    certDir = mkdtempSync(join(tmpdir(), 'tlscope-sni-cert-'));
    const keyPath = join(certDir, 'key.pem');
    const certPath = join(certDir, 'cert.pem');
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=sni.test'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
    certPair = { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8') };
  }
  return { ...certPair, keyPath: join(certDir, 'key.pem'), certPath: join(certDir, 'cert.pem') };
}

export function removeTestCertificate(): void {
  if (certDir !== undefined) rmSync(certDir, { recursive: true, force: true });
  certDir = undefined;
  certPair = undefined;
}

export interface TestTlsServer {
  readonly host: string;
  readonly port: number;
  /** SNI names the server saw (a check that the client really sent what the tracer reports). */
  readonly seen: string[];
  close(): Promise<void>;
}

/**
 * A TLS server on `host` (port chosen by the kernel) for any SNI and any ALPN the client offers.
 * It answers an HTTP request with `200 ok` and closes; a client that sends nothing is closed
 * after 3 s. Names starting with `slow-` get their answer after 2 s (keeps a container's
 * process alive while its event is enriched).
 */
export async function startTlsServer(host: string): Promise<TestTlsServer> {
  const { key, cert } = testCertificate();
  const seen: string[] = [];
  const sockets = new Set<TLSSocket>();
  const server: TlsServer = createTlsServer({
    key,
    cert,
    // HTTP/1.1 when offered (the answer below is HTTP/1.1), else whatever the client offers
    // first, so no client aborts for lack of ALPN overlap.
    ALPNCallback: ({ protocols }) => (protocols.includes('http/1.1') ? 'http/1.1' : protocols[0]),
  }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    const name = s.servername === false ? '' : s.servername ?? '';
    seen.push(name);
    const idle = setTimeout(() => s.destroy(), 3000);
    let answered = false;
    s.on('data', () => {
      if (answered) return;
      answered = true;
      const answer = (): void => {
        clearTimeout(idle);
        s.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
      };
      if (name.startsWith('slow-')) setTimeout(answer, 2000);
      else answer();
    });
    s.on('end', () => {
      clearTimeout(idle);
      s.end();
    });
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    host,
    port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A TLS handshake from this process (node's OpenSSL), then close. */
export function nodeHandshake(host: string, port: number, servername: string, alpn: string[] = ['x-warmup']): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host, port, servername, ALPNProtocols: alpn, rejectUnauthorized: false }, () => {
      s.end();
      resolve();
    });
    s.setTimeout(5000, () => s.destroy(new Error('handshake timeout')));
    s.on('error', reject);
    s.on('close', () => resolve());
  });
}

// ---------------------------------------------------------------------------------------------
// TCP sink (raw ClientHello bytes, no TLS)

export interface TcpSink {
  readonly host: string;
  readonly port: number;
  /** connections accepted so far */
  accepted(): number;
  close(): Promise<void>;
}

/** Accepts connections on `host` and reads and discards everything. */
export async function startTcpSink(host: string): Promise<TcpSink> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: TcpServer = createTcpServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.resume();
    s.on('end', () => s.end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  return {
    host,
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Connects to host:port, writes each chunk in turn (Nagle off, a pause between chunks so each
 * leaves as its own segment), waits `lingerMs`, closes. Returns the local port.
 */
export function sendChunks(host: string, port: number, chunks: readonly Uint8Array[], opts: { pauseMs?: number; lingerMs?: number; localAddress?: string } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host, port, noDelay: true, ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }) });
    s.on('error', reject);
    s.on('connect', async () => {
      const localPort = s.localPort ?? 0;
      try {
        for (const [i, c] of chunks.entries()) {
          if (i > 0 && (opts.pauseMs ?? 0) > 0) await sleep(opts.pauseMs ?? 0);
          await new Promise<void>((res, rej) => s.write(c, (err) => (err ? rej(err) : res())));
        }
        await sleep(opts.lingerMs ?? 20);
        s.end();
        s.once('close', () => resolve(localPort));
        s.resume();
      } catch (e) {
        s.destroy();
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// processes

/** The result of runProcess (kept under its old name). */
export type RunResult = Ran;
export { runProcess, sh } from '../../helpers/process.js';

/**
 * The tracer's own warnings and errors on stderr, leaving out those about a container
 * runtime's API (a daemon shared with other tests may be slow; that is not the tracer's doing).
 */
export function tracerComplaints(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /^tlscope: (warning|error)/.test(l) && !/^tlscope: warning: (docker|containerd|podman|cri-o)\b/.test(l));
}

/** The local port of "addr:port" / "[v6]:port". */
export function portOf(endpoint: string): number {
  return Number(endpoint.slice(endpoint.lastIndexOf(':') + 1));
}

// ---------------------------------------------------------------------------------------------
// owner hooks

/**
 * Why an owner hook's tests cannot run here, or false: by the feature rule of
 * test/helpers/features.ts, the tcp_sendmsg_locked tracepoint is excused only before Linux
 * 6.16; on a kernel that should have it, a failing probe fails (it is not a skip).
 */
export function ownerHookSkip(hook: OwnerHook): string | false {
  return hook === 'tcp_sendmsg_locked' ? featureSkip(...NEEDS.sni, 'tp_tcp_sendmsg_locked') : featureSkip(...NEEDS.sni);
}

/**
 * One `trace sni --host` for a whole test file, started in its before hook against a plain TCP
 * sink on loopback (ready once a warm-up hello of a fresh random is seen) and checked in its
 * after hook: exit 0, "N events shown, 0 lost", no complaint, only JSON lines. For the files
 * that send hand-made hellos over raw sockets.
 */
export function hostTracerOnSink(skip: string | false): { readonly tracer: Tracer; readonly sink: TcpSink } {
  let tracer: Tracer | undefined;
  let sink: TcpSink | undefined;
  before(async () => {
    if (skip !== false) return;
    sink = await startTcpSink('127.0.0.1');
    const s = sink;
    tracer = new Tracer(['--host', '--timeout', '600']);
    // a fresh client random per try: a late first try would make a second with the same random a duplicate
    await tracer.ready(async (name) => {
      await sendChunks(s.host, s.port, [freshHello(name)]);
    });
  });
  after(async () => {
    if (skip !== false) return;
    const r = await tracer?.stop();
    await sink?.close();
    assert.equal(r?.code, 0, r?.stderr);
    assert.match(r?.stderr ?? '', /tlscope: \d+ events? shown, 0 lost/);
    assert.deepEqual(tracerComplaints(r?.stderr ?? ''), []);
    assert.deepEqual(tracer?.nonJsonLines, []);
  });
  return {
    get tracer(): Tracer {
      if (tracer === undefined) throw new Error('the tracer starts in the before hook');
      return tracer;
    },
    get sink(): TcpSink {
      if (sink === undefined) throw new Error('the sink starts in the before hook');
      return sink;
    },
  };
}
