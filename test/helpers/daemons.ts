// SPDX-License-Identifier: Apache-2.0
/**
 * The daemons the integration tests depend on (containerd, dockerd, podman's API service): a
 * health check with a bounded time that tells apart "answers", "nobody listens" and "alive but
 * not answering", and what the harness does about each.
 *
 * - answers: nothing to do.
 * - nobody listens and no daemon of that name is alive: start one (in its own session, log and
 *   pid file under the state directory, as before).
 * - alive but not answering (seen once: dockerd 20.10 deadlocked under heavy parallel load,
 *   `docker info` hung, and starting a second dockerd then failed with "pid file found"):
 *   - if this harness started it (its pid file names a live process of that command, listening
 *     on the socket or holding the daemon's own pid file): stop that pid (SIGTERM, then SIGKILL),
 *     remove its pid files, and start it again, once;
 *   - otherwise (systemd's, or someone's by hand): fail at once with a message that names the
 *     daemon, its pid and socket and says what to do. A second daemon is never started next to
 *     a live one, and nothing the harness did not start is ever signalled.
 *
 * A slow answer is not a hang: one check is `attempts` tries of `probeTimeoutMs` each (a minute
 * by default), because a daemon other test processes are using must not be restarted just
 * because the machine is busy.
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { basename, join } from 'node:path';

export type Health =
  | { readonly state: 'ok' }
  /** Nothing accepts connections on the socket (missing, or refused). */
  | { readonly state: 'down'; readonly detail: string }
  /** Something accepts connections but does not answer in time (or answers an error). */
  | { readonly state: 'hung'; readonly detail: string };

export interface DaemonSpec {
  /** In messages, and the name of its log and pid files in `stateDir`: `dockerd`. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** The unix socket it serves. */
  readonly socket: string;
  /** Where the harness keeps the daemon's log and the pid file that marks it as its own. */
  readonly stateDir: string;
  /** Pid files the daemon writes itself (dockerd's /var/run/docker.pid). */
  readonly ownPidFiles?: readonly string[];
  /** One check, settled within about `timeoutMs`. */
  probe(timeoutMs: number): Promise<Health>;
  /** What a person should do when a daemon the harness did not start does not answer. */
  readonly hint: string;
  /** How long a daemon started here gets to answer. */
  readonly readyTimeoutMs: number;
}

export interface HealthTiming {
  readonly probeTimeoutMs: number;
  /** Tries before a daemon that accepts connections counts as not answering. */
  readonly attempts: number;
  /** How long SIGTERM gets before SIGKILL. */
  readonly stopTimeoutMs: number;
}

export const DEFAULT_HEALTH_TIMING: HealthTiming = { probeTimeoutMs: 20_000, attempts: 3, stopTimeoutMs: 15_000 };

/** What ensureDaemon did. */
export type EnsureOutcome =
  | { readonly action: 'none'; readonly pid?: number }
  | { readonly action: 'started'; readonly pid: number }
  | { readonly action: 'restarted'; readonly pid: number; readonly stoppedPid: number; readonly why: string };

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------------------------
// processes

/** Field 22 of /proc/PID/stat (start time in clock ticks), or undefined when gone. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Alive and not a zombie. */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

function argv0(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
  } catch {
    return undefined;
  }
}

function runs(pid: number, command: string): boolean {
  const a = argv0(pid);
  return a !== undefined && basename(a) === basename(command);
}

/** The pid in a pid file, or undefined. */
function pidIn(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Processes that hold a listening unix socket bound to `path` (from /proc/net/unix and fds). */
export function listeningPids(path: string): number[] {
  const inodes = new Set<string>();
  try {
    for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 is __SO_ACCEPTCON (listening)
      if (f.length >= 8 && f[7] === path && (Number.parseInt(f[3] ?? '0', 16) & 0x10000) !== 0) inodes.add(`socket:[${f[6]}]`);
    }
  } catch {
    return [];
  }
  if (inodes.size === 0) return [];
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${p}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (inodes.has(readlinkSync(`/proc/${p}/fd/${fd}`))) {
          pids.push(Number(p));
          break;
        }
      } catch {
        // closed meanwhile
      }
    }
  }
  return pids;
}

function pidFileOf(spec: DaemonSpec): string {
  return join(spec.stateDir, `${spec.name}.pid`);
}

function logOf(spec: DaemonSpec): string {
  return join(spec.stateDir, `${spec.name}.log`);
}

/**
 * The live daemon this harness started, from its pid file: "PID STARTTIME" (an older harness
 * wrote the pid alone; then the command line must match). undefined when there is none.
 */
