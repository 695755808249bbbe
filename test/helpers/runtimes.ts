// SPDX-License-Identifier: Apache-2.0
/**
 * The container runtimes integration tests run against: docker, containerd (plus its CRI
 * plugin) and podman, started here when not already running, and a locally built test image
 * loaded into each. Shared by every integration test file.
 *
 * - Start order matters: containerd first, so that dockerd uses it (namespace `moby`) instead
 *   of starting a private one; then dockerd; then podman's Docker-compatible service.
 * - Daemons started here stay running for the rest of the test run (other files reuse them);
 *   they are started in their own session with logs under STATE_DIR.
 * - Setup is idempotent and serialised between concurrent test processes by a lock file.
 * - Containers, pods and CNI leases a test creates are tracked and removed by `cleanup()`;
 *   nothing else is touched, and no process is killed except the containers' own.
 *
 * Host set-up this relies on (Debian 12 packages): docker.io, containerd, runc, podman,
 * containernetworking-plugins, busybox-static, plus curl and openssl for the image's TLS tools.
 * It writes, when missing: /etc/containers/containers.conf (podman's default_ulimits),
 * /opt/cni/bin → /usr/lib/cni, /etc/cni/net.d/10-tlscope-test.conflist (a bridge).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { credentials, Client, Metadata, type ServiceError } from '@grpc/grpc-js';
import { loadSync, type MethodDefinition } from '@grpc/proto-loader';
import { buildTestImage, findBusybox } from './image.js';
import { commandProbe, ensureDaemon, httpProbe, type DaemonSpec, type EnsureOutcome } from './daemons.js';
import { describeSweep, OWNER_LABEL, OWNER_START_LABEL, processStart, sweepLeftovers } from './leftovers.js';

const run = promisify(execFile);

export type TestRuntime = 'docker' | 'containerd' | 'podman';
export const TEST_RUNTIMES: readonly TestRuntime[] = ['docker', 'containerd', 'podman'];

/** Machine-wide: the daemons are machine-wide too. tmpfs, so it starts empty after a reboot. */
export const STATE_DIR = '/run/tlscope-test';
const LOCK = join(STATE_DIR, 'setup.lock');
export const CONTAINERD_SOCKET = '/run/containerd/containerd.sock';
export const DOCKER_SOCKET = '/var/run/docker.sock';
export const PODMAN_SOCKET = '/run/podman/podman.sock';
const CNI_CONFLIST = '/etc/cni/net.d/10-tlscope-test.conflist';
/** The bridge network `ctr run --cni` and CRI pods get; named first so it is the one chosen. */
export const CNI_NETWORK = { name: 'tlscope-test', bridge: 'tlscope0', subnet: '10.222.0.0/16' } as const;

const BINARIES: Readonly<Record<TestRuntime, readonly (readonly [string, string])[]>> = {
  docker: [['dockerd', 'docker.io'], ['docker', 'docker.io']],
  containerd: [['containerd', 'containerd'], ['ctr', 'containerd'], ['runc', 'runc']],
  podman: [['podman', 'podman']],
};

function onPath(binary: string): boolean {
  const dirs = (process.env['PATH'] ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':');
  return dirs.some((d) => existsSync(join(d, binary)));
}

/**
 * Why tests of `runtime` cannot run here (measured now: root, binaries, busybox), or false.
 * Synchronous, so it can be given to `test(…, { skip })` at definition time.
 */
export function runtimeSkipReason(runtime: TestRuntime): string | false {
  if (process.getuid?.() !== 0) return 'needs root (container runtimes)';
  for (const [binary, pkg] of BINARIES[runtime]) {
    if (!onPath(binary)) return `${binary} is not installed (Debian package ${pkg})`;
  }
  if (findBusybox() === undefined) return 'no static busybox for the test image (Debian package busybox-static)';
  return false;
}

export interface TestImage {
  /** Per runtime, the reference to run. */
  readonly docker: string;
  readonly containerd: string;
  readonly podman: string;
  readonly tarball: string;
}

export interface RuntimeEnvironment {
  readonly image: TestImage;
  /** Runtimes that are up (those whose skip reason was false). */
  readonly ready: ReadonlySet<TestRuntime>;
  /** containerd's CRI plugin answers on its socket (it is enabled in Debian's default config). */
  readonly criReady: boolean;
}

// ---------------------------------------------------------------------------------------------
// small process helpers

