// SPDX-License-Identifier: Apache-2.0
/**
 * A fake /proc tree for unit tests without root: namespace links are symlinks whose target is
 * the text the kernel shows (`mnt:[4026532180]`), cgroup and status are plain files, and a
 * fake cgroup2 mount (a directory) gives real inode numbers as cgroup ids.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface FakeProcess {
  readonly pid: number;
  readonly mnt: number;
  readonly net: number;
  readonly pidns?: number;
  /** The unified (v2) cgroup path. */
  readonly cgroup: string;
  readonly comm?: string;
}

export class FakeProc {
  readonly root: string;
  readonly cgroupRoot: string;
  private readonly base: string;

  constructor() {
    this.base = mkdtempSync(join(tmpdir(), 'tlscope-fake-proc-'));
    this.root = join(this.base, 'proc');
    this.cgroupRoot = join(this.base, 'cgroup2');
    mkdirSync(join(this.root, 'self'), { recursive: true });
    mkdirSync(this.cgroupRoot, { recursive: true });
    writeFileSync(join(this.root, 'self', 'mountinfo'), `41 31 0:38 / ${this.cgroupRoot} rw,relatime - cgroup2 cgroup2 rw\n`);
  }

  add(p: FakeProcess): void {
    const dir = join(this.root, String(p.pid));
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, 'ns'), { recursive: true });
    symlinkSync(`mnt:[${p.mnt}]`, join(dir, 'ns', 'mnt'));
    symlinkSync(`net:[${p.net}]`, join(dir, 'ns', 'net'));
    symlinkSync(`pid:[${p.pidns ?? 4026531836}]`, join(dir, 'ns', 'pid'));
    writeFileSync(join(dir, 'cgroup'), `0::${p.cgroup}\n`);
    writeFileSync(join(dir, 'comm'), `${p.comm ?? 'sleep'}\n`);
    writeFileSync(join(dir, 'status'), `Name:\t${p.comm ?? 'sleep'}\nTgid:\t${p.pid}\nPid:\t${p.pid}\nPPid:\t1\nNSpid:\t${p.pid}\t1\n`);
    mkdirSync(join(this.cgroupRoot, p.cgroup), { recursive: true });
  }

  remove(pid: number): void {
    rmSync(join(this.root, String(pid)), { recursive: true, force: true });
  }

  dispose(): void {
    rmSync(this.base, { recursive: true, force: true });
  }
}