export function ownDaemonPid(spec: DaemonSpec): number | undefined {
  let text: string;
  try {
    text = readFileSync(pidFileOf(spec), 'utf8').trim();
  } catch {
    return undefined;
  }
  const [p, start] = text.split(/\s+/);
  const pid = Number(p);
  if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid) || !runs(pid, spec.command)) return undefined;
  if (start !== undefined && start !== startTime(pid)) return undefined; // the pid was reused
  return pid;
}

/** Starts the daemon in its own session so it outlives this test process; records its pid. */
export function startDaemon(spec: DaemonSpec): number {
  const fd = openSync(logOf(spec), 'a');
  let pid: number | undefined;
  try {
    const child = spawn(spec.command, spec.args, { detached: true, stdio: ['ignore', fd, fd] });
    child.on('error', () => {}); // reported by the readiness check, with the log
    child.unref();
    pid = child.pid;
  } finally {
    closeSync(fd);
  }
  if (pid === undefined) throw new Error(`could not start ${spec.name} (${spec.command} ${spec.args.join(' ')}): see ${logOf(spec)}`);
  writeFileSync(pidFileOf(spec), `${pid} ${startTime(pid) ?? ''}\n`);
  return pid;
}

/** SIGTERM (and SIGCONT, in case it is stopped), then SIGKILL; resolves when it is gone. */
export async function stopProcess(pid: number, graceMs: number): Promise<void> {
  const signal = (s: NodeJS.Signals): void => {
    try {
      process.kill(pid, s);
    } catch {
      // gone already
    }
  };
  signal('SIGTERM');
  signal('SIGCONT');
  for (const deadline = Date.now() + graceMs; Date.now() < deadline; await sleep(100)) {
    if (!processAlive(pid)) return;
  }
  signal('SIGKILL');
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(100)) {
    if (!processAlive(pid)) return;
  }
  throw new Error(`pid ${pid} is still alive 30 s after SIGKILL`);
}

function logTail(spec: DaemonSpec): string {
  const log = logOf(spec);
  return existsSync(log) ? `\n--- last lines of ${log}:\n${readFileSync(log, 'utf8').split('\n').slice(-15).join('\n')}` : '';
}

// ---------------------------------------------------------------------------------------------
// health

/** Whether something accepts a connection on the unix socket: 'down' if not, else undefined. */
export function connectable(socket: string, timeoutMs: number): Promise<Health | undefined> {
  return new Promise((resolve) => {
    if (!existsSync(socket)) {
      resolve({ state: 'down', detail: `${socket} does not exist` });
      return;
    }
    const s = connect(socket);
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ state: 'hung', detail: `connecting to ${socket} took over ${timeoutMs} ms` });
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(undefined);
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(e.code === 'EAGAIN' ? { state: 'hung', detail: `${socket}: its backlog is full` } : { state: 'down', detail: `${socket}: ${e.code ?? e.message}` });
    });
  });
}

/** GET each path over the unix socket; every one must answer 200 within the time. */
export function httpProbe(socket: string, paths: readonly string[]): (timeoutMs: number) => Promise<Health> {
  const get = (path: string, timeoutMs: number): Promise<Health> => new Promise((resolve) => {
    const req = request({ socketPath: socket, path, agent: false, headers: { Host: 'localhost' } }, (res) => {
      res.resume();
      res.on('end', () => {
        clearTimeout(timer);
        resolve(res.statusCode === 200 ? { state: 'ok' } : { state: 'hung', detail: `GET ${path}: HTTP ${res.statusCode}` });
      });
      res.on('error', () => undefined);
    });
    const timer = setTimeout(() => {
      req.destroy();
      resolve({ state: 'hung', detail: `GET ${path} on ${socket}: no answer within ${timeoutMs / 1000} s` });
    }, timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? { state: 'down', detail: `${socket}: ${e.code}` } : { state: 'hung', detail: `GET ${path} on ${socket}: ${e.message}` });
    });
    req.end();
  });
  return async (timeoutMs) => {
    const started = Date.now();
    const down = await connectable(socket, timeoutMs);
    if (down !== undefined) return down;
    for (const path of paths) {
      const h = await get(path, Math.max(1000, timeoutMs - (Date.now() - started)));
      if (h.state !== 'ok') return h;
    }
    return { state: 'ok' };
  };
}

/** Runs a client command against the daemon (e.g. `ctr … containers ls`): it must exit 0 in time. */
export function commandProbe(socket: string, cmd: string, args: readonly string[]): (timeoutMs: number) => Promise<Health> {
  return async (timeoutMs) => {
    const started = Date.now();
    const down = await connectable(socket, timeoutMs);
    if (down !== undefined) return down;
    const left = Math.max(1000, timeoutMs - (Date.now() - started));
    return new Promise((resolve) => {
      execFile(cmd, [...args], { timeout: left, killSignal: 'SIGKILL' }, (err, _stdout, stderr) => {
        if (err === null) resolve({ state: 'ok' });
        else if ((err as { killed?: boolean }).killed === true) resolve({ state: 'hung', detail: `${cmd} ${args.join(' ')}: no answer within ${left / 1000} s` });
        else resolve({ state: 'hung', detail: `${cmd} ${args.join(' ')}: ${String(stderr).trim() || err.message}` });
      });
    });
  };
}

