// SPDX-License-Identifier: Apache-2.0
/**
 * What the trace tls tests share: a certificate for made-up *.test names, a small python TLS
 * server that logs the raw requests it gets and answers with bytes the test knows, a Go TLS
 * client/server built here with the system's Go (standard library only, caches in a temp
 * dir, no network), the real CLI as a tracer (-o json), and the gadget in-process for tests
 * that look at kernel maps. Everything listens on loopback.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { TlsGadget, type TlsEvent, type TlsOptions } from '../../../src/gadgets/tls/gadget.js';
import { ProcessScope } from '../../../src/gadgets/tls/process-scope.js';
import type { ContainerSelector } from '../../../src/containers/selector.js';

export const CLI = fileURLToPath(new URL('../../../src/cli/bin.js', import.meta.url));

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function until(what: string, cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** A temp dir with a self-signed certificate for *.test. */
export function makeWorkDir(prefix: string): { dir: string; cert: string; key: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=shop.test', '-addext', 'subjectAltName=DNS:shop.test,DNS:*.test'], { stdio: 'ignore' });
  return { dir, cert, key, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

const SERVER_PY = `
import socket, ssl, sys, threading
mode, host, cert, key = sys.argv[1:5]
arg = sys.argv[5] if len(sys.argv) > 5 else ''
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ls = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((host, 0))
ls.listen(64)
print('port', ls.getsockname()[1], flush=True)
BODY = b'hello from the test server\\n'
def handle(c):
    try:
        s = ctx.wrap_socket(c, server_side=True)
        if mode == 'silent':
            print('accepted', s.getpeername()[1], flush=True)
            threading.Event().wait()  # never read, never answer
            return
        buf = b''
        while True:
            while b'\\r\\n\\r\\n' not in buf:
                d = s.recv(65536)
                if not d:
                    return
                buf += d
            head, _, buf = buf.partition(b'\\r\\n\\r\\n')
            print('req', s.getpeername()[1], (head + b'\\r\\n\\r\\n').hex(), flush=True)
            body = open(arg, 'rb').read() if mode == 'file' else BODY
            s.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: %d\\r\\n\\r\\n' % len(body) + body)
    except Exception as e:
        print('err', repr(e), flush=True)
    finally:
        c.close()
while True:
    c, _ = ls.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
`;

/** The response the python server sends for a body. */
export function pyResponse(body: Buffer = Buffer.from('hello from the test server\n')): Buffer {
  return Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
}

export interface PyServer {
  port: number;
  pid: number;
  /** raw request heads received, by client port */
  requests: { clientPort: number; bytes: Buffer }[];
  lines: string[];
  close(): Promise<void>;
}

export async function startPyServer(work: { dir: string; cert: string; key: string }, mode: 'fixed' | 'file' | 'silent' = 'fixed', opts: { host?: string; file?: string } = {}): Promise<PyServer> {
  const script = join(work.dir, 'server.py');
  if (!existsSync(script)) writeFileSync(script, SERVER_PY);
  const child = spawn('python3', [script, mode, opts.host ?? '127.0.0.1', work.cert, work.key, ...(opts.file === undefined ? [] : [opts.file])], { stdio: ['ignore', 'pipe', 'inherit'] });
  const requests: PyServer['requests'] = [];
  const lines: string[] = [];
  let port = 0;
  const rl = createInterface({ input: child.stdout! });
  rl.on('line', (l) => {
    lines.push(l);
    const f = l.split(' ');
    if (f[0] === 'port') port = Number(f[1]);
    if (f[0] === 'req') requests.push({ clientPort: Number(f[1]), bytes: Buffer.from(f[2] ?? '', 'hex') });
  });
  await until('the python TLS server', () => port > 0 || child.exitCode !== null, 30_000);
  if (port === 0) throw new Error('python TLS server did not start');
  return { port, pid: child.pid ?? 0, requests, lines, close: () => stopChild(child) };
}

export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  await Promise.race([done, sleep(5000)]);
}

export interface Ran {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; `input` goes to its stdin (after `inputDelayMs`). */
export interface Running {
  pid: number;
  done: Promise<Ran>;
  child: ChildProcess;
  /** standard output so far */
  output(): string;
}

export function runProcess(cmd: string, args: readonly string[], opts: { input?: string; inputDelayMs?: number; timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Running {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }), ...(opts.env === undefined ? {} : { env: opts.env }) });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin!.on('error', () => {});
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  if (opts.input !== undefined) {
    const input = opts.input;
    setTimeout(() => child.stdin!.end(input), opts.inputDelayMs ?? 0);
  }
  const done = new Promise<Ran>((resolve) => {
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // let stdout drain
      setImmediate(() => resolve({ pid: child.pid ?? 0, code, signal, stdout, stderr }));
    });
  });
  return { pid: child.pid ?? 0, done, child, output: () => stdout };
}

