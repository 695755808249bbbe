// SPDX-License-Identifier: Apache-2.0
/**
 * Which processes a gadget looks at, from the flags every gadget shares:
 *   -r/--runtimes  -c/--containername  --host  -p/--pid
 *   --k8s-namespace  --k8s-podname  --k8s-containername  --k8s-selector key=value,…
 *
 * Scope rules (also in {@link SCOPE_HELP}, which `--help` prints):
 * - No filter: the host and every container are in scope.
 * - Container filters (runtimes, names, k8s-*) narrow the containers; given alone they leave the
 *   host out. Different filters must all hold; the values of one list filter are alternatives.
 * - `--host` alone: only the host (processes in no container). With container filters: the
 *   host plus the matching containers.
 * - `--pid` further narrows to those processes (host pids), wherever they are.
 */
import { UsageError } from '../errors.js';
import { isRuntimeName, RUNTIME_NAMES, type ContainerInfo, type RuntimeName } from './types.js';

export interface ContainerSelector {
  readonly runtimes?: readonly string[];
  readonly containerNames?: readonly string[];
  /** true: the host is in scope; false: containers only; unset: see the scope rules. */
  readonly host?: boolean;
  readonly pids?: readonly number[];
  readonly k8sNamespace?: string;
  readonly k8sPodName?: string;
  readonly k8sContainerName?: string;
  /** Pod labels that must all be present with these values. */
  readonly k8sSelector?: Readonly<Record<string, string>>;
}

export const SCOPE_HELP =
  'With no filter, the host and every container are traced. -r, -c and the --k8s-* flags narrow ' +
  'the containers and leave the host out; --host adds the host back (alone, it means the host ' +
  'only); -p narrows to those processes.';

export function hasContainerFilter(s: ContainerSelector): boolean {
  return (
    (s.runtimes?.length ?? 0) > 0 ||
    (s.containerNames?.length ?? 0) > 0 ||
    s.k8sNamespace !== undefined ||
    s.k8sPodName !== undefined ||
    s.k8sContainerName !== undefined ||
    (s.k8sSelector !== undefined && Object.keys(s.k8sSelector).length > 0)
  );
}

/** Whether processes that are in no container are in scope. */
export function includesHost(s: ContainerSelector): boolean {
  return s.host ?? !hasContainerFilter(s);
}

/** Whether a container is in scope (pids aside: see {@link matches}). */
export function matchesContainer(s: ContainerSelector, c: ContainerInfo): boolean {
  if (!hasContainerFilter(s)) return s.host !== true;
  if (s.runtimes?.length && !s.runtimes.includes(c.runtime)) return false;
  if (s.containerNames?.length && !s.containerNames.includes(c.name)) return false;
  if (s.k8sNamespace !== undefined && c.k8s?.namespace !== s.k8sNamespace) return false;
  if (s.k8sPodName !== undefined && c.k8s?.podName !== s.k8sPodName) return false;
  if (s.k8sContainerName !== undefined && c.k8s?.containerName !== s.k8sContainerName) return false;
  if (s.k8sSelector !== undefined) {
    const entries = Object.entries(s.k8sSelector);
    if (entries.length > 0) {
      if (c.k8s === undefined) return false;
      // Pod labels where the runtime knows the pod, container labels otherwise (kubelet copies
      // none of the pod's labels onto containers, but users label plain containers the same way).
      for (const [key, value] of entries) {
        if ((c.k8s.podLabels[key] ?? c.labels[key]) !== value) return false;
      }
    }
  }
  return true;
}

/**
 * Whether an event from process `pid`, which is in `container` (undefined: in no container,
 * the host), is in scope. When the event has no pid (packets), pass undefined: the pid filter
 * then cannot be checked here and the caller must turn pids into namespaces itself.
 */
export function matches(s: ContainerSelector, container: ContainerInfo | undefined, pid?: number): boolean {
  if (pid !== undefined && s.pids?.length && !s.pids.includes(pid)) return false;
  return container === undefined ? includesHost(s) : matchesContainer(s, container);
}

/** The flag values as a CLI parser hands them over: repeated flags arrive as arrays. */
export interface SelectorFlags {
  readonly runtimes?: string | readonly string[];
  readonly containername?: string | readonly string[];
  readonly host?: boolean;
  readonly pid?: string | number | readonly (string | number)[];
  readonly k8sNamespace?: string;
  readonly k8sPodname?: string;
  readonly k8sContainername?: string;
  readonly k8sSelector?: string | readonly string[];
}

