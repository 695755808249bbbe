// SPDX-License-Identifier: Apache-2.0
// capture's owner records (bpf/capture_owner.bpf.c): the compiled struct capture_owner and the
// shared struct tlscope_tuple and tlscope_proc in it are laid out as decodeOwner,
// src/net/tuple.ts and src/gadgets/proc-record.ts read them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BpfObject } from '../../../src/ebpf/object.js';
import { CAPTURE_OWNER_LAYOUT } from '../../../src/gadgets/capture/owners.js';
import { TUPLE_LAYOUT } from '../../../src/net/tuple.js';
import { PROC_LAYOUT } from '../../../src/gadgets/proc-record.js';
import { featureSkip } from '../../helpers/features.js';
/** root and the kernel features these tests need (test/helpers/features.ts: skips only for a measured reason) */
const kernelSkip = featureSkip('btf', 'tracepoint', 'uprobe', 'ringbuf');

test('BTF: struct capture_owner, tlscope_tuple and tlscope_proc match the TypeScript decoders', { skip: kernelSkip }, () => {
  const obj = BpfObject.load('capture_owner', { programs: [] });
  try {
    for (const [name, want] of [['capture_owner', CAPTURE_OWNER_LAYOUT], ['tlscope_tuple', TUPLE_LAYOUT], ['tlscope_proc', PROC_LAYOUT]] as const) {
      const l = obj.structLayout(name);
      assert.equal(l?.size, want.size, `${name} size`);
      const at = new Map(l?.members.map((m) => [m.name, m.offset]));
      for (const [field, offset] of Object.entries(want)) if (field !== 'size') assert.equal(at.get(field), offset, `${name}.${field}`);
    }
  } finally {
    obj.close();
  }
});
