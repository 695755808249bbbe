// SPDX-License-Identifier: Apache-2.0
/**
 * A BPF object file over libbpf: open, configure (const volatile settings, map sizes, which
 * programs, shared maps), load, and hand out its programs and maps by name. Closing it closes
 * every link its programs made first. Programs are in program.ts, maps in map.ts, links in
 * link.ts, errors in errors.ts.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NotSupportedError, PermissionError, TlscopeError } from '../errors.js';
import { EINVAL, ENOENT, ENOTSUPP, EOPNOTSUPP, EPERM } from '../constants.js';
import { datasecVars, structLayout, type StructLayout } from './btf.js';
import { bpf, c, errno, strerror, viewMemory, withSignalsBlocked, type Ptr } from './native.js';
import { collectLogs, kernelError, summarizeVerifierLog, VerifierError } from './errors.js';
import type { Closable, LinkOwner } from './link.js';
import { BpfMap } from './map.js';
import { BpfProgram } from './program.js';

/** Where compiled objects live: dist/bpf/<name>.bpf.o next to the compiled sources. */
export function objectPath(name: string): string {
  return fileURLToPath(new URL(`../../bpf/${name}.bpf.o`, import.meta.url));
}

export type ConstValue = number | bigint | boolean | Uint8Array;

export interface LoadOptions {
  /** `const volatile` settings by variable name, written into .rodata before load. */
  constants?: Record<string, ConstValue>;
  /** max_entries overrides by map name (ring buffer sizes, table sizes). */
  maxEntries?: Record<string, number>;
  /** Load only these programs (others stay unloaded); default all. */
  programs?: string[];
  /** expected_attach_type overrides by program name (for attach types libbpf 1.1 lacks). */
  expectedAttachType?: Record<string, number>;
  /** Program type overrides by program name. */
  programType?: Record<string, number>;
  /** Maps of this object that are another loaded object's maps (by name: the map to share). */
  reuseMaps?: Record<string, BpfMap>;
}

export class BpfObject implements LinkOwner {
  readonly name: string;
  private ptr: Ptr;
  private readonly programs = new Map<string, BpfProgram>();
  private readonly maps = new Map<string, BpfMap>();
  private readonly links = new Set<Closable>();

  private constructor(name: string, ptr: Ptr) {
    this.name = name;
    this.ptr = ptr;
  }

