// SPDX-License-Identifier: Apache-2.0
/**
 * The node agent as the DaemonSet runs it, on this host: `tlscope agent` follows containerd
 * (no start hook: it is given its runtime clients, as in a pod), and a client runs one
 * `trace sni` session after another, scoped to a namespace, as `kubectl tlscope` does on each
 * test. In every session, pods made through containerd's CRI plugin (kubelet's labels) whose
 * app's first act is a TLS request are reported with namespace, pod and container: a later
 * session on the same agent must see new pods as well as the first one did (the cluster phase
 * once lost them from the second session on: "unattributed, not in scope").
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { notRoot } from '../../helpers/root.js';
import { CLI } from '../../helpers/cli.js';
import { ensureRuntimes, runtimeSkipReason, TestContainers, uniqueName, type RuntimeEnvironment, type TestContainer } from '../../helpers/runtimes.js';
import { removeTestCertificate, startTlsServer, testName, type TestTlsServer } from '../sni/helpers.js';
import { gatewayOf } from '../start/helpers.js';
import { sleep } from '../../helpers/wait.js';
import { agentClient, type AgentClient, type AgentStats, type RunMessage, type RunRequest } from '../../../src/kube/proto.js';

const SESSIONS = 3;
const PODS_PER_SESSION = 3;

let env: RuntimeEnvironment;
let containers: TestContainers;
let server: TestTlsServer;
interface TestAgent {
  child: ChildProcess;
  err: () => string;
  client: AgentClient;
}
const agents: TestAgent[] = [];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitFor(what: string, ok: () => boolean, ms: number, said: () => string): Promise<void> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(100)) if (ok()) return;
  throw new Error(`timed out waiting for ${what}; agent said:\n${said()}`);
}

/** `tlscope agent` on this host, as a child process, with `extra` flags; resolves once it is ready. */
async function startAgent(extra: string[]): Promise<TestAgent> {
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, 'agent', '--listen', `127.0.0.1:${port}`, '--node', 'agent-test-node', ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  const a: TestAgent = { child, err: () => err, client: agentClient(`127.0.0.1:${port}`) };
  agents.push(a);
  await waitFor('the agent to be ready', () => /: ready \(/.test(err), 60_000, () => err);
  return a;
}

const skip = notRoot || runtimeSkipReason('containerd');

before(async () => {
  if (skip !== false) return;
  env = await ensureRuntimes();
  containers = new TestContainers(env);
  server = await startTlsServer('0.0.0.0');
});

after(async () => {
  for (const a of agents) {
    a.client.close();
    if (a.child.exitCode !== null || a.child.signalCode !== null) continue;
    const gone = new Promise((resolve) => a.child.once('close', resolve));
    a.child.kill('SIGTERM');
    await gone;
  }
  await server?.close();
  removeTestCertificate();
  await containers?.cleanup();
});

interface Run {
  events: Record<string, any>[];
  notes: string[];
  stats: AgentStats | undefined;
  error: string | undefined;
  started: Promise<void>;
  ended: Promise<void>;
  cancel(): void;
}

function run(client: AgentClient, namespace: string): Run {
  const req: RunRequest = {
    gadget: 'trace sni', params: {},
    scope: { runtimes: [], container_names: [], host: false, pids: [], k8s_namespace: namespace, k8s_pod_name: '', k8s_container_name: '', k8s_selector: {} },
    filter: '', timeout_ms: 0, verbose: true, json_view: true, max_queued_events: 0,
  };
  const stream = client.Run(req);
  const r: Run = { events: [], notes: [], stats: undefined, error: undefined, started: Promise.resolve(), ended: Promise.resolve(), cancel: () => stream.cancel() };
  r.started = new Promise((resolve) => stream.on('data', (m: RunMessage) => { if (m.kind === 'started') resolve(); }));
  stream.on('data', (m: RunMessage) => {
    if (m.kind === 'events') for (const j of m.events?.json ?? []) r.events.push(JSON.parse(j));
    if (m.kind === 'stats') r.stats = m.stats;
    if (m.kind === 'error') r.error = `${m.error?.code}: ${m.error?.text}`;
    if (m.kind === 'warning' || m.kind === 'info') r.notes.push(`${m.kind}: ${JSON.stringify(m.warning ?? m.info)}`);
  });
  r.ended = new Promise((resolve) => {
    stream.on('end', () => resolve());
    stream.on('error', () => resolve());
  });
  return r;
}

async function sessionsInARow(t: { diagnostic(m: string): void }, mode: string, agentFlags: string[], hookLine: RegExp): Promise<void> {
  const agent = await startAgent(agentFlags);
  assert.match(agent.err(), hookLine);
  const client = agent.client;
  const namespace = `agent-${mode}-${process.pid}`;
  const uid = (s: number, i: number): string => `a6e1${(process.pid % 0x10000).toString(16).padStart(4, '0')}-0000-4000-8${mode === 'hook' ? '0' : '1'}00-${(s * 100 + i).toString(16).padStart(12, '0')}`;
  // the gateway, from a pod in another namespace (out of every session's scope)
  const probe = await containers.runPod({ namespace: `${namespace}-probe`, name: 'probe', uid: uid(99, 0) }, [{ name: 'app' }]);
  const probeC: TestContainer = { runtime: 'containerd', name: probe.containerIds[0]!, id: probe.containerIds[0]!, pid: probe.pids[0]!, namespace: 'k8s.io' };
  const gateway = await gatewayOf(containers, probeC);
  await containers.removePod(probe.sandboxId);
  const curl = (name: string): string[] => ['curl', '-sk', '--http1.1', '--max-time', '10', '--resolve', `${name}:${server.port}:${gateway}`, `https://${name}:${server.port}/`];

  const problems: string[] = [];
  for (let s = 0; s < SESSIONS; s++) {
    const r = run(client, namespace);
    await r.started;
    const names: string[] = [];
    const pods: string[] = [];
    for (let i = 0; i < PODS_PER_SESSION; i++) {
      const name = testName(`agent-s${s}-p${i}`);
      const podName = uniqueName(`ag${s}${i}`);
      names.push(name);
      pods.push(podName);
      const pod = await containers.runPod({ namespace, name: podName, uid: uid(s, i) }, [{ name: 'app', command: curl(name) }]);
      const x = await containers.podContainerExit(pod.sandboxId, pod.containerIds[0]!);
      await containers.removePod(pod.sandboxId);
      assert.equal(x.exitCode, 0, `pod ${podName} made its request: ${x.stdout}`);
    }
    // the session holds unknown namespaces up to 2 s: let it decide, then end it
    await sleep(3000);
    r.cancel();
    await r.ended;
    for (let i = 0; i < names.length; i++) {
      const mine = r.events.filter((e) => e['name'] === names[i]);
      const named = mine.filter((e) => e['k8s']?.['namespace'] === namespace && e['k8s']?.['podName'] === pods[i] && e['k8s']?.['containerName'] === 'app' && e['k8s']?.['node'] === 'agent-test-node');
      if (named.length === 0) problems.push(`session ${s + 1}: ${names[i]} (pod ${pods[i]}) ${mine.length === 0 ? 'not shown' : `shown as ${JSON.stringify(mine.map((e) => ({ runtime: e['runtime'], k8s: e['k8s'] })))}`}; stats ${JSON.stringify(r.stats?.misses ?? {})}`);
    }
    t.diagnostic(`${mode}: session ${s + 1}: ${r.events.length} events, misses ${JSON.stringify(r.stats?.misses ?? {})}${r.error === undefined ? '' : `, ended by ${r.error}`}`);
  }
  assert.deepEqual(problems, [], `agent log:\n${agent.err()}`);
  // every session ended when its client went (none left running, holding its programs)
  const ended = agent.err().match(/trace sni ended \(client gone\)/g)?.length ?? 0;
  for (let i = 0; i < 50 && (agent.err().match(/trace sni ended \(client gone\)/g)?.length ?? 0) < SESSIONS; i++) await sleep(100);
  assert.equal(agent.err().match(/trace sni ended \(client gone\)/g)?.length ?? 0, SESSIONS, `sessions ended ${ended} of ${SESSIONS}:\n${agent.err()}`);
}

test(`the agent (start hook on, as on a node's host): ${SESSIONS} trace sni sessions one after another each see the pods whose first act is a TLS request, with namespace and pod`, { skip, timeout: 10 * 60_000 }, async (t) => {
  if (!env.criReady) {
    t.skip('containerd answers, but its CRI plugin does not (CRI Version failed)');
    return;
  }
  await sessionsInARow(t, 'hook', [], /container start hook: on \(/);
});

test(`the agent without the start hook (as in a pod): ${SESSIONS} trace sni sessions one after another each see the pods whose first act is a TLS request, with namespace and pod`, { skip, timeout: 10 * 60_000 }, async (t) => {
  if (!env.criReady) {
    t.skip('containerd answers, but its CRI plugin does not (CRI Version failed)');
    return;
  }
  await sessionsInARow(t, 'nohook', ['--no-start-hook'], /container start hook: off \(turned off\): .*watch every network namespace/);
});
