// SPDX-License-Identifier: Apache-2.0
/**
 * A small classic BPF interpreter for tests: runs a socket filter (struct sock_filter[]) on a
 * packet with the ancillary values the kernel would give it, and returns the filter's verdict
 * (bytes to keep, 0 = drop). Written from the instruction set in linux/filter.h.
 */

export interface Ancillary {
  hatype?: number;
  pkttype?: number;
  protocol?: number;
  ifindex?: number;
}

const SKF_AD_OFF = -0x1000;

export function runClassicBpf(program: Buffer, packet: Uint8Array, anc: Ancillary = {}): number {
  const n = program.length / 8;
  const mem = new Array<number>(16).fill(0);
  let a = 0;
  let x = 0;
  const load = (off: number, size: number): number | undefined => {
    if (off < 0 || off + size > packet.length) return undefined;
    let v = 0;
    for (let i = 0; i < size; i++) v = (v * 256 + (packet[off + i] as number)) >>> 0;
    return v;
  };
  for (let pc = 0, steps = 0; pc < n; pc++, steps++) {
    if (steps > 100000) throw new Error('runaway program');
    const code = program.readUInt16LE(pc * 8);
    const jt = program.readUInt8(pc * 8 + 2);
    const jf = program.readUInt8(pc * 8 + 3);
    const k = program.readUInt32LE(pc * 8 + 4);
    const cls = code & 0x07;
    const size = (code & 0x18) === 0x00 ? 4 : (code & 0x18) === 0x08 ? 2 : 1;
    const mode = code & 0xe0;
    switch (cls) {
      case 0x00: // LD
      case 0x01: { // LDX
        let v: number | undefined;
        if (mode === 0x00) v = k;
        else if (mode === 0x80) v = packet.length;
        else if (mode === 0x60) v = mem[k] ?? 0;
        else if (mode === 0x20 && (k | 0) < 0 && (k | 0) >= SKF_AD_OFF) {
          const which = (k | 0) - SKF_AD_OFF;
          v = which === 0 ? (anc.protocol ?? 0) : which === 4 ? (anc.pkttype ?? 0) : which === 8 ? (anc.ifindex ?? 0) : which === 28 ? (anc.hatype ?? 0) : undefined;
          if (v === undefined) throw new Error(`ancillary load ${which} not modelled`);
        } else if (mode === 0x20) v = load(k, size);
        else if (mode === 0x40) v = load(x + k, size);
        else if (mode === 0xa0) {
          const b = load(k, 1);
          v = b === undefined ? undefined : (b & 0x0f) * 4;
        } else throw new Error(`load mode 0x${mode.toString(16)} not modelled`);
        if (v === undefined) return 0; // out of the packet: the kernel drops it
        if (cls === 0x00) a = v >>> 0;
        else x = v >>> 0;
        break;
      }
      case 0x02:
        mem[k] = a;
        break;
      case 0x03:
        mem[k] = x;
        break;
      case 0x04: { // ALU
        const src = (code & 0x08) !== 0 ? x : k;
        switch (code & 0xf0) {
          case 0x00: a = (a + src) >>> 0; break;
          case 0x10: a = (a - src) >>> 0; break;
          case 0x20: a = Math.imul(a, src) >>> 0; break;
          case 0x30: if (src === 0) return 0; a = Math.floor(a / src) >>> 0; break;
          case 0x40: a = (a | src) >>> 0; break;
          case 0x50: a = (a & src) >>> 0; break;
          case 0x60: a = (a << src) >>> 0; break;
          case 0x70: a = a >>> src; break;
          case 0x80: a = -a >>> 0; break;
          case 0x90: if (src === 0) return 0; a = (a % src) >>> 0; break;
          case 0xa0: a = (a ^ src) >>> 0; break;
          default: throw new Error(`alu op 0x${code.toString(16)}`);
        }
        break;
      }
      case 0x05: { // JMP
        const op = code & 0xf0;
        if (op === 0x00) {
          pc += k;
          break;
        }
        const src = (code & 0x08) !== 0 ? x : k;
        const cond = op === 0x10 ? a === src : op === 0x20 ? a > src : op === 0x30 ? a >= src : op === 0x40 ? (a & src) !== 0 : undefined;
        if (cond === undefined) throw new Error(`jump op 0x${op.toString(16)}`);
        pc += cond ? jt : jf;
        break;
      }
      case 0x06: // RET
        return (code & 0x18) === 0x10 ? a : k;
      case 0x07: // MISC
        if ((code & 0xf8) === 0x00) x = a;
        else a = x;
        break;
    }
  }
  throw new Error('fell off the end of the program');
}
