// SPDX-License-Identifier: Apache-2.0
/**
 * Every network namespace on the host, container or not: for the unfiltered network gadgets
 * ("every name asked for on this host"), which must also see namespaces made with
 * `ip netns add`, `unshare -n`, CNI plugins or anything else no runtime reports.
 *
 * How (no kprobe or tracepoint needed, measured on Linux 6.18):
 * - namespaces pinned by a bind mount (`ip netns add` → /run/netns/NAME, docker's
 *   /var/run/docker/netns/*, CNI's /run/netns/cni-*): nsfs entries of /proc/self/mountinfo,
 *   read every `mountIntervalMs` (default 100 ms) and at once when /run/netns changes
 *   (inotify on the directory, which `ip netns add` creates the pin file in before it mounts);
 * - namespaces held only by processes: /proc/PID/ns/net of every process, every
 *   `procIntervalMs` (default 1000 ms).
 * Bound: a pinned namespace is found within ~100 ms of its mount (usually a few ms, through
 * inotify); one held only by processes within ~1 s; one that lives shorter than that with no
 * pin can be missed. A namespace is reported gone when neither shows it any more (the
 * gadget's own packet socket does not keep it listed).
 */
import { readdirSync, readFileSync, readlinkSync, statSync, watch, type FSWatcher } from 'node:fs';

export interface NetnsSighting {
  readonly inode: number;
  /** A path that opens it: the pin (bind mount) or /proc/PID/ns/net. */
  readonly path: string;
}

export interface NetnsDiscoveryOptions {
  readonly onAdded: (ns: NetnsSighting) => void;
  readonly onRemoved: (inode: number) => void;
  readonly mountIntervalMs?: number;
  readonly procIntervalMs?: number;
  readonly procRoot?: string;
  /** Directories whose changes trigger a mount scan at once. */
  readonly pinDirs?: readonly string[];
}

const NET_LINK = /^net:\[(\d+)\]$/;

/** nsfs mounts of network namespaces in a mountinfo text: inode → mount point. */
export function netnsPinsFromMountinfo(text: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const [fstype] = line.slice(sep + 3).split(' ');
    if (fstype !== 'nsfs') continue;
    const f = line.slice(0, sep).split(' ');
    const root = f[3];
    const mountPoint = f[4];
    const m = root === undefined ? null : NET_LINK.exec(root);
    if (m === null || mountPoint === undefined) continue;
    out.set(Number(m[1]), mountPoint.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))));
  }
  return out;
}

export class NetnsDiscovery {
  private readonly known = new Map<number, NetnsSighting>();
  private pins = new Map<number, string>();
  private held = new Map<number, string>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly watchers: FSWatcher[] = [];
  private readonly procRoot: string;
  private stopped = false;

  constructor(private readonly opts: NetnsDiscoveryOptions) {
    this.procRoot = opts.procRoot ?? '/proc';
  }

  /** Scans now (reporting everything there is), then keeps scanning. */
  start(): void {
    this.scanMounts();
    this.scanProcs();
    this.timers.push(setInterval(() => this.scanMounts(), this.opts.mountIntervalMs ?? 100));
    this.timers.push(setInterval(() => this.scanProcs(), this.opts.procIntervalMs ?? 1000));
    for (const t of this.timers) t.unref();
    for (const dir of this.opts.pinDirs ?? ['/run/netns', '/var/run/docker/netns']) {
      try {
        const w = watch(dir, { persistent: false }, () => {
          this.scanMounts();
          // the pin file comes first, its mount a moment later
          setTimeout(() => this.scanMounts(), 5).unref();
        });
        w.on('error', () => undefined);
        this.watchers.push(w);
      } catch {
        // not there (yet): the periodic scan covers it
      }
    }
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    for (const w of this.watchers) w.close();
  }

  /** Namespaces known now. */
  all(): NetnsSighting[] {
    return [...this.known.values()];
  }

  scanMounts(): void {
    if (this.stopped) return;
    try {
      this.pins = netnsPinsFromMountinfo(readFileSync(`${this.procRoot}/self/mountinfo`, 'utf8'));
    } catch {
      return;
    }
    this.reconcile();
  }

  scanProcs(): void {
    if (this.stopped) return;
    const held = new Map<number, string>();
    let entries: string[];
    try {
      entries = readdirSync(this.procRoot);
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.charCodeAt(0) < 48 || e.charCodeAt(0) > 57) continue;
      try {
        const m = NET_LINK.exec(readlinkSync(`${this.procRoot}/${e}/ns/net`));
        if (m !== null && !held.has(Number(m[1]))) held.set(Number(m[1]), `${this.procRoot}/${e}/ns/net`);
      } catch {
        // exited, or a kernel thread
      }
    }
    this.held = held;
    this.reconcile();
  }

  private reconcile(): void {
    for (const [inode, path] of [...this.pins, ...this.held]) {
      if (this.known.has(inode)) continue;
      // a pin's path must still open that namespace (a mount point reused for another)
      try {
        if (statSync(path).ino !== inode) continue;
      } catch {
        continue;
      }
      const s = { inode, path };
      this.known.set(inode, s);
      this.opts.onAdded(s);
    }
    for (const inode of [...this.known.keys()]) {
      if (this.pins.has(inode) || this.held.has(inode)) continue;
      this.known.delete(inode);
      this.opts.onRemoved(inode);
    }
  }
}
