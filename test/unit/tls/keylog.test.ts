// SPDX-License-Identifier: Apache-2.0
/** --keylog's record decoder and NSS key log lines: well-formed lines only, every other record given a reason. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeKeylogEvent, keylogLine, KEYLOG_EVENT_LAYOUT, type KeylogRecord } from '../../../src/gadgets/tls/keylog.js';

function record(label: string, random: Uint8Array, secret: Uint8Array, flags = 0): DataView {
  const L = KEYLOG_EVENT_LAYOUT;
  const b = Buffer.alloc(L.size + 8);
  const at = 8; // not at the start of its buffer, as records in the ring are not
  b.writeUInt32LE(4242, at); // proc.pid
  b.write('client', at + 32, 'latin1'); // proc.comm
  b[at + L.label_len] = label.length;
  b[at + L.random_len] = random.length;
  b[at + L.secret_len] = secret.length;
  b[at + L.flags] = flags;
  b.write(label, at + L.label, 'latin1');
  Buffer.from(random).copy(b, at + L.random);
  Buffer.from(secret).copy(b, at + L.secret);
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

const random = Uint8Array.from({ length: 32 }, (_, i) => i);
const secret = Uint8Array.from({ length: 48 }, (_, i) => 255 - i);

test('a TLS 1.3 secret becomes one NSS key log line', () => {
  const r = decodeKeylogEvent(record('CLIENT_TRAFFIC_SECRET_0', random, secret), 8, KEYLOG_EVENT_LAYOUT.size);
  assert.equal(r.proc.pid, 4242);
  assert.equal(r.proc.comm, 'client');
  assert.deepEqual(keylogLine(r), { line: `CLIENT_TRAFFIC_SECRET_0 ${Buffer.from(random).toString('hex')} ${Buffer.from(secret).toString('hex')}\n` });
});

test('records that cannot make a line say why (never a wrong line)', () => {
  const at = (label: string, rnd: Uint8Array, sec: Uint8Array, flags = 0): ReturnType<typeof keylogLine> =>
    keylogLine(decodeKeylogEvent(record(label, rnd, sec, flags), 8, KEYLOG_EVENT_LAYOUT.size));
  assert.deepEqual(at('CLIENT_RANDOM', random, secret, 1), { invalid: 'unreadable process memory' });
  assert.deepEqual(at('CLIENT_RANDOM', random, secret, 2), { invalid: 'label or secret longer than the record' });
  assert.deepEqual(at('client random', random, secret), { invalid: 'not a key log label' });
  assert.deepEqual(at('', random, secret), { invalid: 'not a key log label' });
  assert.deepEqual(at('CLIENT_RANDOM', random.subarray(0, 31), secret), { invalid: 'client random of 31 bytes' });
  assert.deepEqual(at('CLIENT_RANDOM', random, new Uint8Array()), { invalid: 'empty secret' });
  assert.throws(() => decodeKeylogEvent(record('X', random, secret), 8, 100), /keylog event of 100 bytes/);
});

test('garbage records never throw in keylogLine and never make a line that is not LABEL hex64 hex', () => {
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let i = 0; i < 2000; i++) {
    const b = Buffer.alloc(KEYLOG_EVENT_LAYOUT.size);
    for (let j = 0; j < b.length; j++) b[j] = rnd(256);
    if (i % 2 === 0) { b[KEYLOG_EVENT_LAYOUT.random_len] = 32; b[KEYLOG_EVENT_LAYOUT.flags] = 0; }
    b[KEYLOG_EVENT_LAYOUT.label_len] = rnd(64);
    b[KEYLOG_EVENT_LAYOUT.random_len] = Math.min(b[KEYLOG_EVENT_LAYOUT.random_len]!, 63);
    b[KEYLOG_EVENT_LAYOUT.secret_len] = rnd(64);
    const r: KeylogRecord = decodeKeylogEvent(new DataView(b.buffer, b.byteOffset, b.length), 0, b.length);
    const l = keylogLine(r);
    if ('line' in l) assert.match(l.line, /^[A-Z0-9_]{1,63} [0-9a-f]{64} [0-9a-f]{2,126}\n$/);
    else assert.equal(typeof l.invalid, 'string');
  }
});
