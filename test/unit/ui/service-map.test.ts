// SPDX-License-Identifier: Apache-2.0
// The service map: an exchange seen from both ends is one call on one edge; error rates;
// pods and containers as nodes; SNI to an untraced server names it; callers left of callees.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildServiceMap, layoutServiceMap } from '../../../src/ui/service-map.js';
import { entry } from './fixtures.js';

test('service map: both ends of the same calls meet on one edge, counted once, with errors', () => {
  const rows = [];
  let seq = 1;
  for (let i = 0; i < 4; i++) {
    const port = 40000 + i;
    const status = i === 3 ? 503 : 200;
    rows.push(entry({ seq: seq++, kind: 'http', comm: 'curl', pid: 100 + i, role: 'client', src: `127.0.0.1:${port}`, dst: '127.0.0.1:8443', status, host: 'shop.test:8443' }));
    rows.push(entry({ seq: seq++, kind: 'http', comm: 'python3', pid: 50, role: 'server', src: `127.0.0.1:${port}`, dst: '127.0.0.1:8443', status }));
  }
  const m = buildServiceMap(rows);
  assert.deepEqual(m.nodes.map((n) => [n.id, n.kind]).sort(), [['proc:n1/curl', 'process'], ['proc:n1/python3', 'process']]);
  assert.deepEqual(m.edges, [{ from: 'proc:n1/curl', to: 'proc:n1/python3', calls: 4, errors: 1, connections: 0, protocols: ['http'] }]);
  const placed = layoutServiceMap(m, 1000, 400);
  assert.ok((placed.get('proc:n1/curl')?.x ?? 0) < (placed.get('proc:n1/python3')?.x ?? 0), 'the caller is left of the callee');
});

test('service map: only the client traced — the server is its address or host name; pods and containers are nodes', () => {
  const m = buildServiceMap([
    entry({ seq: 1, kind: 'http', comm: 'app', pod: 'shop/web-1', container: 'web', role: 'client', src: '10.0.0.5:5000', dst: '10.0.0.9:443', status: 200, host: 'api.test' }),
    entry({ seq: 2, kind: 'http', comm: 'app', pod: 'shop/web-1', container: 'web', role: 'client', src: '10.0.0.5:5001', dst: '10.0.0.9:443', status: 404, host: 'api.test' }),
    entry({ seq: 3, kind: 'sni', comm: 'wget', container: 'job', src: '172.17.0.3:6000', dst: '10.0.0.7:443', json: { name: 'pay.test', direction: 'out' } }),
    entry({ seq: 4, kind: 'sni', comm: '', pid: 0, src: '10.9.9.9:6000', dst: '10.0.0.8:443', json: { name: 'in.test', direction: 'in' } }),
  ]);
  assert.deepEqual(m.edges.map((e) => [e.from, e.to, e.calls, e.errors, e.connections]).sort(), [
    ['ctr:n1/job', 'name:pay.test', 0, 0, 1],
    ['pod:n1/shop/web-1', 'name:api.test', 2, 1, 0],
  ]);
  const web = m.nodes.find((n) => n.id === 'pod:n1/shop/web-1');
  assert.deepEqual([web?.label, web?.kind, web?.sub], ['web-1', 'pod', 'pod shop · n1']);
  assert.equal(m.nodes.some((n) => n.label === 'in.test'), false, 'a received hello without a local sender adds nothing');
});

test('service map: plaintext calls without HTTP are connections; the lower port is taken as the server', () => {
  const m = buildServiceMap([
    entry({ seq: 1, kind: 'tls', comm: 'redis-cli', role: 'write', src: '127.0.0.1:50000', dst: '127.0.0.1:6380' }),
    entry({ seq: 2, kind: 'tls', comm: 'redis-cli', role: 'read', src: '127.0.0.1:6380', dst: '127.0.0.1:50000' }),
    entry({ seq: 3, kind: 'tls', comm: 'redis-server', role: 'read', src: '127.0.0.1:50000', dst: '127.0.0.1:6380' }),
  ]);
  assert.deepEqual(m.edges.map((e) => [e.from, e.to, e.connections, e.protocols]), [['proc:n1/redis-cli', 'proc:n1/redis-server', 1, ['tls']]]);
});