/** A health verdict: answers at the first good try; 'down' at once; 'hung' only after every try. */
export async function checkHealth(spec: DaemonSpec, timing: HealthTiming = DEFAULT_HEALTH_TIMING): Promise<Health> {
  let last: Health = { state: 'down', detail: 'not checked' };
  for (let i = 0; i < timing.attempts; i++) {
    last = await spec.probe(timing.probeTimeoutMs);
    if (last.state !== 'hung') return last;
  }
  return last;
}

async function waitReady(spec: DaemonSpec, pid: number, timing: HealthTiming): Promise<void> {
  const deadline = Date.now() + spec.readyTimeoutMs;
  let last: Health = { state: 'down', detail: 'not checked' };
  while (Date.now() < deadline) {
    last = await spec.probe(Math.min(timing.probeTimeoutMs, Math.max(1000, deadline - Date.now())));
    if (last.state === 'ok') return;
    if (!processAlive(pid)) throw new Error(`${spec.name} (pid ${pid}) exited while starting (${last.detail})${logTail(spec)}`);
    await sleep(150);
  }
  throw new Error(`${spec.name} (pid ${pid}) did not answer on ${spec.socket} within ${spec.readyTimeoutMs / 1000} s (${'detail' in last ? last.detail : ''})${logTail(spec)}`);
}

function removePidFiles(spec: DaemonSpec, pid: number): void {
  rmSync(pidFileOf(spec), { force: true });
  for (const f of spec.ownPidFiles ?? []) {
    const p = pidIn(f);
    if (p === pid || (p !== undefined && !processAlive(p))) rmSync(f, { force: true });
  }
}

/**
 * Makes sure the daemon answers: leaves a healthy one alone, starts a missing one, restarts
 * (once) one this harness started that does not answer, and fails at once, with what to do, for
 * one it did not start. See the file comment.
 */
export async function ensureDaemon(spec: DaemonSpec, timing: HealthTiming = DEFAULT_HEALTH_TIMING): Promise<EnsureOutcome> {
  const health = await checkHealth(spec, timing);
  const own = ownDaemonPid(spec);
  if (health.state === 'ok') return own === undefined ? { action: 'none' } : { action: 'none', pid: own };

  const listeners = listeningPids(spec.socket);
  // a daemon's own pid file naming a live process: starting another would fail ("pid file found")
  const pidFileHolders = (spec.ownPidFiles ?? []).map(pidIn).filter((p): p is number => p !== undefined && processAlive(p));
  const alive = [...new Set([...listeners, ...pidFileHolders])];
  const why = `${spec.name} ${health.state === 'hung' ? 'is alive but does not answer' : 'does not accept connections'} (${health.detail}${health.state === 'hung' ? `; ${timing.attempts} tries of ${timing.probeTimeoutMs / 1000} s` : ''})`;

  if (own !== undefined && (alive.length === 0 || alive.includes(own))) {
    // ours: stop it, clear its pid files, start it again, once
    await stopProcess(own, timing.stopTimeoutMs);
    removePidFiles(spec, own);
    const pid = startDaemon(spec);
    await waitReady(spec, pid, timing).catch((e: unknown) => {
      throw new Error(`${why}; this harness had started it (pid ${own}), stopped it and started it again (pid ${pid}), but: ${e instanceof Error ? e.message : String(e)}`);
    });
    return { action: 'restarted', pid, stoppedPid: own, why };
  }
  if (alive.length > 0 || health.state === 'hung') {
    const who = alive.length > 0 ? `pid ${alive.join(', ')}` : 'a process this harness cannot see';
    throw new Error(`${why}: ${who} on ${spec.socket} was not started by this test harness, so it is left alone and no second ${spec.name} is started next to it. ${spec.hint}`);
  }
  // nobody there: start one (a pid file of ours naming a dead process is stale)
  if (existsSync(pidFileOf(spec))) rmSync(pidFileOf(spec), { force: true });
  for (const f of spec.ownPidFiles ?? []) {
    const p = pidIn(f);
    if (p !== undefined && !processAlive(p)) rmSync(f, { force: true });
  }
  const pid = startDaemon(spec);
  await waitReady(spec, pid, timing);
  return { action: 'started', pid };
}
