// SPDX-License-Identifier: Apache-2.0
/**
 * The HPACK Huffman code (RFC 7541, Appendix B). The code is canonical: codes are handed out in
 * order of length, then of symbol, so the 257 code lengths below define it completely; the codes
 * themselves are derived at load. Symbol 256 is EOS, which may never be decoded.
 */

/** Code length in bits of symbols 0..255 and EOS (256). */
const CODE_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];

export const EOS = 256;
const MAX_LENGTH = 30;

/** Canonical decoding tables: per length, the first code, how many codes, where their symbols start. */
interface Canonical {
  firstCode: Int32Array;
  count: Int32Array;
  offset: Int32Array;
  symbols: Uint16Array;
  codes: Uint32Array;
}

function build(): Canonical {
  const count = new Int32Array(MAX_LENGTH + 1);
  for (const l of CODE_LENGTHS) count[l] = (count[l] ?? 0) + 1;
  const order = CODE_LENGTHS.map((l, s) => [l, s] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const symbols = Uint16Array.from(order.map(([, s]) => s));
  const firstCode = new Int32Array(MAX_LENGTH + 1);
  const offset = new Int32Array(MAX_LENGTH + 1);
  const codes = new Uint32Array(CODE_LENGTHS.length);
  let code = 0;
  let at = 0;
  for (let l = 1; l <= MAX_LENGTH; l++) {
    firstCode[l] = code;
    offset[l] = at;
    for (let i = 0; i < (count[l] ?? 0); i++) codes[symbols[at + i] ?? 0] = code + i;
    at += count[l] ?? 0;
    code = (code + (count[l] ?? 0)) << 1;
  }
  return { firstCode, count, offset, symbols, codes };
}

const TABLE = build();

/** Decodes a Huffman-coded string; undefined when the bits are not a valid HPACK string (EOS, bad padding). */
export function huffmanDecode(src: Uint8Array, start: number, end: number): Uint8Array | undefined {
  // at most 8 symbols per 5 bits (the shortest code), so 8/5 of the input bounds the output
  const out = new Uint8Array(Math.ceil(((end - start) * 8) / 5));
  let n = 0;
  let code = 0;
  let len = 0;
  const { firstCode, count, offset, symbols } = TABLE;
  for (let i = start; i < end; i++) {
    const byte = src[i] ?? 0;
    for (let bit = 7; bit >= 0; bit--) {
      code = (code << 1) | ((byte >> bit) & 1);
      len++;
      const k = code - (firstCode[len] ?? 0);
      if (len >= 5 && k >= 0 && k < (count[len] ?? 0)) {
        const sym = symbols[(offset[len] ?? 0) + k] ?? 0;
        if (sym === EOS) return undefined;
        out[n++] = sym;
        code = 0;
        len = 0;
      } else if (len > MAX_LENGTH) {
        return undefined;
      }
    }
  }
  // padding: fewer than 8 bits, all ones (a prefix of EOS)
  if (len > 7 || code !== (1 << len) - 1) return undefined;
  return out.subarray(0, n);
}

/** Huffman-encodes bytes (tests and benchmarks build HPACK blocks with it). */
export function huffmanEncode(bytes: Uint8Array): Uint8Array {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    const l = CODE_LENGTHS[b] ?? 0;
    const c = TABLE.codes[b] ?? 0;
    for (let i = l - 1; i >= 0; i--) {
      acc = (acc << 1) | ((c >>> i) & 1);
      bits++;
      if (bits === 8) {
        out.push(acc);
        acc = 0;
        bits = 0;
      }
    }
  }
  if (bits > 0) out.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) & 0xff);
  return Uint8Array.from(out);
}