async function ok(cmd: string, args: readonly string[], timeoutMs = 10_000): Promise<boolean> {
  try {
    await run(cmd, args, { timeout: timeoutMs });
    return true;
  } catch {
    return false;
  }
}

async function out(cmd: string, args: readonly string[], timeoutMs = 60_000): Promise<string> {
  try {
    const r = await run(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return r.stdout;
  } catch (e) {
    const err = e as { stderr?: string; message?: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(err.stderr ?? '').trim() || err.message}`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function pollUntil(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(150);
  }
  throw new Error(`${what} did not become ready within ${timeoutMs / 1000} s`);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

/** An exclusive lock between test processes (O_EXCL create; a dead holder's lock is taken over). */
async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 300_000;
  for (;;) {
    try {
      const fd = openSync(LOCK, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as { code?: string }).code !== 'EEXIST') throw e;
      let holder = NaN;
      try {
        holder = Number(readFileSync(LOCK, 'utf8').trim());
      } catch {
        continue; // released meanwhile
      }
      if (Number.isInteger(holder) && holder > 0 && !pidAlive(holder)) {
        try {
          renameSync(LOCK, `${LOCK}.stale.${process.pid}`); // atomic: only one taker wins
          unlinkSync(`${LOCK}.stale.${process.pid}`);
        } catch {
          // another process took it over first
        }
        continue;
      }
      if (Date.now() > deadline) throw new Error(`runtime setup lock ${LOCK} held by pid ${holder} for 5 minutes`);
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(LOCK, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// host set-up

function ensureCni(): void {
  // ctr and containerd's CRI plugin look for plugins in /opt/cni/bin; Debian installs them in /usr/lib/cni.
  if (!existsSync('/opt/cni/bin') && existsSync('/usr/lib/cni')) {
    mkdirSync('/opt/cni', { recursive: true });
    symlinkSync('/usr/lib/cni', '/opt/cni/bin');
  }
  if (!existsSync(CNI_CONFLIST)) {
    mkdirSync('/etc/cni/net.d', { recursive: true });
    const conflist = {
      cniVersion: '0.4.0',
      name: CNI_NETWORK.name,
      plugins: [
        {
          type: 'bridge',
          bridge: CNI_NETWORK.bridge,
          isGateway: true, // the host reaches containers on the bridge
          ipMasq: false, // nothing leaves the machine
          ipam: { type: 'host-local', ranges: [[{ subnet: CNI_NETWORK.subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
        },
      ],
    };
    writeFileSync(`${CNI_CONFLIST}.tmp`, `${JSON.stringify(conflist, null, 2)}\n`);
    renameSync(`${CNI_CONFLIST}.tmp`, CNI_CONFLIST);
  }
}

/**
 * podman cannot start containers on these VMs until its default ulimits fit within the hard
 * limits (no CAP_SYS_RESOURCE): see RUNTIMES.md.
 */
async function ensurePodmanConfig(): Promise<void> {
  const path = '/etc/containers/containers.conf';
  const hard = (await out('sh', ['-c', 'ulimit -Hn'])).trim();
  const line = `default_ulimits = ["nofile=${hard}:${hard}", "nproc=4096:4096"]`;
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  if (/^\s*default_ulimits\s*=/m.test(text)) return;
  mkdirSync('/etc/containers', { recursive: true });
  const next = /^\[containers\]\s*$/m.test(text)
    ? text.replace(/^\[containers\]\s*$/m, `[containers]\n# added by tlscope's test harness\n${line}`)
    : `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}[containers]\n# added by tlscope's test harness\n${line}\n`;
  writeFileSync(`${path}.tmp`, next);
  renameSync(`${path}.tmp`, path);
}

/** A `cni-podman0` bridge left by the CNI podman config holds 10.88.0.1 and breaks netavark; remove it only when unused. */
async function removeStaleCniPodmanBridge(): Promise<void> {
  const brif = '/sys/class/net/cni-podman0/brif';
  if (existsSync(brif) && readdirSync(brif).length === 0) await ok('ip', ['link', 'delete', 'cni-podman0']);
}

/**
 * containerd's configuration for the daemon started here: the system's, plus
 * `restrict_oom_score_adj` for the CRI plugin. CRI gives pod sandboxes oom_score_adj -998,
 * and lowering it needs CAP_SYS_RESOURCE, which these VMs lack (runc then fails with "can't
 * get final child's PID from pipe"); restricted, CRI keeps containerd's own score instead.
 */
function containerdConfig(): string {
  const system = '/etc/containerd/config.toml';
  const text = existsSync(system) ? readFileSync(system, 'utf8') : 'version = 2\n';
  const section = '[plugins."io.containerd.grpc.v1.cri"]';
  let config: string;
  if (/^\s*restrict_oom_score_adj\s*=/m.test(text)) config = text;
  else if (text.includes(section)) config = text.replace(section, `${section}\n  restrict_oom_score_adj = true`);
  else if (/^\s*version\s*=\s*2/m.test(text)) config = `${text}\n${section}\n  restrict_oom_score_adj = true\n`;
  else config = text; // an older format: leave it as the system has it
  const path = join(STATE_DIR, 'containerd.toml');
  writeFileSync(path, config);
  return path;
}

/**
 * The daemons as the harness runs them. Each health check asks for something that takes the
 * daemon's own locks (its containers, or `info`, which is what hung when dockerd 20.10
 * deadlocked), not only `/_ping`, which a daemon can answer while the rest of it is stuck.
 */
export function containerdDaemon(opts: { socket?: string; config?: string; stateDir?: string; name?: string } = {}): DaemonSpec {
  const socket = opts.socket ?? CONTAINERD_SOCKET;
  return {
    name: opts.name ?? 'containerd',
    command: 'containerd',
    args: ['--config', opts.config ?? containerdConfig()],
    socket,
    stateDir: opts.stateDir ?? STATE_DIR,
    probe: commandProbe(socket, 'ctr', ['--address', socket, '-n', 'default', 'containers', 'ls', '-q']),
    hint: `Restart it (systemctl restart containerd, or stop it and let the tests start their own), then run the tests again.`,
    readyTimeoutMs: 60_000,
  };
}

/**
 * dockerd, or for the harness's own tests something that behaves like it on a private socket
 * (`command`). Not a second real dockerd: one started with `--bridge none` deletes the host's
 * docker0, which the shared dockerd's containers need.
 */
export function dockerDaemon(opts: { socket?: string; command?: string; args?: readonly string[]; pidFile?: string; stateDir?: string; name?: string } = {}): DaemonSpec {
  const socket = opts.socket ?? DOCKER_SOCKET;
  const pidFile = opts.pidFile ?? '/var/run/docker.pid';
  return {
    name: opts.name ?? 'dockerd',
    command: opts.command ?? 'dockerd',
    args: opts.args ?? [],
    socket,
    stateDir: opts.stateDir ?? STATE_DIR,
    ownPidFiles: [pidFile],
    probe: httpProbe(socket, ['/_ping', '/info']),
    hint: `Restart it (systemctl restart docker; or kill it, remove ${pidFile} and let the tests start their own), then run the tests again.`,
    readyTimeoutMs: 90_000,
  };
}

export function podmanDaemon(opts: { socket?: string; stateDir?: string; name?: string } = {}): DaemonSpec {
  const socket = opts.socket ?? PODMAN_SOCKET;
  return {
    name: opts.name ?? 'podman-service',
    command: 'podman',
    args: ['system', 'service', '--time=0', `unix://${socket}`],
    socket,
    stateDir: opts.stateDir ?? STATE_DIR,
    probe: httpProbe(socket, ['/_ping', '/containers/json?limit=1']),
    hint: `Restart it (systemctl restart podman.socket podman.service, or stop it and let the tests start their own), then run the tests again.`,
    readyTimeoutMs: 60_000,
  };
}

/** Logs what was done about a daemon that did not answer (the test output keeps it). */
function report(outcome: EnsureOutcome): void {
  if (outcome.action === 'restarted') process.stderr.write(`# test harness: ${outcome.why}; restarted it (pid ${outcome.stoppedPid} stopped, pid ${outcome.pid} started)\n`);
}

async function ensureContainerd(): Promise<void> {
  report(await ensureDaemon(containerdDaemon()));
}

async function ensureDocker(): Promise<void> {
  report(await ensureDaemon(dockerDaemon()));
}

async function ensurePodman(): Promise<void> {
  await ensurePodmanConfig();
  await removeStaleCniPodmanBridge();
  mkdirSync('/run/podman', { recursive: true });
  report(await ensureDaemon(podmanDaemon()));
}

/** The image containerd's CRI plugin starts each pod sandbox from (its "pause" image). */
async function criSandboxImage(): Promise<string> {
  const dump = await out('containerd', ['--config', containerdConfig(), 'config', 'dump']);
  return /^\s*sandbox_image\s*=\s*"([^"]+)"/m.exec(dump)?.[1] ?? 'registry.k8s.io/pause:3.6';
}

