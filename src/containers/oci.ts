// SPDX-License-Identifier: Apache-2.0
/**
 * What an OCI runtime's command line and bundle say about a container that is being created:
 * pure functions (no I/O beyond the reads the caller asks for) used by the start hook.
 *
 * Measured on docker 20.10 / containerd 1.6 / podman 4.3 (runc 1.1) — what config.json holds:
 * - docker (containerd namespace `moby`): no annotations at all; the name is in the daemon's
 *   `<data-root>/containers/<id>/config.v2.json` ("Name", written before the start), which is
 *   read instead of asking the API (the daemon holds the container's lock while starting it);
 * - containerd (`ctr run --label k=v`): the labels are copied into `annotations`; its CRI
 *   plugin writes `io.kubernetes.cri.*` (sandbox name/namespace/uid, container name and type);
 *   nerdctl writes `nerdctl/name`;
 * - podman: `io.container.manager: libpod` and `io.podman.annotations.*`, but not the name,
 *   which is on the command line of conmon (`-n NAME`), the process that reads the pid file.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import type { ContainerEntry, Labels, RuntimeName } from './types.js';

/** `runc`/`crun … create --bundle B --pid-file P ID`, as the hook reads it from /proc/PID/cmdline. */
export interface RuntimeCreate {
  readonly verb: 'create' | 'run';
  readonly bundle: string;
  readonly pidFile: string;
  readonly id: string;
}

/** Global options of runc/crun that take a value (before the verb). */
const GLOBAL_WITH_VALUE = new Set(['--root', '--log', '--log-format', '--criu', '--rootless', '--cgroup-manager']);
/** Options of create/run that take a value. */
const CREATE_WITH_VALUE = new Set(['--bundle', '-b', '--pid-file', '--console-socket', '--preserve-fds', '--notify-socket']);

/**
 * Parses an OCI runtime's argv. Undefined unless it creates a container with a pid file (the
 * only form the hook can hold: runtimes write the pid file, and their caller reads it before
 * it starts the container). A relative bundle or pid file is resolved against `cwd`.
 */
export function parseRuntimeCommand(argv: readonly string[], cwd = '/'): RuntimeCreate | undefined {
  let i = 1;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) break;
    if (GLOBAL_WITH_VALUE.has(a)) i++;
  }
  const verb = argv[i];
  if (verb !== 'create' && verb !== 'run') return undefined;
  let bundle = cwd;
  let pidFile: string | undefined;
  let id: string | undefined;
  for (i++; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const [flag, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    if (CREATE_WITH_VALUE.has(flag)) {
      const v = inline ?? argv[++i];
      if (v === undefined) return undefined;
      if (flag === '--bundle' || flag === '-b') bundle = v;
      if (flag === '--pid-file') pidFile = v;
    } else if (!a.startsWith('-')) {
      id = a;
    }
  }
  if (pidFile === undefined || id === undefined) return undefined;
  const abs = (p: string): string => (isAbsolute(p) ? p : join(cwd, p));
  return { verb, bundle: abs(bundle), pidFile: abs(pidFile), id };
}

/** The parts of an OCI runtime spec (config.json) the hook reads. */
export interface OciSpec {
  readonly annotations: Labels;
  readonly rootPath: string;
  readonly hostname: string;
  /** process.args/env/cwd: the container's first program */
  readonly process?: ContainerEntry;
}

/** The environment a program's loader reads; the rest (which may hold secrets) is not kept. */
const ENTRY_ENV = /^(PATH|LD_LIBRARY_PATH)=/;

export function parseOciSpec(text: string): OciSpec {
  const j = JSON.parse(text) as unknown;
  const o = (typeof j === 'object' && j !== null ? j : {}) as Record<string, unknown>;
  const annotations: Record<string, string> = {};
  const a = o['annotations'];
  if (typeof a === 'object' && a !== null) {
    for (const [k, v] of Object.entries(a)) if (typeof v === 'string') annotations[k] = v;
  }
  const root = o['root'] as Record<string, unknown> | undefined;
  const proc = o['process'] as Record<string, unknown> | undefined;
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const args = strings(proc?.['args']);
  return {
    annotations,
    rootPath: typeof root?.['path'] === 'string' ? root['path'] : '',
    hostname: typeof o['hostname'] === 'string' ? o['hostname'] : '',
    ...(args.length === 0 ? {} : { process: { args, env: strings(proc?.['env']).filter((e) => ENTRY_ENV.test(e)), cwd: typeof proc?.['cwd'] === 'string' ? proc['cwd'] : '/' } }),
  };
}

/** Where a bundle says a container comes from. */
export interface BundleOwner {
  readonly runtime: RuntimeName;
  readonly id: string;
  /** containerd's namespace (not for docker's `moby`). */
  readonly runtimeNamespace?: string;
}

