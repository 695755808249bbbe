// SPDX-License-Identifier: Apache-2.0
/**
 * Redaction by default where events leave the process: a real curl over TLS (loopback, a *.test
 * name) sends `Authorization: Bearer SECRET-…` and a Cookie to a local TLS server, traced
 * (a) by the node agent (in-process, real kernel) and read through its gRPC stream with the
 * kubectl plugin's client, and (b) by `tlscope ui` (the real CLI) and read through its HTTP API:
 * the JSON lines, every entry's detail, the live stream and the pcapng download. The secrets are
 * in no byte received (base64 decoded too), while the request's method and path are (so the
 * check can fail); with no-redact (the request's param, `tlscope ui --no-redact`) they are.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { featureSkip, NEEDS } from '../../helpers/features.js';
import { CliProcess } from '../../helpers/cli.js';
import { startProcess } from '../../helpers/process.js';
import { sleep, waitFor } from '../../helpers/wait.js';
import { makeWorkDir, startPyServer, type PyServer } from './helpers.js';
import { Agent } from '../../../src/agent/server.js';
import { ContainerIndex } from '../../../src/containers/index.js';
import { agentClient, type RunMessage, type RunRequest } from '../../../src/kube/proto.js';

const kernelSkip = featureSkip(...NEEDS.tls);

let work: ReturnType<typeof makeWorkDir>;
let py: PyServer;

before(async () => {
  if (kernelSkip) return;
  work = makeWorkDir('tlscope-redact-');
  py = await startPyServer(work);
});

after(async () => {
  if (kernelSkip) return;
  await py?.close();
  work?.remove();
});

interface Probe { path: string; bearer: string; cookie: string }

function probe(): Probe {
  const r = randomBytes(8).toString('hex');
  return { path: `/redact-probe-${r}`, bearer: `SECRET-${r}`, cookie: `COOKIESECRET-${r}` };
}

async function curl(p: Probe): Promise<void> {
  const r = await startProcess('curl', ['-sk', '--http1.1', '--resolve', `shop.test:${py.port}:127.0.0.1`, '-H', `Authorization: Bearer ${p.bearer}`, '-b', `session=${p.cookie}`, `https://shop.test:${py.port}${p.path}`]).done;
  assert.equal(r.code, 0, r.stderr);
}

/** The text and, for every base64-looking run in it, its decoding (data and chunks are base64 in places). */
function decoded(text: string): string {
  const parts = [text];
  for (const m of text.matchAll(/[A-Za-z0-9+/]{12,}={0,2}/g)) parts.push(Buffer.from(m[0], 'base64').toString('latin1'));
  return parts.join('\n');
}

function assertMasked(what: string, bytes: string, p: Probe): void {
  const all = decoded(bytes);
  assert.ok(all.includes(p.path), `${what}: the request's path is there (${bytes.length} bytes)`);
  assert.ok(!all.includes(p.bearer), `${what}: the bearer token leaked`);
  assert.ok(!all.includes(p.cookie), `${what}: the cookie leaked`);
}

function assertClear(what: string, bytes: string, p: Probe): void {
  const all = decoded(bytes);
  assert.ok(all.includes(p.path), `${what}: the request's path is there`);
  assert.ok(all.includes(p.bearer), `${what}: with no-redact the bearer token is shown`);
  assert.ok(all.includes(p.cookie), `${what}: with no-redact the cookie is shown`);
}

/** One agent Run over the host's curl calls; curl runs until the path shows up; everything received, as text. */
async function throughAgent(params: Record<string, string>, p: Probe): Promise<string> {
  const index = new ContainerIndex({ clients: [] });
  const logs: string[] = [];
  const agent = new Agent({ node: 'redact-node', listen: '127.0.0.1:0', version: 'test', index, log: (t) => logs.push(t) });
  await agent.start();
  const client = agentClient(agent.address);
  const received: string[] = [];
  try {
    const req: RunRequest = {
      gadget: 'trace tls', params,
      scope: { runtimes: [], container_names: [], host: true, pids: [], k8s_namespace: '', k8s_pod_name: '', k8s_container_name: '', k8s_selector: {} },
      filter: 'proc.comm==curl', timeout_ms: 0, verbose: false, json_view: true, max_queued_events: 0,
    };
    const call = client.Run(req);
    let started = false;
    let ended = false;
    call.on('data', (m: RunMessage) => {
      received.push(JSON.stringify(m));
      if (m.started !== undefined) started = true;
    });
    call.on('error', () => (ended = true));
    call.on('end', () => (ended = true));
    await waitFor('the agent session to start', () => (started || ended ? true : undefined), 60_000, () => logs.join('\n'));
    assert.ok(started, `session started: ${received.join('\n')}\n${logs.join('\n')}`);
    await waitFor('the curl request through the agent', async () => {
      await curl(p);
      await sleep(500);
      return decoded(received.join('\n')).includes(p.path) ? true : undefined;
    }, 60_000, () => received.join('\n'));
    await curl(p);
    await sleep(1000);
    call.cancel();
    assert.ok(logs.some((l) => /ready .*credentials are masked/.test(l)), logs.join('\n'));
  } finally {
    client.close();
    await agent.stop();
    await index.close();
  }
  return received.join('\n');
}