async function loadImage(runtime: TestRuntime, image: TestImage, name: string): Promise<void> {
  switch (runtime) {
    case 'docker':
      if (!(await ok('docker', ['image', 'inspect', image.docker]))) await out('docker', ['load', '-i', image.tarball]);
      return;
    case 'podman':
      if (!(await ok('podman', ['image', 'exists', image.podman]))) await out('podman', ['load', '-i', image.tarball]);
      return;
    case 'containerd':
      for (const ns of ['default', 'k8s.io']) {
        const refs = (await out('ctr', ['-n', ns, 'images', 'ls', '-q'])).split('\n');
        if (!refs.includes(image.containerd)) await out('ctr', ['-n', ns, 'images', 'import', image.tarball]);
      }
      {
        // No registry: when the CRI plugin's pause image is missing, the test image stands in
        // (its default command sleeps forever, which is all a sandbox does).
        const refs = (await out('ctr', ['-n', 'k8s.io', 'images', 'ls', '-q'])).split('\n');
        if (!refs.includes(name)) await out('ctr', ['-n', 'k8s.io', 'images', 'tag', image.containerd, name]);
      }
      return;
  }
}

/**
 * Loads an image built by image.ts (`archiveRootfs`) into a runtime that is up, unless it holds
 * it already; returns the reference to run it by there.
 */
