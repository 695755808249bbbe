// SPDX-License-Identifier: Apache-2.0
/** BPF maps by fd: lookups, updates, deletes, key walks; per-CPU values split per CPU. */
import { TlscopeError } from '../errors.js';
import { BPF_MAP_TYPE_LRU_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH, ENOENT } from '../constants.js';
import { bpf } from './native.js';
import { kernelError } from './errors.js';

let cpus: number | undefined;
/** CPUs the kernel may bring up (the length of a per-CPU value). */
export function possibleCpus(): number {
  cpus ??= bpf.num_possible_cpus() as number;
  return cpus;
}

export class BpfMap {
  readonly name: string;
  readonly fd: number;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;

  constructor(name: string, fd: number, type: number, keySize: number, valueSize: number, maxEntries: number) {
    this.name = name;
    this.fd = fd;
    this.type = type;
    this.keySize = keySize;
    this.valueSize = valueSize;
    this.maxEntries = maxEntries;
  }

  get perCpu(): boolean {
    return this.type === BPF_MAP_TYPE_PERCPU_ARRAY || this.type === BPF_MAP_TYPE_PERCPU_HASH || this.type === BPF_MAP_TYPE_LRU_PERCPU_HASH;
  }

  /** Bytes a lookup returns: per-CPU maps hold one 8-byte-aligned slot per possible CPU. */
  get lookupSize(): number {
    return this.perCpu ? Math.ceil(this.valueSize / 8) * 8 * possibleCpus() : this.valueSize;
  }

  private key(k: Uint8Array): Buffer {
    if (k.length !== this.keySize) throw new TlscopeError('ERR_MAP_KEY', `${this.name}: key is ${k.length} bytes, map wants ${this.keySize}`);
    return Buffer.from(k.buffer, k.byteOffset, k.byteLength);
  }

  lookup(k: Uint8Array): Buffer | undefined {
    const out = Buffer.alloc(this.lookupSize);
    const r = bpf.map_lookup_elem(this.fd, this.key(k), out) as number;
    if (r === -ENOENT) return undefined;
    if (r < 0) throw kernelError(`lookup in ${this.name}`, r);
    return out;
  }

  /** Per-CPU values of a lookup, one Buffer each. */
  lookupPerCpu(k: Uint8Array): Buffer[] | undefined {
    const all = this.lookup(k);
    if (all === undefined) return undefined;
    const stride = Math.ceil(this.valueSize / 8) * 8;
    return Array.from({ length: possibleCpus() }, (_, i) => all.subarray(i * stride, i * stride + this.valueSize));
  }

  update(k: Uint8Array, v: Uint8Array, flags: 'any' | 'noexist' | 'exist' = 'any'): void {
    const want = this.lookupSize;
    if (v.length !== want) throw new TlscopeError('ERR_MAP_VALUE', `${this.name}: value is ${v.length} bytes, map wants ${want}`);
    const f = flags === 'any' ? 0n : flags === 'noexist' ? 1n : 2n;
    const r = bpf.map_update_elem(this.fd, this.key(k), Buffer.from(v.buffer, v.byteOffset, v.byteLength), f) as number;
    if (r < 0) throw kernelError(`update ${this.name}`, r);
  }

  /** Returns false when the key was absent. */
  delete(k: Uint8Array): boolean {
    const r = bpf.map_delete_elem(this.fd, this.key(k)) as number;
    if (r === -ENOENT) return false;
    if (r < 0) throw kernelError(`delete from ${this.name}`, r);
    return true;
  }

  *keys(): Generator<Buffer> {
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const r = bpf.map_get_next_key(this.fd, prev, next) as number;
      if (r === -ENOENT) return;
      if (r < 0) throw kernelError(`iterate ${this.name}`, r);
      yield next;
      prev = next;
    }
  }

  /** Number of entries (walks the keys; for tests and stats, not hot paths). */
  count(): number {
    let n = 0;
    for (const _ of this.keys()) n++;
    return n;
  }

  /** Sum of a per-CPU u64 counter at `index` of an array map. */
  sumU64(index = 0): bigint {
    const k = Buffer.alloc(4);
    k.writeUInt32LE(index, 0);
    const vals = this.perCpu ? this.lookupPerCpu(k) : [this.lookup(k)];
    let s = 0n;
    for (const v of vals ?? []) if (v !== undefined) s += v.readBigUInt64LE(0);
    return s;
  }
}
