// SPDX-License-Identifier: Apache-2.0
/**
 * The agent image for the cluster tests, built without a registry: what the Containerfile puts
 * in (Node.js, libbpf1, libpcap, the built package with its runtime node_modules) taken from
 * this host, which is Debian with those packages, plus a static busybox for /bin/sh, written
 * as a docker-archive tarball that `scripts/cluster.sh load-image` imports into every node.
 * Deterministic: the tag is the config digest, so an unchanged build is not imported twice.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findBusybox, sharedLibraries } from '../helpers/image.js';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** node_modules the agent does not load (the plugin's API client, build and test tools). */
const NOT_IN_IMAGE = new Set(['@kubernetes', 'typescript', 'playwright-core', 'esbuild', '@esbuild', '@types', 'fast-check', 'preact']);
const HOST_LIBRARIES = ['libbpf.so.1', 'libpcap.so.0.8'];

function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

function copyHost(root: string, path: string): void {
  const target = join(root, path);
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(realpathSync(path), target);
}

function libraryPath(name: string): string {
  const out = execFileSync('ldconfig', ['-p'], { encoding: 'utf8' });
  const m = new RegExp(`\\s${name.replace(/\./g, '\\.')} \\(libc6,x86-64\\) => (\\S+)`).exec(out);
  if (m?.[1] === undefined) throw new Error(`${name} is not installed on this host`);
  return m[1];
}

function tar(cwd: string, out: string, entries: string[]): void {
  execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=gnu', '-C', cwd, '-cf', out, ...entries]);
}

export interface AgentImage {
  name: string;
  tarball: string;
}

export function buildAgentImage(workDir: string): AgentImage {
  const busybox = findBusybox();
  if (busybox === undefined) throw new Error('no static busybox on this host (busybox-static)');
  const stage = join(workDir, `agent-stage-${process.pid}`);
  rmSync(stage, { recursive: true, force: true });
  const root = join(stage, 'rootfs');
  try {
    for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'run', 'usr/local/bin', 'opt/tlscope']) mkdirSync(join(root, d), { recursive: true });
    chmodSync(join(root, 'tmp'), 0o1777);
    copyFileSync(busybox, join(root, 'bin/busybox'));
    chmodSync(join(root, 'bin/busybox'), 0o755);
    for (const a of ['sh', 'cat', 'ls', 'test', 'sleep', 'ps', 'mount']) symlinkSync('busybox', join(root, 'bin', a));
    const node = realpathSync(process.execPath);
    copyHost(root, node);
    if (node !== '/usr/bin/node') {
      mkdirSync(join(root, 'usr/bin'), { recursive: true });
      symlinkSync(node, join(root, 'usr/bin/node'));
    }
    const libs = new Set(sharedLibraries(node));
    for (const name of HOST_LIBRARIES) {
      const p = libraryPath(name);
      libs.add(p);
      for (const l of sharedLibraries(p)) libs.add(l);
    }
    for (const l of libs) copyHost(root, l);
    copyFileSync('/etc/ld.so.cache', join(root, 'etc/ld.so.cache'));
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
    // the package as npm pack lays it out, and its runtime dependencies
    const app = join(root, 'opt/tlscope');
    for (const p of ['dist/src', 'proto', 'src/containers/proto', 'deploy', 'package.json']) cpSync(join(REPO_ROOT, p), join(app, p), { recursive: true, dereference: true });
    mkdirSync(join(app, 'dist/bpf'), { recursive: true });
    for (const f of readdirSync(join(REPO_ROOT, 'dist/bpf')).filter((f) => f.endsWith('.bpf.o'))) copyFileSync(join(REPO_ROOT, 'dist/bpf', f), join(app, 'dist/bpf', f));
    rmSync(join(app, 'dist/src/ui/web'), { recursive: true, force: true });
    for (const m of readdirSync(join(REPO_ROOT, 'node_modules'))) {
      if (NOT_IN_IMAGE.has(m) || m.startsWith('.')) continue;
      cpSync(join(REPO_ROOT, 'node_modules', m), join(app, 'node_modules', m), { recursive: true, dereference: true });
    }
    writeFileSync(join(root, 'usr/local/bin/tlscope'), '#!/bin/sh\nexec node /opt/tlscope/dist/src/cli/bin.js "$@"\n');
    chmodSync(join(root, 'usr/local/bin/tlscope'), 0o755);

    const layerTmp = join(stage, 'layer.tar');
    tar(root, layerTmp, ['.']);
    const layer = readFileSync(layerTmp);
    const diff = sha256(layer);
    const config = JSON.stringify({
      architecture: 'amd64', os: 'linux',
      config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Entrypoint: ['tlscope'], Cmd: ['agent'], WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [`sha256:${diff}`] },
    });
    const cfg = sha256(config);
    const name = `tlscope-agent:test-${cfg.slice(0, 12)}`;
    const tarball = join(workDir, `tlscope-agent-${cfg.slice(0, 12)}.tar`);
    if (existsSync(tarball)) return { name, tarball };
    const archive = join(stage, 'archive');
    mkdirSync(join(archive, diff), { recursive: true });
    renameSync(layerTmp, join(archive, diff, 'layer.tar'));
    writeFileSync(join(archive, `${cfg}.json`), config);
    writeFileSync(join(archive, 'manifest.json'), JSON.stringify([{ Config: `${cfg}.json`, RepoTags: [name], Layers: [`${diff}/layer.tar`] }]));
    tar(archive, `${tarball}.partial`, ['manifest.json', `${cfg}.json`, `${diff}/layer.tar`]);
    renameSync(`${tarball}.partial`, tarball);
    return { name, tarball };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}