export async function loadBuiltImage(runtime: TestRuntime, built: { repository: string; tag: string; tarball: string }): Promise<string> {
  const ref = `${built.repository}:${built.tag}`;
  switch (runtime) {
    case 'docker':
      if (!(await ok('docker', ['image', 'inspect', ref]))) await out('docker', ['load', '-i', built.tarball]);
      return ref;
    case 'podman':
      if (!(await ok('podman', ['image', 'exists', `localhost/${ref}`]))) await out('podman', ['load', '-i', built.tarball]);
      return `localhost/${ref}`;
    case 'containerd': {
      const full = `docker.io/library/${ref}`;
      if (!(await out('ctr', ['-n', 'default', 'images', 'ls', '-q'])).split('\n').includes(full)) await out('ctr', ['-n', 'default', 'images', 'import', built.tarball]);
      return full;
    }
  }
}

let environment: Promise<RuntimeEnvironment> | undefined;

/**
 * Starts (if needed) every runtime whose skip reason is false and loads the test image into it.
 * Safe to call from every test file, concurrently too. Throws when a runtime that is installed
 * does not come up: that is a failure to look at, not a reason to skip.
 */
export function ensureRuntimes(): Promise<RuntimeEnvironment> {
  environment ??= (async () => {
    mkdirSync(STATE_DIR, { recursive: true });
    return withLock(async () => {
      const wanted = TEST_RUNTIMES.filter((r) => runtimeSkipReason(r) === false);
      const built = buildTestImage(STATE_DIR);
      const ref = `${built.repository}:${built.tag}`;
      const image: TestImage = { docker: ref, podman: `localhost/${ref}`, containerd: `docker.io/library/${ref}`, tarball: built.tarball };
      if (wanted.includes('containerd')) {
        ensureCni();
        await ensureContainerd();
        await loadImage('containerd', image, await criSandboxImage());
      }
      if (wanted.includes('docker')) {
        await ensureDocker();
        await loadImage('docker', image, '');
      }
      if (wanted.includes('podman')) {
        await ensurePodman();
        await loadImage('podman', image, '');
      }
      // containers, namespaces and private daemons of test processes that were killed
      const swept = describeSweep(await sweepLeftovers(STATE_DIR));
      if (swept !== undefined) process.stderr.write(`# test harness: ${swept}\n`);
      let criReady = false;
      if (wanted.includes('containerd')) {
        const cri = new CriTestClient();
        try {
          await cri.call('Version', { version: 'v1' });
          criReady = true;
        } catch {
          criReady = false;
        } finally {
          cri.close();
        }
      }
      return { image, ready: new Set(wanted), criReady };
    });
  })();
  return environment;
}

// ---------------------------------------------------------------------------------------------
// containers the tests create

export interface TestContainer {
  readonly runtime: TestRuntime;
  readonly name: string;
  readonly id: string;
  /** Host pid of the container's first process. */
  readonly pid: number;
  /** containerd namespace. */
  readonly namespace?: string;
}

