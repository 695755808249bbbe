// SPDX-License-Identifier: Apache-2.0
/**
 * `trace tls --keylog FILE`: a Go client built here (TLS 1.3, then TLS 1.2) talks to the python
 * TLS server; `tlscope capture -w` records the encrypted packets on loopback, `trace tls
 * --keylog` writes the secrets the client's crypto/tls derives; tshark decrypts the capture
 * with them and shows each HTTP request and response. Without the key log it shows none
 * (the control: the decryption is the key log's doing).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { featureSkip, NEEDS } from '../../helpers/features.js';
import { CliProcess } from '../../helpers/cli.js';
import { startProcess } from '../../helpers/process.js';
import { waitUntil } from '../../helpers/wait.js';
import { BpfObject } from '../../../src/ebpf/object.js';
import { KEYLOG_EVENT_LAYOUT } from '../../../src/gadgets/tls/keylog.js';
import { CliTracer, goSkipReason, makeWorkDir, startPyServer, type PyServer } from '../tls/helpers.js';

const kernelSkip = featureSkip(...NEEDS.tls);

function tsharkSkipReason(): string | false {
  try {
    execFileSync('tshark', ['--version'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'tshark is not installed (scripts/setup.sh --test installs it)';
  }
}

// waits for a line on stdin (so its probes are in before it does TLS), then one GET per URL
const GO_CLIENT = `package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	bufio.NewReader(os.Stdin).ReadString('\\n')
	max := uint16(tls.VersionTLS13)
	if os.Args[1] == "1.2" {
		max = tls.VersionTLS12
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "shop.test", MaxVersion: max}}
	for _, u := range os.Args[2:] {
		resp, err := (&http.Client{Transport: tr}).Get(u)
		if err != nil {
			panic(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Println(resp.Proto, resp.StatusCode)
	}
}
`;

const skip = kernelSkip || tsharkSkipReason() || goSkipReason();
let work: ReturnType<typeof makeWorkDir>;
let server: PyServer | undefined;
let client = '';

before(() => {
  if (skip) return;
  work = makeWorkDir('tlscope-keylog-');
  const src = join(work.dir, 'src');
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, 'go.mod'), 'module example.test/keylog\n\ngo 1.21\n');
  writeFileSync(join(src, 'main.go'), GO_CLIENT);
  client = join(work.dir, 'keylog-client');
  const env = { ...process.env, GOCACHE: join(work.dir, 'gocache'), GOPATH: join(work.dir, 'gopath'), GOPROXY: 'off', GOTOOLCHAIN: 'local', CGO_ENABLED: '0', HOME: work.dir };
  execFileSync('nice', ['-n', '10', 'go', 'build', '-o', client, '.'], { cwd: src, env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 300_000 });
});

after(async () => {
  await server?.close();
  work?.remove();
});

test('trace tls --keylog: a Go client\'s TLS 1.3 and 1.2 secrets decrypt its traffic captured by capture -w in tshark', { skip, timeout: 240_000 }, async () => {
  server = await startPyServer(work);
  const port = server.port;
  const keys = join(work.dir, 'keys.log');
  const pcap = join(work.dir, 'encrypted.pcapng');
  const cap = new CliProcess(['capture', '--host', '-i', 'lo', '-w', pcap, `tcp port ${port}`]);
  const tracer = new CliTracer(['--host', '--keylog', keys]);
  let pids: number[] = [];
  try {
    await Promise.all([tracer.ready(), cap.waitForStderr(/listening on/, 60_000)]);
    const runs = [['1.3', '/keylog/tls13/a', '/keylog/tls13/b'], ['1.2', '/keylog/tls12']].map(([v, ...paths]) => {
      return startProcess(client, [v!, ...paths.map((p) => `https://127.0.0.1:${port}${p}`)], { timeoutMs: 120_000 });
    });
    pids = runs.map((r) => r.pid);
    // the binary's probes (writeKeyLog's too) are in once the tracer says so: uprobes are per
    // file, so both processes have them from then on
    await tracer.waitForStderr(/--keylog: crypto\/tls\.\(\*Config\)\.writeKeyLog in \S*keylog-client \(register ABI\)/, 60_000);
    for (const r of runs) r.child.stdin!.end('go\n');
    for (const r of runs) {
      const done = await r.done;
      assert.equal(done.code, 0, done.stderr);
      assert.match(done.stdout, /HTTP\/1\.1 200/);
    }
    // 1.3: four secrets per connection (one connection: keep-alive); 1.2: one CLIENT_RANDOM
    await waitUntil('the key log lines', () => existsSync(keys) && readFileSync(keys, 'utf8').split('\n').filter((l) => l !== '').length >= 5, 30_000);
  } finally {
    const t = await tracer.stop();
    assert.equal(t.code, 0, t.stderr);
    const c = await cap.stop();
    assert.equal(c.code, 0, c.stderr);
  }
  const lines = readFileSync(keys, 'utf8').trim().split('\n');
  assert.equal(statSync(keys).mode & 0o777, 0o600, 'the key log is readable by its owner only');
  for (const l of lines) assert.match(l, /^[A-Z0-9_]+ [0-9a-f]{64} [0-9a-f]{64,96}$/, l);
  const labels = lines.map((l) => l.split(' ')[0]).sort();
  assert.deepEqual(labels, ['CLIENT_HANDSHAKE_TRAFFIC_SECRET', 'CLIENT_RANDOM', 'CLIENT_TRAFFIC_SECRET_0', 'SERVER_HANDSHAKE_TRAFFIC_SECRET', 'SERVER_TRAFFIC_SECRET_0'], lines.join('\n'));
  const tshark = (extra: string[]): string[][] =>
    execFileSync('tshark', ['-r', pcap, '-d', `tcp.port==${port},tls`, ...extra, '-Y', 'http', '-T', 'fields', '-E', 'separator=|', '-e', 'http.request.uri', '-e', 'http.response.code', '-e', 'tls.record.version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .trim().split('\n').filter((l) => l !== '').map((l) => l.split('|'));
  const without = tshark([]);
  assert.deepEqual(without, [], 'without keys tshark sees no HTTP: the capture is encrypted');
  const rows = tshark(['-o', `tls.keylog_file:${keys}`]);
  const uris = rows.map((r) => r[0]).filter((u) => u !== '');
  assert.deepEqual(uris.sort(), ['/keylog/tls12', '/keylog/tls13/a', '/keylog/tls13/b'], JSON.stringify(rows));
  assert.equal(rows.filter((r) => r[1] === '200').length, 3, 'the three responses, decrypted');
  assert.ok(pids.every((p) => p > 0));
});

test('struct keylog_event: the TypeScript decoder matches the compiled BTF layout', { skip: kernelSkip }, () => {
  const obj = BpfObject.load('keylog');
  try {
    const l = obj.structLayout('keylog_event');
    assert.equal(l?.size, KEYLOG_EVENT_LAYOUT.size);
    const at = new Map(l?.members.map((m) => [m.name, m.offset]));
    for (const [name, off] of Object.entries(KEYLOG_EVENT_LAYOUT)) if (name !== 'size') assert.equal(at.get(name), off, `offset of ${name}`);
  } finally {
    obj.close();
  }
});