// ---- Go ----

const GO_APP = `package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	switch os.Args[1] {
	case "server":
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintf(w, "go server says hi to %s\\n", r.URL.Path)
		})
		srv := &http.Server{Addr: os.Args[2], TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){}}
		if err := srv.ListenAndServeTLS(os.Args[3], os.Args[4]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "client":
		bufio.NewReader(os.Stdin).ReadString('\\n') // wait for the go signal
		// a server started just before may not listen yet: wait for it (plain TCP, no TLS)
		for i := 0; i < 300; i++ {
			if probe, err := net.Dial("tcp", os.Args[2]); err == nil {
				probe.Close()
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "shop.test"}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
		c := &http.Client{Transport: tr}
		for _, p := range strings.Split(os.Args[3], ",") {
			resp, err := c.Get("https://" + os.Args[2] + p)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fmt.Printf("%d %d\\n", resp.StatusCode, len(b))
		}
	case "hang":
		// connects, then blocks in (*Conn).Read on a server that never answers
		bufio.NewReader(os.Stdin).ReadString('\\n')
		c, err := tls.Dial("tcp", os.Args[2], &tls.Config{InsecureSkipVerify: true, ServerName: "hang.test"})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("reading")
		b := make([]byte, 100)
		c.Read(b)
	}
}
`;

/** Why Go tests cannot run here, or false. */
export function goSkipReason(): string | false {
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'go is not installed (Debian package golang-go)';
  }
}

export interface GoApp {
  /** built with symbols */
  path: string;
  /** built with -ldflags=-s -w: no .symtab, functions come from the pclntab */
  stripped: string;
  /** -buildmode=pie, stripped: the pclntab sits in .data.rel.ro.gopclntab */
  pie: string;
  version: string;
}

