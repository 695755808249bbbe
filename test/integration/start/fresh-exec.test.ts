// SPDX-License-Identifier: Apache-2.0
// Issue 9, item 2: "a process is probed before it runs". One `tlscope trace tls` runs; then
// ten fresh Go TLS clients (each a new copy: a new inode at a new path, never seen by the
// tracer) and ten fresh copies of the node executable run, each making one HTTPS request as
// its first act and exiting. Each request's plaintext (`GET /fresh-…`) must be traced as a
// write of that process. Learning of a process from its exec (tracepoint → ring → /proc maps
// → uprobes) comes too late for a request made in the first milliseconds; the exec gate
// (fanotify FAN_OPEN_EXEC_PERM) probes the file before the exec proceeds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { notRoot } from '../../helpers/root.js';
import { startProcess } from '../../helpers/process.js';
import { CliTracer, dataOf, goSkipReason, makeWorkDir, startPyServer, type PyServer } from '../tls/helpers.js';

const RUNS = 10;

const GO_CLIENT = `package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "fresh.test"}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	resp, err := (&http.Client{Transport: tr}).Get("https://" + os.Args[1] + os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode)
}
`;

const NODE_CLIENT = "require('https').get({host:'127.0.0.1',port:+process.argv[1],path:process.argv[2],servername:'fresh.test',rejectUnauthorized:false},r=>{r.resume();r.on('end',()=>console.log(r.statusCode))}).on('error',e=>{console.error(e.message);process.exit(1)})";

const skip = notRoot || goSkipReason();
let work: ReturnType<typeof makeWorkDir>;
let server: PyServer;
let tracer: CliTracer;
let goClient: string;

before(async () => {
  if (skip) return;
  work = makeWorkDir('tlscope-fresh-exec-');
  const src = join(work.dir, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'go.mod'), 'module example.test/fresh\n\ngo 1.17\n');
  writeFileSync(join(src, 'main.go'), GO_CLIENT);
  goClient = join(work.dir, 'fresh-go');
  const env = { ...process.env, GOCACHE: join(work.dir, 'gocache'), GOPATH: join(work.dir, 'gopath'), GOFLAGS: '-mod=mod', GOPROXY: 'off', GOTOOLCHAIN: 'local', CGO_ENABLED: '0', HOME: work.dir };
  execFileSync('go', ['build', '-o', goClient, '.'], { cwd: src, env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
  server = await startPyServer(work);
  tracer = new CliTracer([]);
  await tracer.ready();
  // the exec gate says whether it is on (its marks are in place then) or why not
  await tracer.waitForStderr(/tlscope: exec gate: (on|off)/, 30_000);
});

after(async () => {
  await tracer?.stop();
  await server?.close();
  work?.remove();
});

/** Runs `copies` fresh copies of `binary` (each a new inode, new path), one after another; their pids and paths. */
async function runFresh(kind: string, binary: string, args: (path: string) => string[]): Promise<{ pid: number; path: string }[]> {
  const out: { pid: number; path: string }[] = [];
  for (let i = 0; i < RUNS; i++) {
    const copy = join(work.dir, `${kind}-${i}`);
    copyFileSync(binary, copy);
    const path = `/fresh-${kind}-${i}`;
    const r = await startProcess(copy, args(path), { timeoutMs: 60_000 }).done;
    assert.equal(r.code, 0, `${copy} ${path}: exited ${r.code}: ${r.stderr}`);
    out.push({ pid: r.pid, path });
    rmSync(copy, { force: true });
  }
  return out;
}

function traced(runs: readonly { pid: number; path: string }[]): { n: number; missing: string[] } {
  const missing: string[] = [];
  for (const r of runs) {
    const wrote = tracer.of(r.pid).some((e) => e.direction === 'write' && dataOf(e).includes(`GET ${r.path} `));
    if (!wrote) missing.push(`${r.path} (pid ${r.pid})`);
  }
  return { n: runs.length - missing.length, missing };
}

test('fresh Go binaries and fresh node copies have their first request traced', { skip, timeout: 600_000 }, async () => {
  const go = await runFresh('go', goClient, (p) => [`127.0.0.1:${server.port}`, p]);
  const node = await runFresh('node', process.execPath, (p) => ['-e', NODE_CLIENT, String(server.port), p]);
  await tracer.marker(server);
  for (const r of [...go, ...node]) assert.ok(server.requests.some((q) => q.bytes.includes(`GET ${r.path} `)), `the server got ${r.path}`);
  const g = traced(go);
  const n = traced(node);
  const summary = `Go ${g.n}/${RUNS}, node ${n.n}/${RUNS} traced`;
  console.log(`# fresh-exec: ${summary}`);
  assert.deepEqual([...g.missing, ...n.missing], [], `${summary}; not traced: ${[...g.missing, ...n.missing].join(', ')}\n${tracer.stderr}`);
});

test('--no-exec-gate: the gate stays off, and start-up says so', { skip, timeout: 120_000 }, async () => {
  const off = new CliTracer(['--no-exec-gate']);
  try {
    await off.ready();
    await off.waitForStderr(/tlscope: exec gate: off \(--no-exec-gate\)/, 30_000);
    assert.doesNotMatch(off.stderr, /exec gate: on/);
  } finally {
    await off.stop();
  }
});