/** Splits comma-separated, possibly repeated values; rejects empty items such as `a,,b`. */
function listValues(flag: string, value: string | number | readonly (string | number)[] | undefined): string[] {
  if (value === undefined) return [];
  const raw = Array.isArray(value) ? value : [value];
  const out: string[] = [];
  for (const item of raw) {
    for (const part of String(item).split(',')) {
      const v = part.trim();
      if (v === '') throw new UsageError(`${flag}: empty value in ${JSON.stringify(String(item))}`, `give ${flag} a comma-separated list without empty items`);
      out.push(v);
    }
  }
  return out;
}

function singleValue(flag: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (v === '') throw new UsageError(`${flag}: empty value`, `give ${flag} a value or leave the flag out`);
  return v;
}

function parseRuntimes(value: SelectorFlags['runtimes']): RuntimeName[] {
  const out: RuntimeName[] = [];
  for (const name of listValues('--runtimes', value)) {
    const normalized = name.toLowerCase() === 'crio' ? 'cri-o' : name.toLowerCase();
    if (!isRuntimeName(normalized)) {
      throw new UsageError(`--runtimes: unknown runtime ${JSON.stringify(name)}`, `use one or more of ${RUNTIME_NAMES.join(', ')}`);
    }
    if (!out.includes(normalized)) out.push(normalized);
  }
  return out;
}

function parsePids(value: SelectorFlags['pid']): number[] {
  return listValues('--pid', value).map((text) => {
    const pid = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(pid) || pid <= 0 || pid > 4194304) {
      throw new UsageError(`--pid: ${JSON.stringify(text)} is not a process id`, 'give a positive integer as seen on the host (ps, pgrep)');
    }
    return pid;
  });
}

/** Kubernetes label keys: optional DNS prefix and a name of [A-Za-z0-9._-]. */
const LABEL_KEY = /^(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(?:[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)?$/;

/** Parses `a=b,c=d` (repeatable) into a label map; a key given twice must agree. */
export function parseK8sSelector(value: string | readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of listValues('--k8s-selector', value)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--k8s-selector: ${JSON.stringify(pair)} is not key=value`, 'write it as key=value, several separated by commas: app=web,tier=front');
    const key = pair.slice(0, eq).trim();
    const v = pair.slice(eq + 1).trim();
    if (!LABEL_KEY.test(key)) throw new UsageError(`--k8s-selector: ${JSON.stringify(key)} is not a valid label key`, 'label keys are [prefix/]name of letters, digits, ".", "_", "-"');
    if (!LABEL_VALUE.test(v)) throw new UsageError(`--k8s-selector: ${JSON.stringify(v)} is not a valid label value`, 'label values are letters, digits, ".", "_", "-" (or empty)');
    if (key in out && out[key] !== v) throw new UsageError(`--k8s-selector: ${key} given twice with different values`, 'a pod label has one value: keep one of them');
    out[key] = v;
  }
  return out;
}

/** Turns the shared gadget flags into a selector; throws UsageError on bad input. */
export function parseSelectorFlags(flags: SelectorFlags): ContainerSelector {
  const runtimes = parseRuntimes(flags.runtimes);
  const containerNames = listValues('--containername', flags.containername);
  const pids = parsePids(flags.pid);
  const k8sNamespace = singleValue('--k8s-namespace', flags.k8sNamespace);
  const k8sPodName = singleValue('--k8s-podname', flags.k8sPodname);
  const k8sContainerName = singleValue('--k8s-containername', flags.k8sContainername);
  const k8sSelector = flags.k8sSelector === undefined ? undefined : parseK8sSelector(flags.k8sSelector);
  return {
    ...(runtimes.length > 0 ? { runtimes } : {}),
    ...(containerNames.length > 0 ? { containerNames: [...new Set(containerNames)] } : {}),
    ...(flags.host === true ? { host: true } : {}),
    ...(pids.length > 0 ? { pids: [...new Set(pids)] } : {}),
    ...(k8sNamespace !== undefined ? { k8sNamespace } : {}),
    ...(k8sPodName !== undefined ? { k8sPodName } : {}),
    ...(k8sContainerName !== undefined ? { k8sContainerName } : {}),
    ...(k8sSelector !== undefined && Object.keys(k8sSelector).length > 0 ? { k8sSelector } : {}),
  };
}

/** The runtimes worth connecting to for this selector (all when it names none). */
export function runtimesInScope(s: ContainerSelector): RuntimeName[] {
  const named = (s.runtimes ?? []).filter(isRuntimeName);
  return named.length > 0 ? named : [...RUNTIME_NAMES];
}
