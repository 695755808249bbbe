// SPDX-License-Identifier: Apache-2.0
// .eh_frame ranges against the truth of a binary that has both them and symbols (node itself,
// which carries OpenSSL): each function's FDE starts at its symbol; the finder needs that.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ElfFile } from '../../../src/proc/elf.js';
import { ehFrameRanges, rangeOf } from '../../../src/proc/eh-frame.js';

test('every OpenSSL function node exports starts an .eh_frame range of its own', () => {
  const elf = ElfFile.open(process.execPath);
  try {
    const ranges = ehFrameRanges(elf);
    assert.ok(ranges.length > 1000, `${ranges.length} FDEs`);
    const syms = elf.functions((n) => /^(SSL|ssl)_(read|write)(_ex|_internal)?$/.test(n));
    assert.ok(syms.size >= 4, [...syms.keys()].join(','));
    for (const s of syms.values()) {
      const r = rangeOf(ranges, s.address + 1n);
      assert.equal(r?.start, s.address, s.name);
      assert.ok(r !== undefined && r.end - r.start <= s.size + 64n, `${s.name}: range ends near its size`);
    }
  } finally {
    elf.close();
  }
});
