// SPDX-License-Identifier: Apache-2.0
/**
 * Builds the test image locally: no registry is reachable, so the root filesystem is made of
 * the host's static busybox plus, for TLS tests, the host's curl and openssl with every
 * library `ldd` lists and /etc/ssl. The result is a docker-archive tarball (manifest.json +
 * config + one layer tar) that `docker load`, `ctr images import` and `podman load` all read.
 *
 * The build is deterministic (fixed mtimes, sorted entries, no timestamps in the config), so
 * the tag, derived from the config digest, changes only when the content does: a runtime that
 * already holds the tag holds this exact image.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface BuiltImage {
  /** Repository name without registry, e.g. `tlscope-test`. */
  readonly repository: string;
  /** Tag derived from the content. */
  readonly tag: string;
  /** The docker-archive tarball. */
  readonly tarball: string;
}

const BUSYBOX_CANDIDATES = ['/bin/busybox', '/usr/bin/busybox'];
/** Host binaries copied in (with their libraries) when present, for TLS tests. */
const OPTIONAL_HOST_BINARIES = ['/usr/bin/curl', '/usr/bin/openssl'];
/** The image's default command keeps a container (or a CRI pod sandbox) alive. */
const DEFAULT_CMD = ['/bin/sleep', 'infinity'];

export function findBusybox(): string | undefined {
  for (const path of BUSYBOX_CANDIDATES) {
    if (existsSync(path) && isStatic(path)) return path;
  }
  return undefined;
}

function isStatic(path: string): boolean {
  try {
    // `ldd` exits non-zero with "not a dynamic executable" for a static binary.
    execFileSync('ldd', [path], { stdio: ['ignore', 'pipe', 'pipe'] });
    return false;
  } catch {
    return true;
  }
}

/** Libraries (and the dynamic loader) a host binary needs, as absolute paths. */
export function sharedLibraries(binary: string): string[] {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
  const libs = new Set<string>();
  for (const line of out.split('\n')) {
    // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (m?.[1]) libs.add(m[1]);
  }
  return [...libs];
}

/** Copies a file to the same absolute path under `root`, following symlinks. */
function copyIntoRoot(root: string, hostPath: string): void {
  const target = join(root, hostPath);
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(hostPath, target);
}

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function deterministicTar(cwd: string, output: string, entries: string[]): void {
  execFileSync('tar', [
    '--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=gnu',
    '-C', cwd, '-cf', output, ...entries,
  ]);
}

function buildRootfs(root: string, busybox: string): void {
  for (const dir of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root', 'usr/bin', 'var/run']) mkdirSync(join(root, dir), { recursive: true });
  chmodSync(join(root, 'tmp'), 0o1777);
  copyFileSync(busybox, join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  const applets = execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => /^[\w.[\]-]+$/.test(a));
  for (const applet of applets) {
    if (applet === 'busybox') continue;
    symlinkSync('busybox', join(root, 'bin', applet));
  }
  for (const binary of OPTIONAL_HOST_BINARIES) {
    if (!existsSync(binary)) continue;
    copyIntoRoot(root, binary);
    for (const lib of sharedLibraries(binary)) copyIntoRoot(root, lib);
  }
  if (existsSync('/etc/ssl')) cpSync('/etc/ssl', join(root, 'etc/ssl'), { recursive: true, dereference: true });
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
}

/** What an image built from a root filesystem runs. */
export interface ImageConfig {
  readonly env: readonly string[];
  readonly cmd: readonly string[];
  /** recorded in the image's history */
  readonly createdBy: string;
}

/**
 * A docker-archive tarball of the root filesystem `root` under `workDir` (or the one already
 * there: the tag is the config's digest, which names the layer's digest). `root` is left as it is.
 */
export function archiveRootfs(root: string, workDir: string, repository: string, image: ImageConfig): BuiltImage {
  const stage = join(workDir, `stage-${repository}-${process.pid}`);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  try {
    const layerTmp = join(stage, 'layer.tar');
    deterministicTar(root, layerTmp, ['.']);
    const layer = readFileSync(layerTmp);
    const diffId = sha256(layer);
    const config = JSON.stringify({
      architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
      os: 'linux',
      config: { Env: image.env, Cmd: image.cmd, WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
      history: [{ created_by: image.createdBy }],
    });
    const configDigest = sha256(config);
    const tag = configDigest.slice(0, 12);
    const tarball = join(workDir, `${repository}-${tag}.tar`);
    if (existsSync(tarball)) return { repository, tag, tarball };
    const archive = join(stage, 'archive');
    mkdirSync(join(archive, diffId), { recursive: true });
    writeFileSync(join(archive, diffId, 'layer.tar'), layer);
    writeFileSync(join(archive, `${configDigest}.json`), config);
    writeFileSync(join(archive, 'manifest.json'), JSON.stringify([
      { Config: `${configDigest}.json`, RepoTags: [`${repository}:${tag}`], Layers: [`${diffId}/layer.tar`] },
    ]));
    const partial = `${tarball}.${process.pid}.partial`;
    deterministicTar(archive, partial, ['manifest.json', `${configDigest}.json`, `${diffId}/layer.tar`]);
    // rename is atomic, so a concurrent reader never sees half a tarball.
    renameSync(partial, tarball);
    return { repository, tag, tarball };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/**
 * Builds (or reuses, when the same content was built before) the test image under `workDir`.
 * Needs `tar` and a static busybox on the host.
 */
export function buildTestImage(workDir: string, repository = 'tlscope-test'): BuiltImage {
  const busybox = findBusybox();
  if (busybox === undefined) throw new Error('no static busybox on this host (install the busybox-static package)');
  const root = join(workDir, `rootfs-${repository}-${process.pid}`);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  try {
    buildRootfs(root, busybox);
    return archiveRootfs(root, workDir, repository, {
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      cmd: DEFAULT_CMD,
      createdBy: 'tlscope test harness: busybox-static + host curl/openssl',
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