test('agent: trace tls over gRPC masks Authorization and Cookie by default', { skip: kernelSkip }, async () => {
  const p = probe();
  const got = await throughAgent({}, p);
  assertMasked('agent gRPC stream (raw calls)', got, p);
});

test('agent: --http exchanges over gRPC masked by default', { skip: kernelSkip }, async () => {
  const p = probe();
  const got = await throughAgent({ http: 'true' }, p);
  assertMasked('agent gRPC stream (--http)', got, p);
  assert.match(got, /GET/);
});

test('agent: a request with no-redact=true gets the credentials', { skip: kernelSkip }, async () => {
  const p = probe();
  const got = await throughAgent({ 'no-redact': 'true' }, p);
  assertClear('agent gRPC stream with no-redact', got, p);
});

function get(url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    request(url, (res) => {
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => resolve(Buffer.concat(parts)));
      res.on('error', reject);
    }).on('error', reject).end();
  });
}

/** The live stream (server-sent events, never ends): what came so far, and close. */
function openStream(url: string): { text(): string; close(): void } {
  const parts: Buffer[] = [];
  const req = request(url, (res) => res.on('data', (b: Buffer) => parts.push(b)));
  req.on('error', () => undefined);
  req.end();
  return { text: () => Buffer.concat(parts).toString('latin1'), close: () => void req.destroy() };
}

/** `tlscope ui` with ARGS; curl until the path is in the JSON lines; every byte of the API's answers. */
async function throughUi(args: readonly string[], p: Probe): Promise<{ all: string; pcapng: string; stdout: string }> {
  const ui = new CliProcess(['ui', '--host', '--port', '0', '--timeout', '300', ...args]);
  try {
    const url = await waitFor('the ui URL', () => {
      if (ui.exited) throw new Error(`tlscope ui exited: ${ui.stderr}`);
      return /open (http:\S+)/.exec(ui.stdoutText)?.[1];
    }, 60_000, () => ui.stderr);
    const base = new URL(url);
    const token = base.searchParams.get('token') ?? '';
    const api = (path: string, q = ''): string => `${base.origin}${path}?token=${token}${q}`;
    const live = openStream(api('/api/stream'));
    await waitFor('the curl request in the ui', async () => {
      await curl(p);
      await sleep(700);
      return decoded((await get(api('/api/download.jsonl'))).toString('latin1')).includes(p.path) ? true : undefined;
    }, 60_000, () => ui.stderr);
    const jsonl = (await get(api('/api/download.jsonl'))).toString('latin1');
    await sleep(500);
    const stream = live.text();
    live.close();
    // every entry's detail (headers, bodies, the raw calls as base64) the page would open
    const entries: string[] = [];
    const seqs = new Set([...stream.matchAll(/"seq":(\d+)/g)].map((m) => Number(m[1])));
    assert.ok(seqs.size > 0, `the live stream had entries: ${stream.slice(0, 2000)}`);
    for (const seq of [...seqs].slice(-2000)) entries.push((await get(api(`/api/entry/${seq}`))).toString('latin1'));
    const pcapng = (await get(api('/api/download.pcapng'))).toString('latin1');
    return { all: [jsonl, ...entries, stream, pcapng].join('\n'), pcapng, stdout: ui.stdoutText };
  } finally {
    await ui.stop();
  }
}

test('ui: the views, entries, live stream and pcapng download mask Authorization and Cookie by default', { skip: kernelSkip }, async () => {
  const p = probe();
  const r = await throughUi([], p);
  assert.match(r.stdout, /credentials are masked .*--no-redact/);
  assertMasked('ui API (jsonl, entries, stream, pcapng)', r.all, p);
  assertMasked('ui pcapng download', r.pcapng, p);
});

test('ui --no-redact shows them', { skip: kernelSkip }, async () => {
  const p = probe();
  const r = await throughUi(['--no-redact'], p);
  assert.match(r.stdout, /NOT masked/);
  assertClear('ui API with --no-redact', r.all, p);
  assertClear('ui pcapng download with --no-redact', r.pcapng, p);
});
