// SPDX-License-Identifier: Apache-2.0
/** Plaintext events as trace tls makes them, for the UI's server-side tests. */
import type { TlsEvent } from '../../../src/gadgets/tls/gadget.js';
import type { Entry } from '../../../src/ui/protocol.js';

let clock = 1_800_000_000_000;

export function tlsEvent(o: { pid: number; comm: string; conn: string; direction: 'write' | 'read'; text: string | Uint8Array; local: string; remote: string; container?: string }): TlsEvent {
  const data = typeof o.text === 'string' ? new TextEncoder().encode(o.text) : o.text;
  clock += 1;
  return {
    kind: 'data',
    timestamp: clock,
    monotonicNs: BigInt(clock) * 1_000_000n,
    proc: { pid: o.pid, tid: o.pid, comm: o.comm, mntns: 1, netns: 2 },
    ...(o.container === undefined ? {} : { runtime: { runtimeName: 'docker', containerId: 'abc', containerName: o.container } }),
    source: 'openssl',
    function: o.direction === 'write' ? 'SSL_write' : 'SSL_read',
    library: '/usr/lib/x86_64-linux-gnu/libssl.so.3',
    direction: o.direction,
    len: data.length,
    data,
    truncated: false,
    lostBytes: 0,
    fault: false,
    chunks: 1,
    src: o.direction === 'write' ? o.local : o.remote,
    dst: o.direction === 'write' ? o.remote : o.local,
    local: o.local,
    remote: o.remote,
    tupleSource: 'socket',
    latencyNs: 1000,
    conn: o.conn,
  };
}

/** One HTTP exchange as both ends see it: the client (curl) and the server (python3). */
export function exchange(path: string, status: number, body: string, clientPort: number): { client: TlsEvent[]; server: TlsEvent[] } {
  const req = `GET ${path} HTTP/1.1\r\nHost: shop.test\r\nUser-Agent: curl/8\r\n\r\n`;
  const res = `HTTP/1.1 ${status} X\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  const c = { pid: 100 + clientPort, comm: 'curl', conn: `c${clientPort}`, local: `127.0.0.1:${clientPort}`, remote: '127.0.0.1:8443' };
  const s = { pid: 50, comm: 'python3', conn: `s${clientPort}`, local: '127.0.0.1:8443', remote: `127.0.0.1:${clientPort}` };
  return {
    client: [tlsEvent({ ...c, direction: 'write', text: req }), tlsEvent({ ...c, direction: 'read', text: res })],
    server: [tlsEvent({ ...s, direction: 'read', text: req }), tlsEvent({ ...s, direction: 'write', text: res })],
  };
}

export function entry(o: Partial<Entry> & Pick<Entry, 'seq' | 'kind'>): Entry {
  return {
    time: 0, node: 'n1', pod: undefined, container: undefined, comm: 'x', pid: 1, tls: undefined, src: undefined, dst: undefined,
    role: undefined, method: undefined, path: undefined, host: undefined, status: undefined, latencyMs: undefined, summary: '', json: {},
    ...o,
  };
}
