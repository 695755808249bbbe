// SPDX-License-Identifier: Apache-2.0
/**
 * Function bounds from `.eh_frame`, which stripping keeps (unwinding needs it): one range per
 * FDE. Enough of the format (DWARF CFI with GNU augmentations) to read each FDE's pc_begin and
 * pc_range; the call frame instructions themselves are skipped.
 */
import type { ElfFile } from './elf.js';

export interface CodeRange {
  start: bigint;
  end: bigint;
}

function uleb(b: Buffer, off: number): [number, number] {
  let v = 0;
  let shift = 0;
  for (let i = off; i < b.length; i++) {
    const x = b[i] as number;
    v += (x & 0x7f) * 2 ** shift;
    shift += 7;
    if ((x & 0x80) === 0) return [v, i + 1];
  }
  return [v, b.length];
}

/** Reads a pointer in DW_EH_PE encoding `enc` at `off` of the section loaded at `base`. */
function encoded(b: Buffer, off: number, enc: number, base: bigint, withApplication: boolean): [bigint, number] | undefined {
  let v: bigint;
  let next: number;
  switch (enc & 0x0f) {
    case 0x00: v = b.readBigUInt64LE(off); next = off + 8; break; // absptr
    case 0x03: v = BigInt(b.readUInt32LE(off)); next = off + 4; break; // udata4
    case 0x0b: v = BigInt(b.readInt32LE(off)); next = off + 4; break; // sdata4
    case 0x04: v = b.readBigUInt64LE(off); next = off + 8; break; // udata8
    case 0x0c: v = b.readBigInt64LE(off); next = off + 8; break; // sdata8
    default: return undefined;
  }
  if (withApplication && (enc & 0x70) === 0x10) v += base + BigInt(off); // pcrel
  return [BigInt.asUintN(64, v), next];
}

function pointerSize(enc: number): number {
  return (enc & 0x0f) === 0x03 || (enc & 0x0f) === 0x0b ? 4 : 8;
}

/** Every FDE's code range, sorted by start. Empty when the file has no .eh_frame. */
export function ehFrameRanges(elf: ElfFile): CodeRange[] {
  const sec = elf.section('.eh_frame');
  const b = elf.readSection('.eh_frame');
  if (sec === undefined || b === undefined) return [];
  const fdeEncoding = new Map<number, number>();
  const out: CodeRange[] = [];
  let off = 0;
  while (off + 8 <= b.length) {
    let len = b.readUInt32LE(off);
    let at = off + 4;
    if (len === 0) break; // terminator
    if (len === 0xffffffff) {
      len = Number(b.readBigUInt64LE(at));
      at += 8;
    }
    const end = at + len;
    if (end > b.length) break;
    const idAt = at;
    const id = b.readUInt32LE(at);
    at += 4;
    try {
      if (id === 0) {
        // CIE: version, augmentation, code/data alignment, return register, augmentation data
        const version = b[at] as number;
        at += 1;
        const augEnd = b.indexOf(0, at);
        const aug = b.toString('latin1', at, augEnd);
        at = augEnd + 1;
        at = uleb(b, at)[1];
        at = uleb(b, at)[1]; // sleb: same length
        at = version === 1 ? at + 1 : uleb(b, at)[1];
        let enc = 0x00;
        if (aug.startsWith('z')) {
          at = uleb(b, at)[1];
          for (const c of aug.slice(1)) {
            if (c === 'R') enc = b[at++] as number;
            else if (c === 'L') at += 1;
            else if (c === 'P') {
              const penc = b[at++] as number;
              at += pointerSize(penc);
            } else break;
          }
        }
        fdeEncoding.set(off, enc);
      } else {
        const cie = idAt - id;
        const enc = fdeEncoding.get(cie) ?? 0x00;
        const begin = encoded(b, at, enc, sec.addr, true);
        if (begin !== undefined) {
          const range = encoded(b, begin[1], enc & 0x0f, sec.addr, false);
          if (range !== undefined && range[0] > 0n) out.push({ start: begin[0], end: begin[0] + range[0] });
        }
      }
    } catch {
      // a malformed entry: skip it
    }
    off = end;
  }
  return out.sort((x, y) => (x.start < y.start ? -1 : x.start > y.start ? 1 : 0));
}

/** The range that holds `addr` (binary search over sorted ranges). */
export function rangeOf(ranges: readonly CodeRange[], addr: bigint): CodeRange | undefined {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = ranges[mid] as CodeRange;
    if (addr < r.start) hi = mid - 1;
    else if (addr >= r.end) lo = mid + 1;
    else return r;
  }
  return undefined;
}