const CONTAINERD_TASK_DIR = /\/io\.containerd\.runtime\.v2\.task\/([^/]+)\/([^/]+)\/?$/;
const STORAGE_CONTAINER_DIR = /\/overlay-containers\/([0-9a-f]{64})\/userdata\/?$/;

/** The runtime, id (and containerd namespace) of a bundle directory, from its path and spec. */
export function bundleOwner(bundle: string, spec: OciSpec, createId: string): BundleOwner | undefined {
  const task = CONTAINERD_TASK_DIR.exec(bundle);
  if (task !== null) {
    const [, ns, id] = task as unknown as [string, string, string];
    return ns === 'moby' ? { runtime: 'docker', id } : { runtime: 'containerd', id, runtimeNamespace: ns };
  }
  const storage = STORAGE_CONTAINER_DIR.exec(bundle);
  if (storage !== null) {
    const id = storage[1]!;
    if (spec.annotations['io.container.manager'] === 'libpod') return { runtime: 'podman', id };
    if (Object.keys(spec.annotations).some((k) => k.startsWith('io.kubernetes.cri-o.'))) return { runtime: 'cri-o', id };
    return { runtime: 'podman', id };
  }
  void createId;
  return undefined;
}

/** A pod sandbox (pause) container: indexed by nobody, so not held either. */
export function isSandbox(spec: OciSpec): boolean {
  return spec.annotations['io.kubernetes.cri.container-type'] === 'sandbox'
    || spec.annotations['io.kubernetes.cri-o.ContainerType'] === 'sandbox';
}

/**
 * Labels as the runtime's API would give them: containerd's CRI annotations turned into
 * kubelet's labels (so pod identity is known from the spec alone); others as they are.
 */
export function labelsFromAnnotations(annotations: Labels): Record<string, string> {
  const out: Record<string, string> = { ...annotations };
  const cri: Readonly<Record<string, string>> = {
    'io.kubernetes.cri.sandbox-name': 'io.kubernetes.pod.name',
    'io.kubernetes.cri.sandbox-namespace': 'io.kubernetes.pod.namespace',
    'io.kubernetes.cri.sandbox-uid': 'io.kubernetes.pod.uid',
    'io.kubernetes.cri.container-name': 'io.kubernetes.container.name',
    'io.kubernetes.cri-o.Name': 'io.kubernetes.container.name',
  };
  for (const [from, to] of Object.entries(cri)) {
    const v = annotations[from];
    if (v !== undefined && out[to] === undefined) out[to] = v;
  }
  return out;
}

/** docker's own record of a container it is starting (`<data-root>/containers/<id>/config.v2.json`). */
export interface DockerRecord {
  readonly name: string;
  readonly image: string;
  readonly labels: Labels;
}

export function parseDockerConfigV2(text: string): DockerRecord {
  const j = JSON.parse(text) as Record<string, unknown>;
  const config = (j['Config'] ?? {}) as Record<string, unknown>;
  const labels: Record<string, string> = {};
  const l = config['Labels'];
  if (typeof l === 'object' && l !== null) for (const [k, v] of Object.entries(l)) if (typeof v === 'string') labels[k] = v;
  return {
    name: typeof j['Name'] === 'string' ? j['Name'].replace(/^\//, '') : '',
    image: typeof config['Image'] === 'string' ? config['Image'] : '',
    labels,
  };
}

export const DOCKER_DATA_ROOT = '/var/lib/docker';

/** docker's record of container `id`, or undefined when it cannot be read (another data root). */
export function readDockerRecord(id: string, dataRoot = DOCKER_DATA_ROOT): DockerRecord | undefined {
  try {
    return parseDockerConfigV2(readFileSync(join(dataRoot, 'containers', id, 'config.v2.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

/** conmon's `-n NAME` / `--name NAME` (podman's container name), from its argv. */
export function conmonName(argv: readonly string[]): string | undefined {
  if (basename(argv[0] ?? '') !== 'conmon') return undefined;
  for (let i = 1; i < argv.length - 1; i++) {
    if (argv[i] === '-n' || argv[i] === '--name') return argv[i + 1];
  }
  return undefined;
}

/** The directory the hook marks for a pid file, and the file's name in it. */
export function pidFileParts(pidFile: string): { dir: string; name: string } {
  return { dir: dirname(pidFile), name: basename(pidFile) };
}

/** A pid file's content: one decimal pid (runc writes no newline; some writers do). */
export function parsePidFile(text: string): number | undefined {
  const t = text.trim();
  if (!/^\d{1,10}$/.test(t)) return undefined;
  const pid = Number(t);
  return pid > 0 && pid < 2 ** 31 ? pid : undefined;
}