/** Builds the test's Go program twice (with and without symbols) in `dir`. Standard library only: no network. */
export function buildGoApp(dir: string): GoApp {
  const src = join(dir, 'goapp');
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, 'go.mod'), 'module example.test/tlsapp\n\ngo 1.17\n');
  writeFileSync(join(src, 'main.go'), GO_APP);
  const env = {
    ...process.env,
    GOCACHE: join(dir, 'gocache'),
    GOPATH: join(dir, 'gopath'),
    GOFLAGS: '-mod=mod',
    GOPROXY: 'off',
    GOTOOLCHAIN: 'local',
    CGO_ENABLED: '0',
    HOME: dir,
  };
  const path = join(dir, 'tlsapp');
  const stripped = join(dir, 'tlsapp-stripped');
  execFileSync('go', ['build', '-o', path, '.'], { cwd: src, env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
  execFileSync('go', ['build', '-ldflags=-s -w', '-o', stripped, '.'], { cwd: src, env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
  const pie = join(dir, 'tlsapp-pie');
  execFileSync('go', ['build', '-buildmode=pie', '-ldflags=-s -w', '-o', pie, '.'], { cwd: src, env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
  const version = execFileSync('go', ['version'], { encoding: 'utf8' }).trim();
  return { path, stripped, pie, version };
}

// ---- the CLI as tracer ----

export interface TlsJson {
  timestamp: string;
  proc: { pid: number; tid: number; comm: string; mntns_id?: number };
  runtime?: { containerName?: string; runtimeName?: string };
  direction: 'read' | 'write';
  len: number;
  src?: string;
  dst?: string;
  local?: string;
  remote?: string;
  tupleSource?: string;
  source: string;
  function: string;
  library?: string;
  latencyNs: number;
  truncated: boolean;
  lostBytes: number;
  conn: string;
  data: string;
  dataEncoding: 'utf8' | 'base64' | 'hex';
}

export function dataOf(e: { data: string; dataEncoding: string }): Buffer {
  return Buffer.from(e.data, e.dataEncoding === 'utf8' ? 'utf8' : e.dataEncoding === 'hex' ? 'hex' : 'base64');
}

/** The bytes a process moved in one direction, in order. */
export function stream(events: readonly TlsJson[], pid: number, direction: 'read' | 'write'): Buffer {
  return Buffer.concat(events.filter((e) => e.proc.pid === pid && e.direction === direction).map(dataOf));
}

let markers = 0;

export class CliTracer {
  readonly child: ChildProcess;
  readonly events: TlsJson[] = [];
  readonly lines: string[] = [];
  readonly nonJsonLines: string[] = [];
  stderr = '';
  private exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: readonly string[], opts: { json?: boolean } = {}) {
    const json = opts.json ?? true;
    this.child = spawn(process.execPath, [CLI, 'trace', 'tls', ...(json ? ['-o', 'json'] : []), '-v', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    const rl = createInterface({ input: this.child.stdout! });
    rl.on('line', (l) => {
      this.lines.push(l);
      if (!json) return;
      try {
        this.events.push(JSON.parse(l) as TlsJson);
      } catch {
        this.nonJsonLines.push(l);
      }
    });
    // 'close': the process exited and its stdout is read to the end
    this.exited = new Promise((r) => this.child.on('close', (code, signal) => r({ code, signal })));
  }

  /** Resolves once the tracer has probed what is there and says so. */
  async ready(): Promise<void> {
    await until('tlscope trace tls to start', () => /tlscope: tracing \d+ file/.test(this.stderr) || this.child.exitCode !== null, 60_000);
    if (this.child.exitCode !== null) throw new Error(`tlscope exited: ${this.stderr}`);
  }

  async waitForStderr(re: RegExp, timeoutMs = 30_000): Promise<void> {
    await until(`stderr ${re}`, () => re.test(this.stderr), timeoutMs);
  }

  of(pid: number): TlsJson[] {
    return this.events.filter((e) => e.proc.pid === pid);
  }

  /**
   * A positive marker: curl asks `server` for a fresh path; resolves once `seen(path)` holds
   * (by default: some event's data holds the path) and the server logged the request. A call's
   * records are in the one ring before it returns, and the tracer prints in ring order, so
   * once the marker is out, so is every call that returned before it was sent.
   */
  async marker(server: PyServer, seen?: (path: string) => boolean, timeoutMs = 30_000): Promise<void> {
    const path = `/marker-${process.pid}-${markers++}`;
    const from = this.events.length;
    const isOut = seen ?? ((p: string) => this.events.slice(from).some((e) => dataOf(e).includes(p)));
    const r = await runProcess('curl', ['-sk', '--http1.1', '--resolve', `marker.test:${server.port}:127.0.0.1`, `https://marker.test:${server.port}${path}`]).done;
    if (r.code !== 0) throw new Error(`marker request ${path}: curl exited ${r.code}: ${r.stderr}`);
    // and the server's log has it, so a test that takes the server's latest request next gets its own
    await until(`the marker ${path}`, () => isOut(path) && server.requests.some((q) => q.bytes.includes(path)), timeoutMs);
  }

  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
    if (this.child.exitCode === null) this.child.kill('SIGINT');
    const r = await Promise.race([this.exited, sleep(20_000).then(() => ({ code: null, signal: 'SIGKILL' as NodeJS.Signals }))]);
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
    return { ...r, stderr: this.stderr };
  }
}

// ---- the gadget in-process ----

export interface Session {
  gadget: TlsGadget;
  scope: ProcessScope;
  events: TlsEvent[];
  of(pid: number): TlsEvent[];
  close(): Promise<void>;
}

/** The gadget with a process scope of the host (no container index: every process counts as the host's). */
export function openSession(selector: ContainerSelector = {}, opts: TlsOptions = {}): Session {
  const warnings: string[] = [];
  const gadget = TlsGadget.open({ onWarning: (w) => warnings.push(w), ...opts });
  const scope = new ProcessScope(gadget, selector, undefined, (w) => warnings.push(w), { rescanMs: 500 });
  scope.start();
  const events: TlsEvent[] = [];
  const loop = (async () => {
    for await (const batch of gadget) events.push(...batch);
  })();
  return {
    gadget,
    scope,
    events,
    of: (pid) => events.filter((e) => e.proc.pid === pid),
    close: async () => {
      scope.stop();
      await gadget.close();
      await loop;
    },
  };
}
