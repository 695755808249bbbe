// SPDX-License-Identifier: Apache-2.0
/** --proto DIR: names from .proto files; unknown methods and bytes of another type fall back (undefined); bad input is a usage error with the next step. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadProtoDir } from '../../../src/gadgets/tls/proto-schema.js';

function dirWith(files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), 'tlscope-proto-'));
  for (const [n, text] of Object.entries(files)) {
    mkdirSync(join(d, n, '..'), { recursive: true });
    writeFileSync(join(d, n), text);
  }
  return d;
}

test('a service in a subdirectory, importing another file: request and response by name', () => {
  const d = dirWith({
    'demo/types.proto': 'syntax = "proto3";\npackage demo;\nmessage Req { string name = 1; int64 id = 2; }\nmessage Rep { repeated string tags = 1; }\n',
    'demo/svc.proto': 'syntax = "proto3";\npackage demo;\nimport "demo/types.proto";\nservice Shop { rpc Get (Req) returns (Rep); }\n',
  });
  try {
    const s = loadProtoDir(d);
    assert.equal(s.files, 2);
    assert.deepEqual(s.services, ['demo.Shop']);
    // name "ab" (field 1), id 7 (field 2)
    assert.equal(s.describe('demo.Shop', 'Get', 'request', Uint8Array.from([0x0a, 2, 0x61, 0x62, 0x10, 7])), 'Req {"name":"ab","id":"7"}');
    assert.equal(s.describe('demo.Shop', 'Get', 'response', Uint8Array.from([0x0a, 1, 0x78, 0x0a, 1, 0x79])), 'Rep {"tags":["x","y"]}');
    assert.equal(s.describe('demo.Shop', 'Put', 'request', Uint8Array.from([0x0a, 0])), undefined, 'a method the files do not define');
    assert.equal(s.describe('other.Svc', 'Get', 'request', Uint8Array.from([0x0a, 0])), undefined);
    assert.equal(s.describe('demo.Shop', 'Get', 'request', Uint8Array.from([0x0a, 9, 1])), undefined, 'bytes that are not a Req: the generic view shows them');
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('bad --proto input: clear errors with the next step', () => {
  assert.throws(() => loadProtoDir('/nonexistent-tlscope-dir'), /--proto \/nonexistent-tlscope-dir: .*give a directory that holds \.proto files/);
  const empty = dirWith({ 'readme.txt': 'x' });
  const broken = dirWith({ 'a.proto': 'syntax = "proto3";\nmessage {' });
  try {
    assert.throws(() => loadProtoDir(empty), /no \.proto files in it/);
    assert.throws(() => loadProtoDir(broken), /the \.proto files do not load/);
  } finally {
    rmSync(empty, { recursive: true, force: true });
    rmSync(broken, { recursive: true, force: true });
  }
});