export interface RunOptions {
  readonly name?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** Default: sleep forever. */
  readonly command?: readonly string[];
  /** containerd: the namespace (default `default`). */
  readonly namespace?: string;
  /** containerd: attach to the CNI bridge (`ctr run --cni`); default: its own netns with only lo. */
  readonly cni?: boolean;
  /** docker/podman: `--network` value (default: the runtime's bridge). */
  readonly network?: string;
}

/** The labels kubelet puts on a container, for a make-believe pod. */
export function kubeletLabels(pod: { namespace: string; name: string; uid: string; container: string }): Record<string, string> {
  return {
    'io.kubernetes.pod.namespace': pod.namespace,
    'io.kubernetes.pod.name': pod.name,
    'io.kubernetes.pod.uid': pod.uid,
    'io.kubernetes.container.name': pod.container,
  };
}

/** Marks every container a test makes as this process's (see leftovers.ts). */
const OWNER_LABELS: Readonly<Record<string, string>> = { [OWNER_LABEL]: String(process.pid), [OWNER_START_LABEL]: processStart(process.pid) ?? '' };

let counter = 0;
/** A name unique on this machine and recognisable as ours. */
export function uniqueName(prefix = 'tlscope-t'): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter++}`;
}

function taskPidFile(namespace: string, id: string): string {
  return `/run/containerd/io.containerd.runtime.v2.task/${namespace}/${id}/init.pid`;
}

/** Every TestContainers of this process, for the clean-up on SIGTERM/SIGINT. */
const instances = new Set<TestContainers>();

/**
 * A test process stopped by SIGTERM or SIGINT (a CI job cancelled, Ctrl-C) runs no after()
 * hooks: remove its containers here, synchronously and bounded, then let the signal take its
 * course. What even this misses (SIGKILL) is swept by the next run (leftovers.ts).
 */
function cleanupOnSignal(signal: NodeJS.Signals): void {
  const handler = (): void => {
    process.off(signal, handler);
    const deadline = Date.now() + 60_000;
    for (const i of instances) i.removeAllSync(deadline);
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  process.on(signal, handler);
}
cleanupOnSignal('SIGTERM');
cleanupOnSignal('SIGINT');

/**
 * Runs and removes test containers, remembering each so `cleanup()` removes whatever a test
 * left behind (including after a failed assertion).
 */
export class TestContainers {
  private readonly live = new Map<string, TestContainer>();
  /** Foreground `ctr run --rm --cni` processes (they release the CNI lease on exit). */
  private readonly ctrRunners = new Map<string, ChildProcess>();
  private readonly pods = new Map<string, string>();
  private cri: CriTestClient | undefined;

  constructor(private readonly env: RuntimeEnvironment) {
    instances.add(this);
  }

  /** Removes everything tracked, synchronously (for a signal handler); best effort until `deadline`. */
  removeAllSync(deadline: number): void {
    const left = (): number => Math.max(1000, deadline - Date.now());
    const quiet = (cmd: string, args: readonly string[]): void => {
      if (Date.now() > deadline) return;
      try {
        execFileSync(cmd, [...args], { stdio: 'ignore', timeout: left() });
      } catch {
        // best effort: the next run's sweep removes what is left
      }
    };
    for (const runner of this.ctrRunners.values()) runner.kill('SIGKILL');
    for (const c of this.live.values()) {
      if (c.runtime === 'containerd') {
        const ns = c.namespace ?? 'default';
        quiet('ctr', ['-n', ns, 'task', 'kill', '-s', 'SIGKILL', c.name]);
        quiet('ctr', ['-n', ns, 'task', 'delete', '--force', c.name]);
        quiet('ctr', ['-n', ns, 'containers', 'delete', c.name]);
      }
    }
    for (const runtime of ['docker', 'podman'] as const) {
      const names = [...this.live.values()].filter((c) => c.runtime === runtime).map((c) => c.name);
      if (names.length > 0) quiet(runtime, runtime === 'podman' ? ['rm', '-f', '-t', '0', '-i', ...names] : ['rm', '-f', ...names]);
    }
    this.live.clear();
  }

  async run(runtime: TestRuntime, options: RunOptions = {}): Promise<TestContainer> {
    const name = options.name ?? uniqueName();
    const command = options.command ?? ['sleep', 'infinity'];
    const labelArgs = Object.entries({ ...OWNER_LABELS, ...options.labels }).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
    let c: TestContainer;
    switch (runtime) {
      case 'docker':
      case 'podman': {
        const net = options.network === undefined ? [] : ['--network', options.network];
        this.live.set(`${runtime}/${name}`, { runtime, name, id: name, pid: 0 }); // removable by name even if run fails half way
        const id = (await out(runtime, ['run', '-d', '--name', name, ...labelArgs, ...net, runtime === 'docker' ? this.env.image.docker : this.env.image.podman, ...command])).trim();
        const pid = Number((await out(runtime, ['inspect', '-f', '{{.State.Pid}}', id])).trim());
        c = { runtime, name, id, pid };
        break;
      }
      case 'containerd': {
        const ns = options.namespace ?? 'default';
        this.live.set(`${runtime}/${ns}/${name}`, { runtime, name, id: name, pid: 0, namespace: ns });
        const args = ['-n', ns, 'run', ...labelArgs, ...(options.cni ? ['--cni', '--rm'] : ['-d']), this.env.image.containerd, name, ...command];
        if (options.cni) {
          const child = spawn('ctr', args, { stdio: 'ignore' });
          this.ctrRunners.set(`${ns}/${name}`, child);
        } else {
          await out('ctr', args);
        }
        let pid = 0;
        await pollUntil(`containerd task ${name}`, async () => {
          try {
            pid = Number(readFileSync(taskPidFile(ns, name), 'utf8').trim());
          } catch {
            return false;
          }
          return pid > 0;
        }, 20_000);
        c = { runtime, name, id: name, pid, namespace: ns };
        break;
      }
    }
    this.live.set(c.namespace === undefined ? `${runtime}/${name}` : `${runtime}/${c.namespace}/${name}`, c);
    return c;
  }

  /**
   * Runs a command inside a running container and returns its standard output (for traffic
   * from inside a container: `exec(c, ['curl', '-sk', 'https://…'])`).
   */
  async exec(c: TestContainer, command: readonly string[], timeoutMs = 30_000): Promise<string> {
    switch (c.runtime) {
      case 'docker':
      case 'podman':
        return out(c.runtime, ['exec', c.id, ...command], timeoutMs);
      case 'containerd':
        return out('ctr', ['-n', c.namespace ?? 'default', 'task', 'exec', '--exec-id', uniqueName('exec'), c.name, ...command], timeoutMs);
    }
  }

  /** Stops and removes containers (batched per runtime). */
  async remove(...containers: readonly TestContainer[]): Promise<void> {
    for (const runtime of ['docker', 'podman'] as const) {
      const names = containers.filter((c) => c.runtime === runtime).map((c) => c.name);
      for (let i = 0; i < names.length; i += 50) {
        const batch = names.slice(i, i + 50);
        await out(runtime, runtime === 'podman' ? ['rm', '-f', '-t', '0', '-i', ...batch] : ['rm', '-f', ...batch]).catch((e: unknown) => {
          if (!/No such container|no such container/.test(String(e))) throw e;
        });
        for (const n of batch) this.live.delete(`${runtime}/${n}`);
      }
    }
    await Promise.all(containers.filter((c) => c.runtime === 'containerd').map((c) => this.removeContainerd(c)));
  }

  private async removeContainerd(c: TestContainer): Promise<void> {
    const ns = c.namespace ?? 'default';
    const runner = this.ctrRunners.get(`${ns}/${c.name}`);
    if (runner !== undefined) {
      // Kill the task; the foreground `ctr run --rm --cni` then tears down the network and removes the container.
      const exited = runner.exitCode !== null ? Promise.resolve() : new Promise<void>((r) => runner.once('exit', () => r()));
      await ok('ctr', ['-n', ns, 'task', 'kill', '-s', 'SIGKILL', c.name]);
      await Promise.race([exited, sleep(15_000)]);
      this.ctrRunners.delete(`${ns}/${c.name}`);
    } else {
      await ok('ctr', ['-n', ns, 'task', 'delete', '--force', c.name], 20_000);
    }
    await ok('ctr', ['-n', ns, 'container', 'delete', c.name]);
    this.live.delete(`containerd/${ns}/${c.name}`);
  }

  /**
   * A pod through containerd's CRI plugin, as kubelet would create it: a sandbox with the pod's
   * labels and containers labelled with kubelet's io.kubernetes.* labels.
   */
  async runPod(pod: { namespace: string; name: string; uid: string; labels?: Record<string, string> }, containers: readonly { name: string; command?: readonly string[] }[]): Promise<{ sandboxId: string; containerIds: string[]; pids: number[] }> {
    this.cri ??= new CriTestClient();
    const logDir = join(STATE_DIR, 'pods', pod.uid);
    mkdirSync(logDir, { recursive: true });
    const podMeta = { 'io.kubernetes.pod.name': pod.name, 'io.kubernetes.pod.namespace': pod.namespace, 'io.kubernetes.pod.uid': pod.uid };
    const sandboxConfig = {
      metadata: { name: pod.name, uid: pod.uid, namespace: pod.namespace, attempt: 0 },
      hostname: pod.name,
      log_directory: logDir,
      labels: { ...pod.labels, ...podMeta },
      linux: {},
    };
    const sandbox = await this.cri.call('RunPodSandbox', { config: sandboxConfig }, 60_000);
    const sandboxId = String(sandbox['pod_sandbox_id']);
    this.pods.set(sandboxId, logDir);
    const containerIds: string[] = [];
    for (const spec of containers) {
      const created = await this.cri.call('CreateContainer', {
        pod_sandbox_id: sandboxId,
        config: {
          metadata: { name: spec.name, attempt: 0 },
          image: { image: this.env.image.containerd },
          command: [...(spec.command ?? ['sleep', 'infinity'])],
          labels: { ...podMeta, 'io.kubernetes.container.name': spec.name },
          log_path: `${spec.name}.log`,
          linux: {},
        },
        sandbox_config: sandboxConfig,
      }, 60_000);
      const id = String(created['container_id']);
      await this.cri.call('StartContainer', { container_id: id }, 60_000);
      containerIds.push(id);
    }
    // 0 for a container that has already exited (its task directory is gone)
    const pids = containerIds.map((id) => {
      try {
        return Number(readFileSync(taskPidFile('k8s.io', id), 'utf8').trim());
      } catch {
        return 0;
      }
    });
    return { sandboxId, containerIds, pids };
  }

  /**
   * Waits until a pod's container (from runPod) has exited; its exit code and what it wrote to
   * stdout (from the CRI log file kubelet would read: `<time> stdout F <line>`).
   */
  async podContainerExit(sandboxId: string, containerId: string, timeoutMs = 60_000): Promise<{ exitCode: number; stdout: string }> {
    if (this.cri === undefined) throw new Error('podContainerExit: no pod was run');
    const cri = this.cri;
    let status: Record<string, unknown> = {};
    await pollUntil(`pod container ${containerId} exited`, async () => {
      status = ((await cri.call('ContainerStatus', { container_id: containerId })) ['status'] ?? {}) as Record<string, unknown>;
      return status['state'] === 2; // CONTAINER_EXITED
    }, timeoutMs);
    const logDir = this.pods.get(sandboxId) ?? '';
    const logPath = String(status['log_path'] ?? '');
    let stdout = '';
    try {
      const text = readFileSync(logPath.startsWith('/') ? logPath : join(logDir, logPath), 'utf8');
      for (const line of text.split('\n')) {
        const m = /^\S+ stdout ([FP]) (.*)$/.exec(line);
        if (m !== null) stdout += m[2]! + (m[1] === 'F' ? '\n' : '');
      }
    } catch {
      // no log: stdout stays empty
    }
    return { exitCode: Number(status['exit_code'] ?? -1), stdout };
  }

  async removePod(sandboxId: string): Promise<void> {
    if (this.cri === undefined) return;
    await this.cri.call('StopPodSandbox', { pod_sandbox_id: sandboxId }, 60_000);
    await this.cri.call('RemovePodSandbox', { pod_sandbox_id: sandboxId }, 60_000);
    const logDir = this.pods.get(sandboxId);
    if (logDir !== undefined) rmSync(logDir, { recursive: true, force: true });
    this.pods.delete(sandboxId);
  }

  /** Removes everything still tracked. Call from `after()`. */
  async cleanup(): Promise<void> {
    const errors: unknown[] = [];
    for (const sandboxId of [...this.pods.keys()]) await this.removePod(sandboxId).catch((e: unknown) => errors.push(e));
    await this.remove(...this.live.values()).catch((e: unknown) => errors.push(e));
    this.cri?.close();
    this.cri = undefined;
    instances.delete(this);
    if (errors.length > 0) throw new AggregateError(errors, 'test container cleanup failed');
  }

  /** How many containers this instance still tracks. */
  get tracked(): number {
    return this.live.size + this.pods.size;
  }
}

// ---------------------------------------------------------------------------------------------
// kubelet's side of CRI, for tests only (the product only reads; see src/containers/cri.ts)

const CRI_TEST_PROTO = `
syntax = "proto3";
package runtime.v1;
service RuntimeService {
  rpc Version(VersionRequest) returns (VersionResponse);
  rpc RunPodSandbox(RunPodSandboxRequest) returns (RunPodSandboxResponse);
  rpc StopPodSandbox(StopPodSandboxRequest) returns (Empty);
  rpc RemovePodSandbox(RemovePodSandboxRequest) returns (Empty);
  rpc CreateContainer(CreateContainerRequest) returns (CreateContainerResponse);
  rpc StartContainer(StartContainerRequest) returns (Empty);
  rpc ContainerStatus(ContainerStatusRequest) returns (ContainerStatusResponse);
}
message Empty {}
message VersionRequest { string version = 1; }
message VersionResponse { string version = 1; string runtime_name = 2; string runtime_version = 3; string runtime_api_version = 4; }
message PodSandboxMetadata { string name = 1; string uid = 2; string namespace = 3; uint32 attempt = 4; }
message LinuxPodSandboxConfig { string cgroup_parent = 1; }
message PodSandboxConfig {
  PodSandboxMetadata metadata = 1; string hostname = 2; string log_directory = 3;
  map<string, string> labels = 6; map<string, string> annotations = 7; LinuxPodSandboxConfig linux = 8;
}
message RunPodSandboxRequest { PodSandboxConfig config = 1; string runtime_handler = 2; }
message RunPodSandboxResponse { string pod_sandbox_id = 1; }
message StopPodSandboxRequest { string pod_sandbox_id = 1; }
message RemovePodSandboxRequest { string pod_sandbox_id = 1; }
message ContainerMetadata { string name = 1; uint32 attempt = 2; }
message ImageSpec { string image = 1; }
message LinuxContainerConfig {}
message ContainerConfig {
  ContainerMetadata metadata = 1; ImageSpec image = 2; repeated string command = 3; repeated string args = 4;
  map<string, string> labels = 9; map<string, string> annotations = 10; string log_path = 11; LinuxContainerConfig linux = 15;
}
message CreateContainerRequest { string pod_sandbox_id = 1; ContainerConfig config = 2; PodSandboxConfig sandbox_config = 3; }
message CreateContainerResponse { string container_id = 1; }
message StartContainerRequest { string container_id = 1; }
message ContainerStatusRequest { string container_id = 1; bool verbose = 2; }
message ContainerStatus { string id = 1; int32 state = 3; int32 exit_code = 7; string log_path = 15; }
message ContainerStatusResponse { ContainerStatus status = 1; }
`;

class CriTestClient {
  private readonly client: Client;
  private readonly methods: Record<string, MethodDefinition<object, Record<string, unknown>>>;

  constructor(socketPath = CONTAINERD_SOCKET) {
    mkdirSync(STATE_DIR, { recursive: true });
    const file = join(STATE_DIR, 'cri-test.proto');
    if (!existsSync(file) || readFileSync(file, 'utf8') !== CRI_TEST_PROTO) {
      writeFileSync(`${file}.${process.pid}`, CRI_TEST_PROTO);
      renameSync(`${file}.${process.pid}`, file);
    }
    const def = loadSync(file, { keepCase: true, longs: Number, enums: Number, defaults: true });
    this.methods = def['runtime.v1.RuntimeService'] as unknown as Record<string, MethodDefinition<object, Record<string, unknown>>>;
    this.client = new Client(`unix://${socketPath}`, credentials.createInsecure());
  }

  call(method: string, request: object, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const m = this.methods[method];
    if (m === undefined) throw new Error(`no CRI method ${method}`);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, request, new Metadata(), { deadline: Date.now() + timeoutMs }, (err: ServiceError | null, value?: Record<string, unknown>) => {
        if (err) reject(new Error(`CRI ${method}: ${err.details || err.message}`));
        else resolve(value ?? {});
      });
    });
  }

  close(): void {
    this.client.close();
  }
}

/** Open file descriptors of this process (for leak checks). */
export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Whether the process exists (a container's pid after it was removed, say). */
export function processExists(pid: number): boolean {
  try {
    statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}
