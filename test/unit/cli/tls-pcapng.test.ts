// SPDX-License-Identifier: Apache-2.0
/**
 * trace tls -w from the shown events (src/cli/tls-pcapng.ts): which chunks a shown call or
 * exchange stands for, the interface each goes on (container, pod container, process) and the
 * packet comments; the --http stage keeping an exchange's raw calls (masked) for it; the
 * redaction summary said without -v. The file itself is read back by tshark when installed.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pcapngFileTap, placeOf, plaintextChunks } from '../../../src/cli/tls-pcapng.js';
import { httpStage } from '../../../src/gadgets/tls/definition.js';
import type { TlsEvent } from '../../../src/gadgets/tls/gadget.js';
import type { TlsHttpEvent } from '../../../src/gadgets/tls/http.js';
import { TlsHttp } from '../../../src/gadgets/tls/http.js';
import { RawRedaction, redactionSummary } from '../../../src/gadgets/tls/raw-redact.js';
import { Redactor } from '../../../src/protocols/redact.js';

let clock = 2_000_000_000n;
function call(o: { dir: 'write' | 'read'; data: string; pid?: number; comm?: string; remote?: string; conn?: string }): TlsEvent {
  clock += 1_000_000n;
  const bytes = new TextEncoder().encode(o.data);
  const local = '127.0.0.1:40000';
  const remote = o.remote ?? '127.0.0.1:8443';
  const write = o.dir === 'write';
  return {
    kind: 'data', timestamp: Number(clock / 1_000_000n), monotonicNs: clock, proc: { pid: o.pid ?? 4242, tid: (o.pid ?? 4242) + 1, comm: o.comm ?? 'curl' },
    source: 'openssl', function: write ? 'SSL_write' : 'SSL_read', library: undefined, direction: o.dir, len: bytes.length, data: bytes,
    truncated: false, lostBytes: 0, fault: false, chunks: 1, src: write ? local : remote, dst: write ? remote : local,
    local, remote, tupleSource: 'socket', latencyNs: 1000, conn: o.conn ?? 'c0ffee',
  };
}

const inContainer = (e: TlsEvent): TlsEvent => ({ ...e, runtime: { runtimeName: 'docker', containerId: 'abc', containerName: 'web' } });
const inPod = (e: TlsEvent): TlsEvent => ({
  ...e,
  runtime: { runtimeName: 'containerd', containerId: 'def', containerName: 'k8s_client_cart' },
  k8s: { namespace: 'shop', podName: 'cart-7d9f', containerName: 'client' },
});

describe('trace tls -w: chunks of the shown events', () => {
  it('a container\'s call goes on the container\'s interface, its comment names the process, function and container', () => {
    const [c, ...rest] = plaintextChunks(inContainer(call({ dir: 'write', data: 'GET / HTTP/1.1\r\n\r\n' })));
    assert.equal(rest.length, 0);
    assert.equal(c?.owner, 'web (docker)');
    assert.equal(c?.comment, 'pid 4242 tid 4243 curl SSL_write in web (docker)');
    assert.equal(c?.local, '127.0.0.1:40000');
    assert.equal(c?.remote, '127.0.0.1:8443');
    assert.equal(c?.connection, 'c0ffee');
  });

  it('a pod\'s container is named by the pod and its container; a host process by its pid; unattributed ones say so', () => {
    assert.equal(plaintextChunks(inPod(call({ dir: 'read', data: 'x' })))[0]?.owner, 'client of pod shop/cart-7d9f (containerd)');
    assert.equal(plaintextChunks(inPod(call({ dir: 'read', data: 'x' })))[0]?.comment, 'pid 4242 tid 4243 curl SSL_read in client of pod shop/cart-7d9f (containerd)');
    const host = plaintextChunks(call({ dir: 'read', data: 'x', pid: 7, comm: 'python3' }))[0];
    assert.equal(host?.owner, 'pid 7 (python3)');
    assert.equal(host?.comment, 'pid 7 tid 8 python3 SSL_read');
    const unknown = { ...call({ dir: 'read', data: 'x', pid: 9 }), runtime: { runtimeName: '?', containerId: '?', containerName: '?' } };
    assert.equal(placeOf(unknown), undefined);
    assert.equal(plaintextChunks(unknown)[0]?.owner, 'pid 9 (curl) in an unknown container');
  });

  it('a call without a socket tuple is not written; an exchange stands for the calls it carries (none: nothing)', () => {
    assert.deepEqual(plaintextChunks({ ...call({ dir: 'write', data: 'x' }), local: undefined }), []);
    const calls = [call({ dir: 'write', data: 'GET /a HTTP/1.1\r\n\r\n' }), call({ dir: 'read', data: 'HTTP/1.1 204 No Content\r\n\r\n' })];
    const [x] = new TlsHttp({ keepCalls: { view: (e) => e } }).process(calls);
    assert.ok(x !== undefined);
    const shown = inContainer(x as unknown as TlsEvent) as unknown as TlsHttpEvent;
    const chunks = plaintextChunks(shown);
    assert.deepEqual(chunks.map((c) => [c.direction, Buffer.from(c.data).toString(), c.owner]), [
      ['write', 'GET /a HTTP/1.1\r\n\r\n', 'web (docker)'],
      ['read', 'HTTP/1.1 204 No Content\r\n\r\n', 'web (docker)'],
    ]);
    const { calls: _dropped, ...without } = x;
    assert.deepEqual(plaintextChunks(without), []);
  });
});

describe('--http keeping the raw calls for -w', () => {
  it('each exchange carries its connection\'s calls since the exchange before it; a connection without an exchange hands out none', () => {
    const h = new TlsHttp({ keepCalls: { view: (e) => e } });
    const out = h.process([
      call({ dir: 'write', data: 'GET /one HTTP/1.1\r\nHost: a.test\r\n\r\n' }),
      call({ dir: 'read', data: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok' }),
      call({ dir: 'write', data: 'GET /two HTTP/1.1\r\nHost: a.test\r\n\r\n' }),
      call({ dir: 'read', data: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n' }),
      call({ dir: 'write', data: 'not http at all', conn: 'other', remote: '127.0.0.1:9999' }),
    ]);
    out.push(...h.flush());
    assert.deepEqual(out.map((x) => [x.path, x.calls?.map((c) => Buffer.from(c.data).toString().split('\r\n')[0])]), [
      ['/one', ['GET /one HTTP/1.1', 'HTTP/1.1 200 OK']],
      ['/two', ['GET /two HTTP/1.1', 'HTTP/1.1 200 OK']],
    ]);
    assert.equal(new TlsHttp().process([call({ dir: 'write', data: 'GET / HTTP/1.1\r\n\r\n' }), call({ dir: 'read', data: 'HTTP/1.1 204 No Content\r\n\r\n' })])[0]?.calls, undefined, 'not kept unless asked');
  });

  it('with --redact the kept calls are masked (the exchange\'s headers too), and the stage\'s summary says how much', () => {
    const stage = httpStage(new Redactor(), undefined, true);
    const out = stage.process([
      call({ dir: 'write', data: 'GET /s HTTP/1.1\r\nAuthorization: Bearer SECRET\r\n\r\n' }),
      call({ dir: 'read', data: 'HTTP/1.1 204 No Content\r\n\r\n' }),
    ]);
    const raw = Buffer.concat((out[0]?.calls ?? []).map((c) => c.data)).toString();
    assert.match(raw, /Authorization: \*{13}\r\n/);
    assert.doesNotMatch(raw, /SECRET/);
    assert.equal(out[0]?.requestHeaders.find((f) => f.name.toLowerCase() === 'authorization')?.value, '[redacted]');
    assert.equal(stage.summary?.(), 'redaction: 1 header value masked in the exchanges; in the raw calls kept for -w (of every connection, before --query and --filter choose what is written): 1 HTTP/1 header value and 0 HTTP/2 header values masked in the raw data');
    const plain = httpStage(new Redactor(), undefined, false);
    assert.equal(plain.summary?.(), undefined, 'nothing masked yet: nothing said');
    plain.process([call({ dir: 'write', data: 'GET /s HTTP/1.1\r\nCookie: a=b\r\n\r\n', conn: 'p' }), call({ dir: 'read', data: 'HTTP/1.1 204 No Content\r\nSet-Cookie: c=d\r\n\r\n', conn: 'p' })]);
    assert.equal(plain.summary?.(), 'redaction: 2 header values masked in the exchanges', 'without -w no raw data is masked in --http');
  });

  it('a connection that never completes an exchange keeps at most maxPerConnection calls', () => {
    const h = new TlsHttp({ keepCalls: { view: (e) => e, maxPerConnection: 3 } });
    for (let i = 0; i < 5; i++) h.process([call({ dir: 'write', data: `chunk ${i} of something that is not http` })]);
    assert.equal(h.stats.callsNotKept, 2);
  });
});

describe('the redaction summary (said without -v)', () => {
  it('nothing masked: nothing said; masked values and the raw fallback are named', () => {
    const raw = new RawRedaction(new Redactor());
    raw.process([call({ dir: 'write', data: 'GET / HTTP/1.1\r\nHost: a.test\r\n\r\n' })]);
    assert.equal(redactionSummary(raw), undefined);
    raw.process([call({ dir: 'write', data: 'GET / HTTP/1.1\r\nCookie: a=b\r\nAuthorization: x\r\n\r\n' })]);
    assert.equal(redactionSummary(raw), 'redaction: 2 HTTP/1 header values and 0 HTTP/2 header values masked in the raw data');
    raw.h2.unframedBytes = 10;
    assert.match(redactionSummary(raw) ?? '', /; raw fallback: 10 HTTP\/2 bytes that could not be framed .* masked whole$/);
  });
});

const tshark = spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0;

describe('the -w file', () => {
  it('one interface per container and per host process, the comments on the packets, the streams closed at the end', { skip: tshark ? false : 'tshark is not installed' }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'tlscope-pcapng-tap-'));
    try {
      const file = join(dir, 'out.pcapng');
      const tap = pcapngFileTap(file);
      tap.events([inContainer(call({ dir: 'write', data: 'GET /c HTTP/1.1\r\nHost: a.test\r\n\r\n' }))]);
      tap.events([call({ dir: 'write', data: 'GET /h HTTP/1.1\r\nHost: a.test\r\n\r\n', pid: 77, comm: 'python3', conn: 'beef', remote: '127.0.0.1:8444' })]);
      tap.close();
      tap.close(); // twice is harmless
      assert.ok(readFileSync(file).length > 0);
      const r = spawnSync('tshark', ['-r', file, '-T', 'fields', '-E', 'separator=|', '-e', 'frame.interface_name', '-e', 'tcp.flags.str', '-e', 'http.request.uri', '-e', 'frame.comment'], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const rows = r.stdout.trim().split('\n').map((l) => l.split('|'));
      assert.deepEqual([...new Set(rows.map((x) => x[0]))], ['web (docker)', 'pid 77 (python3)']);
      const data = rows.filter((x) => x[2] !== '');
      assert.deepEqual(data.map((x) => [x[0], x[2], x[3]]), [
        ['web (docker)', '/c', 'pid 4242 tid 4243 curl SSL_write in web (docker)'],
        ['pid 77 (python3)', '/h', 'pid 77 tid 78 python3 SSL_write'],
      ]);
      assert.equal(rows.filter((x) => (x[1] ?? '').includes('F')).length, 4, 'FIN both ways on each connection at close');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
