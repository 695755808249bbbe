// SPDX-License-Identifier: Apache-2.0
// `kubectl tlscope ui` before it talks to a cluster: its usage errors (the UI's listen rules,
// a bad --query with its column) come first, with no kubeconfig needed; its help; the nodes'
// states as the page's session stats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../../../src/errors.js';
import { kubeMain } from '../../../src/kube/main.js';
import type { NodeState } from '../../../src/kube/stream.js';
import { nodeStats } from '../../../src/kube/ui.js';

function ctx(): { out: { write(s: string): boolean }; err: { write(s: string): boolean }; text: () => string; signal: AbortSignal } {
  let text = '';
  const sink = { write: (s: string): boolean => { text += s; return true; } };
  return { out: sink, err: sink, text: () => text, signal: new AbortController().signal };
}

const NO_CLUSTER = ['--kubeconfig', '/nonexistent/kubeconfig'];

test('kubectl tlscope ui: usage errors before the cluster (no kubeconfig read)', async () => {
  const cases: [string[], RegExp][] = [
    [['--listen', '0.0.0.0'], /would show decrypted traffic to the network/],
    [['--listen', 'nohost'], /--listen wants an IP address/],
    [['--tls-cert', '/x'], /--tls-cert and --tls-key go together/],
    [['--port', '70000'], /--port wants a whole number from 0 to 65535/],
    [['--query', 'proc.comm == '], /--query: .* at column \d+/],
    [['--query', 'nosuch.field == 1'], /--query:/],
    [['--timeout', '0'], /--timeout wants a whole number/],
    [['--bogus'], /bogus/],
  ];
  for (const [args, re] of cases) {
    await assert.rejects(kubeMain(['ui', ...args, ...NO_CLUSTER], ctx()), (e: unknown) => e instanceof UsageError && re.test(e.message), args.join(' '));
  }
  // and a good command line does reach for the cluster: the kubeconfig is what fails
  await assert.rejects(kubeMain(['ui', '--port', '0', '--query', 'k8s.node == "n1"', ...NO_CLUSTER], ctx()), /cannot read the kubeconfig/);
});

test('kubectl tlscope ui --help; ui is in kubectl tlscope\'s usage', async () => {
  const c = ctx();
  assert.equal(await kubeMain(['ui', '--help'], c), 0);
  assert.match(c.text(), /Usage: kubectl tlscope ui \[scope\] \[--port N\] \[--listen ADDR --tls-cert F --tls-key F \| --insecure\] \[--query Q\]/);
  for (const f of ['--node', '--k8s-podname', '--k8s-selector', '--namespace', '--port', '--listen', '--tls-cert', '--insecure', '--query', '--no-redact']) assert.ok(c.text().includes(f), f);
  assert.ok(!c.text().includes('--output'), 'no -o: the page is the output');
  const u = ctx();
  assert.equal(await kubeMain(['--help'], u), 0);
  assert.match(u.text(), /^ {2}ui {2,}/m);
});

test('nodeStats: the nodes\' counts added up, one line per node with its state and why', () => {
  const n = (node: string, state: NodeState['state'], shown: number, extra: Partial<NodeState> = {}): NodeState => ({
    node, state, pod: `agent-${node}`, reason: undefined, gone: 0, shown, lost: 1, misses: { 'no socket': 2 }, outOfScope: 3, filtered: 4, held: 0, dropped: 0, counters: {}, ...extra,
  });
  const s = nodeStats([n('n1', 'running', 10), n('n2', 'gone', 5, { reason: 'pod deleted', gone: 1 })]);
  assert.equal(s.shown, 15);
  assert.equal(s.lost, 2);
  assert.deepEqual(s.misses, { 'no socket': 4 });
  assert.equal(s.outOfScope, 6);
  assert.equal(s.filtered, 8);
  assert.deepEqual(s.nodes, [
    { node: 'n1', state: 'running', gone: 0, shown: 10, lost: 1, pod: 'agent-n1' },
    { node: 'n2', state: 'gone', gone: 1, shown: 5, lost: 1, pod: 'agent-n2', reason: 'pod deleted' },
  ]);
});
