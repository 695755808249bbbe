// SPDX-License-Identifier: Apache-2.0
/**
 * What the trace tls tests share: a certificate for made-up *.test names, a small python TLS
 * server that logs the raw requests it gets and answers with bytes the test knows, a Go TLS
 * client/server built here with the system's Go (standard library only, caches in a temp
 * dir, no network), the real CLI as a tracer (-o json), and the gadget in-process for tests
 * that look at kernel maps. Everything listens on loopback.
 */
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CliProcess, type Finished } from '../../helpers/cli.js';
import { startProcess, stopChild } from '../../helpers/process.js';
import { waitUntil as until } from '../../helpers/wait.js';
import { TlsGadget, type TlsEvent, type TlsOptions } from '../../../src/gadgets/tls/gadget.js';
import { ProcessScope } from '../../../src/gadgets/tls/process-scope.js';
import type { ContainerSelector } from '../../../src/containers/selector.js';

export { CLI } from '../../helpers/cli.js';

export { sleep } from '../../helpers/wait.js';
/** The shared waiter under this module's old name (test/kernels uses it). */
export { waitUntil as until } from '../../helpers/wait.js';

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

export { startProcess, stopChild, type Ran, type Running } from '../../helpers/process.js';
/**
 * Starts a command, its output collected (`.done` when it has ended). The shared
 * startProcess under this module's old name (test/kernels uses it); new code calls
 * startProcess, or runProcess from test/helpers/process.ts to run one to its end.
 */
export { startProcess as runProcess } from '../../helpers/process.js';

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

export class CliTracer extends CliProcess {
  readonly events: TlsJson[];
  readonly lines: string[];
  readonly nonJsonLines: string[];

  /** Starts `tlscope trace tls [-o json] -v <args>`. */
  constructor(args: readonly string[], opts: { json?: boolean } = {}) {
    const json = opts.json ?? true;
    const events: TlsJson[] = [];
    const lines: string[] = [];
    const nonJsonLines: string[] = [];
    super(['trace', 'tls', ...(json ? ['-o', 'json'] : []), '-v', ...args], {
      onLine: (l) => {
        lines.push(l);
        if (!json) return;
        try {
          events.push(JSON.parse(l) as TlsJson);
        } catch {
          nonJsonLines.push(l);
        }
      },
    });
    this.events = events;
    this.lines = lines;
    this.nonJsonLines = nonJsonLines;
  }

  /** Resolves once the tracer has probed what is there and says so. */
  async ready(): Promise<void> {
    await this.waitForStderr(/tlscope: tracing \d+ file/, 60_000);
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
    const r = await startProcess('curl', ['-sk', '--http1.1', '--resolve', `marker.test:${server.port}:127.0.0.1`, `https://marker.test:${server.port}${path}`]).done;
    if (r.code !== 0) throw new Error(`marker request ${path}: curl exited ${r.code}: ${r.stderr}`);
    // and the server's log has it, so a test that takes the server's latest request next gets its own
    await until(`the marker ${path}`, () => isOut(path) && server.requests.some((q) => q.bytes.includes(path)), timeoutMs);
  }

  /** SIGINT, then the result (SIGKILL after 20 s). */
  override stop(signal: NodeJS.Signals = 'SIGINT', graceMs = 20_000): Promise<Finished> {
    return super.stop(signal, graceMs);
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
