// SPDX-License-Identifier: Apache-2.0
// A cluster source in the hub (kubectl tlscope ui): each entry's node is its event's k8s.node,
// not the hub's; two nodes' connections that happen to share a pid and a TLS session pointer are
// paired apart (pids are per node); the stats' per-node lines reach the page's stats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tlsDataFields, tlsHttpFields } from '../../../src/gadgets/tls/fields.js';
import type { TlsEvent } from '../../../src/gadgets/tls/gadget.js';
import { UiHub, type SourceMessage } from '../../../src/ui/hub.js';
import { EntryRing } from '../../../src/ui/ring.js';
import { tlsEvent } from './fixtures.js';

type NodeTls = TlsEvent & { k8s?: { namespace: string; podName: string; containerName: string; node?: string } };

function on(node: string, e: TlsEvent): NodeTls {
  return { ...e, k8s: { namespace: 'shop', podName: `client-${node}`, containerName: 'client', node } };
}

async function* feed(messages: SourceMessage<NodeTls>[]): AsyncGenerator<SourceMessage<NodeTls>> {
  for (const m of messages) yield m;
}

test('hub with nodeOf: entries carry their event\'s node; the same pid:conn on two nodes is two connections', async () => {
  const hub = new UiHub({ ring: new EntryRing({ capacity: 100, maxBytes: 1 << 20 }), node: 'this-host', label: 'cluster kind' });
  const c = { pid: 200, comm: 'curl', conn: 'c1', local: '10.0.0.5:40000', remote: '10.0.0.9:8443' };
  const req = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: api.test\r\n\r\n`;
  const res = (status: number): string => `HTTP/1.1 ${status} X\r\nContent-Length: 2\r\n\r\nok`;
  // interleaved so that one pairing over both nodes would give /a the 503 and /b the 200
  const events = [
    on('n1', tlsEvent({ ...c, direction: 'write', text: req('/a') })),
    on('n2', tlsEvent({ ...c, direction: 'write', text: req('/b') })),
    on('n2', tlsEvent({ ...c, direction: 'read', text: res(503) })),
    on('n1', tlsEvent({ ...c, direction: 'read', text: res(200) })),
  ];
  const nodes = [{ node: 'n1', state: 'running', gone: 0, shown: 2, lost: 0 }, { node: 'n2', state: 'gone', reason: 'pod deleted', gone: 1, shown: 2, lost: 0 }];
  await hub.run<NodeTls>({
    gadget: 'trace tls',
    fields: tlsDataFields({ json: true, hex: false }),
    httpFields: tlsHttpFields(),
    nodeOf: (e) => e.k8s?.node,
    messages: feed([{ type: 'events', events }, { type: 'stats', stats: { shown: 4, lost: 0, misses: {}, outOfScope: 0, filtered: 0, held: 0, nodes } }]),
  });
  const http = [...hub.ring.values()].map((x) => x.entry).filter((e) => e.kind === 'http');
  assert.deepEqual(http.map((e) => [e.path, e.status, e.node, e.pod]).sort(), [['/a', 200, 'n1', 'shop/client-n1'], ['/b', 503, 'n2', 'shop/client-n2']]);
  assert.ok(![...hub.ring.values()].some((x) => x.entry.node === 'this-host'), 'an entry has the hub\'s node');
  assert.equal(hub.node, 'cluster kind');
  assert.deepEqual(hub.stats().sessions['trace tls']?.nodes, nodes);
  hub.stop();
});

test('hub with nodeOf: a node\'s pid is not looked up on this host (a slow response is not cut off because no local process has that pid)', async () => {
  const hub = new UiHub({ ring: new EntryRing({ capacity: 100, maxBytes: 1 << 20 }), node: 'this-host' });
  // pid_max is at most 4194304: no process here has this pid
  const c = { pid: 4_194_400, comm: 'curl', conn: 'c9', local: '10.0.0.5:40009', remote: '10.0.0.9:8443' };
  const other = { ...c, conn: 'c10', local: '10.0.0.5:40010' };
  const at = (e: TlsEvent, ms: number): NodeTls => on('n1', { ...e, timestamp: ms, monotonicNs: BigInt(ms) * 1_000_000n });
  const t = 5_000_000;
  // the response comes 1.6 s after the request; another connection's call in between lets the pairing sweep
  const events = [
    at(tlsEvent({ ...c, direction: 'write', text: 'GET /slow HTTP/1.1\r\nHost: api.test\r\n\r\n' }), t),
    at(tlsEvent({ ...other, direction: 'write', text: 'x' }), t + 1500),
    at(tlsEvent({ ...c, direction: 'read', text: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok' }), t + 1600),
  ];
  await hub.run<NodeTls>({
    gadget: 'trace tls', fields: tlsDataFields({ json: true, hex: false }), httpFields: tlsHttpFields(), nodeOf: (e) => e.k8s?.node,
    messages: feed(events.map((e) => ({ type: 'events', events: [e] }))),
  });
  const http = [...hub.ring.values()].map((x) => x.entry).filter((e) => e.kind === 'http');
  assert.deepEqual(http.map((e) => [e.path, e.status, (e.json['http'] as { end?: string } | undefined)?.end]), [['/slow', 200, 'complete']]);
  hub.stop();
});

test('hub without nodeOf: every entry has the hub\'s node (tlscope ui, local)', async () => {
  const hub = new UiHub({ ring: new EntryRing({ capacity: 100, maxBytes: 1 << 20 }), node: 'this-host' });
  const c = { pid: 201, comm: 'curl', conn: 'c2', local: '127.0.0.1:40001', remote: '127.0.0.1:8443' };
  await hub.run<NodeTls>({
    gadget: 'trace tls',
    fields: tlsDataFields({ json: true, hex: false }),
    httpFields: tlsHttpFields(),
    messages: feed([{ type: 'events', events: [on('n1', tlsEvent({ ...c, direction: 'write', text: 'GET /x HTTP/1.1\r\nHost: h\r\n\r\n' })), on('n1', tlsEvent({ ...c, direction: 'read', text: 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n' }))] }]),
  });
  const all = [...hub.ring.values()].map((x) => x.entry);
  assert.ok(all.length > 0);
  for (const e of all) assert.equal(e.node, 'this-host');
  assert.equal(hub.node, 'this-host');
  hub.stop();
});
