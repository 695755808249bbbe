// SPDX-License-Identifier: Apache-2.0
/**
 * Links: every attachment is owned by one fd (a libbpf bpf_link, or a raw link fd from
 * BPF_LINK_CREATE), so the kernel detaches it when tlscope exits, even by SIGKILL.
 */
import { bpf, c, type Ptr } from './native.js';
import { kernelError } from './errors.js';

export interface Closable {
  close(): void;
}

/** What a link registers with so that closing it (the object) tears the link down first. */
export interface LinkOwner {
  track(l: Closable): void;
  untrack(l: Closable): void;
}

/** An attachment that the kernel owns through one fd (a bpf_link, or a raw link fd). */
export class BpfLink implements Closable {
  readonly description: string;
  private linkPtr: Ptr;
  private rawFd: number;
  private readonly owner: LinkOwner;

  constructor(owner: LinkOwner, description: string, linkPtr: Ptr, rawFd = -1) {
    this.owner = owner;
    this.description = description;
    this.linkPtr = linkPtr;
    this.rawFd = rawFd;
    owner.track(this);
  }

  get fd(): number {
    return this.linkPtr !== 0n ? (bpf.link_fd(this.linkPtr) as number) : this.rawFd;
  }

  get closed(): boolean {
    return this.linkPtr === 0n && this.rawFd < 0;
  }

  close(): void {
    if (this.linkPtr !== 0n) {
      bpf.link_destroy(this.linkPtr);
      this.linkPtr = 0n;
    }
    if (this.rawFd >= 0) {
      c.close(this.rawFd);
      this.rawFd = -1;
    }
    this.owner.untrack(this);
  }
}

/** The kernel's id of a program, map or link fd (bpf_obj_get_info_by_fd: id @4 in each info struct). */
export function objectInfoId(fd: number): number {
  const info = Buffer.alloc(256);
  const len = [info.length];
  const r = bpf.obj_get_info_by_fd(fd, info, len) as number;
  if (r < 0) throw kernelError('get object info', r);
  return info.readUInt32LE(4);
}

/** Kernel id of a link fd. */
export function linkId(link: BpfLink): number {
  return objectInfoId(link.fd);
}