  /** Opens `dist/bpf/<name>.bpf.o` (or a path ending in .o), applies the options, loads it. */
  static load(nameOrPath: string, opts: LoadOptions = {}): BpfObject {
    const path = nameOrPath.endsWith('.o') ? nameOrPath : objectPath(nameOrPath);
    if (!existsSync(path)) {
      throw new TlscopeError('ERR_NO_OBJECT', `BPF object ${path} is missing`, { hint: 'run `npm run build` in the tlscope checkout' });
    }
    const opened = collectLogs(() => bpf.object_open_file(path, null) as Ptr | null);
    if (opened.result === null) throw kernelError(`open ${path}`, errno(), opened.log);
    const obj = new BpfObject(nameOrPath.replace(/^.*\//, '').replace(/\.bpf\.o$/, ''), opened.result);
    try {
      obj.configure(opts);
      const loaded = collectLogs(() => withSignalsBlocked(() => bpf.object_load(obj.ptr) as number));
      if (loaded.result < 0) throw obj.loadError(loaded.result, loaded.log);
      return obj;
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  private configure(opts: LoadOptions): void {
    for (const [name, shared] of Object.entries(opts.reuseMaps ?? {})) {
      const r = bpf.map_reuse_fd(this.mapPtr(name), shared.fd) as number;
      if (r < 0) throw kernelError(`share map ${name}`, r);
    }
    for (const [name, n] of Object.entries(opts.maxEntries ?? {})) {
      const m = this.mapPtr(name);
      const r = bpf.map_set_max_entries(m, n) as number;
      if (r < 0) throw kernelError(`set max_entries of ${name}`, r);
    }
    if (opts.programs !== undefined) {
      const wanted = new Set(opts.programs);
      for (const p of this.programPtrs()) {
        const name = bpf.program_name(p) as string;
        bpf.program_set_autoload(p, wanted.has(name));
        wanted.delete(name);
      }
      if (wanted.size > 0) throw new TlscopeError('ERR_NO_PROGRAM', `${this.name}: no program named ${[...wanted].join(', ')}`);
    }
    for (const [name, t] of Object.entries(opts.programType ?? {})) bpf.program_set_type(this.programPtr(name), t);
    for (const [name, t] of Object.entries(opts.expectedAttachType ?? {})) bpf.program_set_expected_attach_type(this.programPtr(name), t);
    if (opts.constants !== undefined && Object.keys(opts.constants).length > 0) this.writeConstants(opts.constants);
  }

  private writeConstants(constants: Record<string, ConstValue>): void {
    const btf = bpf.object_btf(this.ptr) as Ptr | null;
    if (btf === null) throw new TlscopeError('ERR_NO_BTF', `${this.name}: object has no BTF; build it with clang -g`);
    const vars = new Map(datasecVars(btf, '.rodata').map((v) => [v.name, v]));
    const rodata = this.findRodataMap();
    const sizeOut = [0];
    const base = rodata === undefined ? null : (bpf.map_initial_value(rodata, sizeOut) as Ptr | null);
    for (const [name, value] of Object.entries(constants)) {
      const v = vars.get(name);
      if (v === undefined || base === null) throw new TlscopeError('ERR_NO_CONSTANT', `${this.name}: no const volatile variable named ${name}`);
      const dv = new DataView(viewMemory(base, Number(sizeOut[0])));
      writeValue(dv, v.offset, v.size, value, name);
    }
  }

  private findRodataMap(): Ptr | undefined {
    for (let m = bpf.object_next_map(this.ptr, null) as Ptr | null; m !== null; m = bpf.object_next_map(this.ptr, m) as Ptr | null) {
      if ((bpf.map_name(m) as string).endsWith('.rodata')) return m;
    }
    return undefined;
  }

  private loadError(ret: number, log: string): TlscopeError {
    const e = Math.abs(ret);
    const failed = /prog '([^']+)': (BPF program load failed|failed to load)/.exec(log)?.[1];
    if (failed !== undefined && e !== EPERM) return new VerifierError(this.name, failed, summarizeVerifierLog(log), log);
    if (e === EPERM && c.geteuid() !== 0) return new PermissionError(`load ${this.name}: operation not permitted`);
    if (e === EPERM || e === EINVAL || e === ENOENT || e === ENOTSUPP || e === EOPNOTSUPP) {
      return new NotSupportedError(`load ${this.name}${failed === undefined ? '' : ` program ${failed}`}`, `the kernel answered ${strerror(e)}${log ? `: ${summarizeVerifierLog(log)}` : ''}`);
    }
    return new VerifierError(this.name, failed, `${strerror(e)}: ${summarizeVerifierLog(log)}`, log);
  }

  private *programPtrs(): Generator<Ptr> {
    for (let p = bpf.object_next_program(this.ptr, null) as Ptr | null; p !== null; p = bpf.object_next_program(this.ptr, p) as Ptr | null) yield p;
  }

  private programPtr(name: string): Ptr {
    const p = bpf.object_find_program(this.ptr, name) as Ptr | null;
    if (p === null) throw new TlscopeError('ERR_NO_PROGRAM', `${this.name}: no program named ${name}`);
    return p;
  }

  private mapPtr(name: string): Ptr {
    const m = bpf.object_find_map(this.ptr, name) as Ptr | null;
    if (m === null) throw new TlscopeError('ERR_NO_MAP', `${this.name}: no map named ${name}`);
    return m;
  }

  program(name: string): BpfProgram {
    this.assertOpen();
    let p = this.programs.get(name);
    if (p === undefined) {
      p = new BpfProgram(this, name, this.programPtr(name));
      this.programs.set(name, p);
    }
    return p;
  }

  map(name: string): BpfMap {
    this.assertOpen();
    let m = this.maps.get(name);
    if (m === undefined) {
      const ptr = this.mapPtr(name);
      m = new BpfMap(name, bpf.map_fd(ptr) as number, bpf.map_type(ptr) as number, bpf.map_key_size(ptr) as number, bpf.map_value_size(ptr) as number, bpf.map_max_entries(ptr) as number);
      this.maps.set(name, m);
    }
    return m;
  }

  hasMap(name: string): boolean {
    return (bpf.object_find_map(this.ptr, name) as Ptr | null) !== null;
  }

  /** The compiled layout of a struct, for checking a TypeScript decoder against it. */
  structLayout(name: string): StructLayout | undefined {
    const btf = bpf.object_btf(this.ptr) as Ptr | null;
    return btf === null ? undefined : structLayout(btf, name);
  }

  /** @internal links register themselves so close() tears them down first. */
  track(l: Closable): void {
    this.links.add(l);
  }
  untrack(l: Closable): void {
    this.links.delete(l);
  }

  get closed(): boolean {
    return this.ptr === 0n;
  }

  private assertOpen(): void {
    if (this.ptr === 0n) throw new TlscopeError('ERR_CLOSED', `${this.name}: object is closed`);
  }

  close(): void {
    if (this.ptr === 0n) return;
    for (const l of [...this.links]) l.close();
    bpf.object_close(this.ptr);
    this.ptr = 0n;
    this.programs.clear();
    this.maps.clear();
  }
}

function writeValue(dv: DataView, off: number, size: number, value: ConstValue, name: string): void {
  if (value instanceof Uint8Array) {
    if (value.length > size) throw new TlscopeError('ERR_CONSTANT_SIZE', `constant ${name}: ${value.length} bytes do not fit in ${size}`);
    new Uint8Array(dv.buffer, dv.byteOffset + off, size).fill(0).set(value);
    return;
  }
  const n = typeof value === 'boolean' ? (value ? 1n : 0n) : BigInt(value);
  switch (size) {
    case 1: dv.setUint8(off, Number(BigInt.asUintN(8, n))); break;
    case 2: dv.setUint16(off, Number(BigInt.asUintN(16, n)), true); break;
    case 4: dv.setUint32(off, Number(BigInt.asUintN(32, n)), true); break;
    case 8: dv.setBigUint64(off, BigInt.asUintN(64, n), true); break;
    default: throw new TlscopeError('ERR_CONSTANT_SIZE', `constant ${name} is ${size} bytes; pass a Uint8Array`);
  }
}
