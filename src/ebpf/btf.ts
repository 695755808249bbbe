// SPDX-License-Identifier: Apache-2.0
/** Reading an object's BTF: datasec variables (for settings) and struct layouts (for decoders). */
import { bpf, viewMemory, type Ptr } from './native.js';

const BTF_KIND_STRUCT = 4;
const BTF_KIND_VAR = 14;
const BTF_KIND_DATASEC = 15;

export interface DatasecVar {
  name: string;
  offset: number;
  size: number;
}

export interface StructMember {
  name: string;
  /** byte offset (bitfields are reported at their containing byte) */
  offset: number;
  size: number;
}

export interface StructLayout {
  name: string;
  size: number;
  members: StructMember[];
}

interface RawType {
  nameOff: number;
  kind: number;
  vlen: number;
  sizeOrType: number;
  ptr: Ptr;
}

function typeById(btf: Ptr, id: number): RawType {
  const p = bpf.btf_type_by_id(btf, id) as Ptr | null;
  if (p === null) throw new Error(`BTF type ${id} not found`);
  const dv = new DataView(viewMemory(p, 12));
  const info = dv.getUint32(4, true);
  return { nameOff: dv.getUint32(0, true), kind: (info >>> 24) & 0x1f, vlen: info & 0xffff, sizeOrType: dv.getUint32(8, true), ptr: p };
}

function nameOf(btf: Ptr, off: number): string {
  const p = bpf.btf_name_by_offset(btf, off) as string | null;
  return p ?? '';
}

/** Variables of a data section (".rodata", ".bss", …) with their offsets. */
export function datasecVars(btf: Ptr, secName: string): DatasecVar[] {
  const id = bpf.btf_find_by_name_kind(btf, secName, BTF_KIND_DATASEC) as number;
  if (id < 0) return [];
  const t = typeById(btf, id);
  const dv = new DataView(viewMemory(t.ptr, 12 + t.vlen * 12));
  const out: DatasecVar[] = [];
  for (let i = 0; i < t.vlen; i++) {
    const base = 12 + i * 12;
    const varType = typeById(btf, dv.getUint32(base, true));
    if (varType.kind !== BTF_KIND_VAR) continue;
    out.push({ name: nameOf(btf, varType.nameOff), offset: dv.getUint32(base + 4, true), size: dv.getUint32(base + 8, true) });
  }
  return out;
}

function resolveSize(btf: Ptr, id: number): number {
  return Number(bpf.btf_resolve_size(btf, id));
}

/** The layout of `struct name` as the compiler laid it out. */
export function structLayout(btf: Ptr, name: string): StructLayout | undefined {
  const id = bpf.btf_find_by_name_kind(btf, name, BTF_KIND_STRUCT) as number;
  if (id < 0) return undefined;
  const t = typeById(btf, id);
  const kflag = ((new DataView(viewMemory(t.ptr, 8)).getUint32(4, true)) >>> 31) === 1;
  const dv = new DataView(viewMemory(t.ptr, 12 + t.vlen * 12));
  const members: StructMember[] = [];
  for (let i = 0; i < t.vlen; i++) {
    const base = 12 + i * 12;
    const mType = dv.getUint32(base + 4, true);
    const rawOff = dv.getUint32(base + 8, true);
    const bitOff = kflag ? rawOff & 0xffffff : rawOff;
    members.push({ name: nameOf(btf, dv.getUint32(base, true)), offset: Math.floor(bitOff / 8), size: resolveSize(btf, mType) });
  }
  return { name, size: t.sizeOrType, members };
}
