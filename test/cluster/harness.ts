// SPDX-License-Identifier: Apache-2.0
/**
 * The cluster tests' harness: the cluster that `scripts/cluster.sh up` started (the test
 * runner's cluster phase starts it and takes it down), kubectl against it, the plugin as a
 * child process, and the images the pods run (the agent image and the busybox + curl/openssl
 * test image), imported into every node.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { buildTestImage } from '../helpers/image.js';
import { buildAgentImage, REPO_ROOT } from './agent-image.js';

const CLUSTER = join(REPO_ROOT, 'scripts', 'cluster.sh');
export const WORK = process.env['TLSCOPE_CLUSTER_WORK'] ?? '/var/cache/tlscope-cluster/test-images';
export const NODES = ['tlscope-n1', 'tlscope-n2'];

export function cluster(...args: string[]): string {
  return execFileSync('bash', [CLUSTER, ...args], { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], timeout: 300_000 }).trim();
}

export function kubeconfig(): string {
  return cluster('kubeconfig');
}

export function kubectl(args: string[], input?: string): string {
  return execFileSync('bash', [CLUSTER, 'kubectl', ...args], { encoding: 'utf8', input: input ?? '', stdio: ['pipe', 'pipe', 'pipe'], timeout: 180_000 }).trim();
}

export function tryKubectl(args: string[]): { ok: boolean; out: string } {
  try {
    return { ok: true, out: kubectl(args) };
  } catch (e) {
    const x = e as { stderr?: string; stdout?: string };
    return { ok: false, out: `${x.stdout ?? ''}${x.stderr ?? ''}` };
  }
}

export interface Images {
  agent: string;
  test: string;
}

let images: Images | undefined;

/** Builds both images (cached by content) and imports them into every node. */
export function loadImages(): Images {
  if (images !== undefined) return images;
  mkdirSync(WORK, { recursive: true });
  const agent = buildAgentImage(WORK);
  const test = buildTestImage(WORK);
  cluster('load-image', agent.tarball, test.tarball);
  images = { agent: agent.name, test: `${test.repository}:${test.tag}` };
  return images;
}

export interface Plugin {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** resolves when stderr matches */
  waitFor(re: RegExp, ms: number): Promise<void>;
  exit: Promise<number>;
}

export function plugin(args: string[], opts: { kubeconfig?: string } = {}): Plugin {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'dist/src/kube/bin.js'), ...args, '--kubeconfig', opts.kubeconfig ?? kubeconfig()], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
    for (const w of [...waiters]) if (w.re.test(err)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(); }
  });
  const exit = new Promise<number>((resolve) => child.on('close', (code, sig) => resolve(code ?? (sig === 'SIGINT' ? 130 : 1))));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exit,
    waitFor(re, ms) {
      if (re.test(err)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`plugin stderr did not match ${re} in ${ms} ms:\n${err}`)), ms);
        waiters.push({ re, resolve: () => { clearTimeout(t); resolve(); } });
        void exit.then(() => { clearTimeout(t); if (!re.test(err)) reject(new Error(`plugin ended before ${re}:\n${err}`)); });
      });
    },
  };
}

/** Runs the plugin to its end. */
export async function pluginRun(args: string[], opts: { kubeconfig?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = plugin(args, opts);
  const code = await p.exit;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

export function jsonLines(text: string): Record<string, any>[] {
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, any>);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function podYaml(o: { name: string; namespace: string; node: string; image: string; command: string[]; restart?: 'Never' | 'Always'; labels?: Record<string, string> }): string {
  return JSON.stringify({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: o.name, namespace: o.namespace, labels: { 'tlscope.test/e2e': 'yes', ...(o.labels ?? {}) } },
    spec: {
      nodeSelector: { 'kubernetes.io/hostname': o.node },
      restartPolicy: o.restart ?? 'Never',
      terminationGracePeriodSeconds: 1,
      enableServiceLinks: false,
      automountServiceAccountToken: false,
      containers: [{ name: o.name.replace(/-\d+$/, ''), image: o.image, imagePullPolicy: 'Never', command: o.command }],
    },
  });
}

/** A TLS server pod (openssl s_server -www, self-signed) on a node; its pod IP. */
export function startServer(ns: string, name: string, node: string, image: string): string {
  kubectl(['apply', '-f', '-'], podYaml({
    name, namespace: ns, node, image, restart: 'Always',
    command: ['sh', '-c', 'export OPENSSL_CONF=/etc/ssl/openssl.cnf; openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=web.test -keyout /tmp/k -out /tmp/c -days 1 2>/dev/null && exec openssl s_server -accept 8443 -cert /tmp/c -key /tmp/k -www -quiet'],
  }));
  kubectl(['wait', '-n', ns, '--for=condition=Ready', `pod/${name}`, '--timeout=90s']);
  return kubectl(['get', 'pod', '-n', ns, name, '-o', 'jsonpath={.status.podIP}']);
}

/**
 * An HTTPS API pod (openssl s_server -HTTP, self-signed) on a node: GET /orders/42 answers
 * 200 with a JSON body and its Content-Length (so an exchange is complete when its response
 * is, not when a connection or process ends); its pod IP.
 */
export function startApiServer(ns: string, name: string, node: string, image: string): string {
  const body = '{"order":42,"items":["tea","cake"],"ok":true}';
  kubectl(['apply', '-f', '-'], podYaml({
    name, namespace: ns, node, image, restart: 'Always',
    command: ['sh', '-c', `export OPENSSL_CONF=/etc/ssl/openssl.cnf; mkdir -p /tmp/www/orders && cd /tmp/www && printf 'HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: ${body.length}\\r\\nConnection: close\\r\\n\\r\\n%s' '${body}' > orders/42 && openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=api.test -keyout /tmp/k -out /tmp/c -days 1 2>/dev/null && exec openssl s_server -accept 8443 -cert /tmp/c -key /tmp/k -HTTP -quiet`],
  }));
  kubectl(['wait', '-n', ns, '--for=condition=Ready', `pod/${name}`, '--timeout=90s']);
  return kubectl(['get', 'pod', '-n', ns, name, '-o', 'jsonpath={.status.podIP}']);
}

/** A pod pinned to `node` whose first act is an HTTPS request for `sni` (after `delayS` seconds of sleep, if given), of `path` (default /). */
export function startClient(ns: string, name: string, node: string, image: string, sni: string, serverIp: string, delayS = 0, path = '/'): void {
  const curl = ['curl', '-sk', '--max-time', '10', '--resolve', `${sni}:8443:${serverIp}`, `https://${sni}:8443${path}`];
  const command = delayS > 0 ? ['sh', '-c', `sleep ${delayS} && exec ${curl.map((a) => `'${a}'`).join(' ')}`] : curl;
  kubectl(['apply', '-f', '-'], podYaml({ name, namespace: ns, node, image, command }));
}

export function waitSucceeded(ns: string, name: string): void {
  kubectl(['wait', '-n', ns, '--for=jsonpath={.status.phase}=Succeeded', `pod/${name}`, '--timeout=90s']);
}
