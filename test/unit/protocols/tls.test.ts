// SPDX-License-Identifier: Apache-2.0
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  isGrease,
  isTlsHandshakeStart,
  parseClientHello,
  parseTlsRecordHeader,
  tlsVersionName,
  TlsVersion,
  type ClientHello,
  type ClientHelloParseResult,
} from '../../../src/protocols/tls.js';
import {
  buildClientHello,
  buildCorruptedClientHello,
  GROUP_X25519_MLKEM768,
  LENGTH_FIELDS,
  type ClientHelloSpec,
} from '../../helpers/clienthello.js';

function parseOk(bytes: Uint8Array): ClientHello {
  const result = parseClientHello(bytes);
  assert.equal(result.status, 'ok', `expected ok, got ${JSON.stringify(result)}`);
  return (result as Extract<ClientHelloParseResult, { status: 'ok' }>).hello;
}

function parseInvalid(bytes: Uint8Array): string {
  const result = parseClientHello(bytes);
  assert.equal(result.status, 'invalid', `expected invalid, got ${JSON.stringify(result)}`);
  return (result as Extract<ClientHelloParseResult, { status: 'invalid' }>).reason;
}

const FULL: ClientHelloSpec = { serverName: 'api.example.test', alpn: ['h2', 'http/1.1'], seed: 3 };

describe('TLS versions and GREASE', () => {
  it('names versions, GREASE and unknown values', () => {
    assert.equal(tlsVersionName(0x0304), 'TLS1.3');
    assert.equal(tlsVersionName(TlsVersion.TLS1_2), 'TLS1.2');
    assert.equal(tlsVersionName(0x0300), 'SSL3.0');
    assert.equal(tlsVersionName(0x7a7a), 'GREASE');
    assert.equal(tlsVersionName(0x7f1c), '0x7f1c');
  });

  it('recognises exactly the 16 GREASE values', () => {
    const grease = [];
    for (let v = 0; v <= 0xffff; v++) if (isGrease(v)) grease.push(v);
    assert.equal(grease.length, 16);
    assert.deepEqual(grease.slice(0, 3), [0x0a0a, 0x1a1a, 0x2a2a]);
    assert.equal(isGrease(0x0a1a), false);
  });
});

describe('parseTlsRecordHeader', () => {
  it('reads type, version and length', () => {
    assert.deepEqual(parseTlsRecordHeader(Uint8Array.of(22, 3, 1, 0x02, 0x00)), {
      status: 'ok',
      header: { contentType: 22, version: 0x0301, length: 512 },
    });
  });

  it('reads at an offset and asks for the rest of a short header', () => {
    const bytes = Uint8Array.of(0, 0, 23, 3, 3, 0, 5);
    assert.equal(parseTlsRecordHeader(bytes, 2).status, 'ok');
    assert.deepEqual(parseTlsRecordHeader(bytes.subarray(0, 4), 2), { status: 'need-more', needed: 7 });
  });

  it('rejects unknown content types, non-3 majors and oversized lengths', () => {
    assert.equal(parseTlsRecordHeader(Uint8Array.of(0x47, 0x45, 0x54, 0x20, 0x2f)).status, 'invalid'); // "GET /"
    assert.equal(parseTlsRecordHeader(Uint8Array.of(22, 2, 0, 0, 1)).status, 'invalid');
    assert.equal(parseTlsRecordHeader(Uint8Array.of(23, 3, 3, 0x48, 0x01)).status, 'invalid');
  });
});

describe('isTlsHandshakeStart', () => {
  it('accepts the start of every built hello', () => {
    assert.ok(isTlsHandshakeStart(buildClientHello(FULL).bytes));
    assert.ok(isTlsHandshakeStart(buildClientHello({ ...FULL, recordVersion: 0x0300 }).bytes));
  });

  it('refuses HTTP, other records, ServerHello, short input and odd versions', () => {
    assert.equal(isTlsHandshakeStart(new TextEncoder().encode('GET / HTTP/1.1\r\n')), false);
    assert.equal(isTlsHandshakeStart(Uint8Array.of(22, 3, 3, 0, 50, 2)), false);
    assert.equal(isTlsHandshakeStart(Uint8Array.of(23, 3, 3, 0, 50, 1)), false);
    assert.equal(isTlsHandshakeStart(Uint8Array.of(22, 3, 5, 0, 50, 1)), false);
    assert.equal(isTlsHandshakeStart(Uint8Array.of(22, 3, 1, 0, 0, 1)), false);
    assert.equal(isTlsHandshakeStart(Uint8Array.of(22, 3, 1, 0, 50)), false);
  });
});

describe('parseClientHello: well-formed hellos', () => {
  it('reports every field of a typical TLS 1.3 hello', () => {
    const built = buildClientHello(FULL);
    const hello = parseOk(built.bytes);
    assert.equal(hello.serverName, 'api.example.test');
    assert.deepEqual(hello.alpn, ['h2', 'http/1.1']);
    assert.deepEqual(hello.supportedVersions, [0x0304, 0x0303]);
    assert.equal(hello.highestVersion, 0x0304);
    assert.equal(hello.recordVersion, 0x0301);
    assert.equal(hello.legacyVersion, 0x0303);
    assert.equal(hello.random.length, 32);
    assert.deepEqual(hello.random, built.handshake.slice(6, 38));
    assert.equal(hello.sessionIdLength, 32);
    assert.deepEqual(hello.compressionMethods, [0]);
    assert.deepEqual(hello.keyShareGroups, [0x001d]);
    assert.deepEqual(hello.supportedGroups, [0x001d, 0x0017, 0x0018]);
    assert.deepEqual(
      hello.extensions.map((e) => e.type),
      built.extensionTypes,
    );
    assert.equal(hello.ech, false);
    assert.equal(hello.grease, false);
    assert.equal(hello.recordCount, 1);
    assert.equal(hello.handshakeLength, built.handshake.length);
    assert.equal(hello.streamLength, built.bytes.length);
  });

  it('reports extension lengths as written', () => {
    const built = buildClientHello(FULL);
    const hello = parseOk(built.bytes);
    const total = hello.extensions.reduce((sum, e) => sum + 4 + e.length, 0);
    const blockLength = (built.handshake[built.handshake.length - total - 2]! << 8) | built.handshake[built.handshake.length - total - 1]!;
    assert.equal(blockLength, total);
  });

  it('handles a hello without server_name or ALPN', () => {
    const hello = parseOk(buildClientHello({ seed: 4 }).bytes);
    assert.equal(hello.serverName, undefined);
    assert.deepEqual(hello.alpn, []);
  });

  it('reads a 255-byte name, the longest allowed', () => {
    const name = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}.test`.slice(0, 255);
    assert.equal(name.length, 255);
    assert.equal(parseOk(buildClientHello({ serverName: name }).bytes).serverName, name);
  });

  it('finds a name placed past 1500 bytes behind a post-quantum key share', () => {
    const built = buildClientHello({ ...FULL, postQuantum: true, extensionOrder: [0x0033, 0x0015, 0x0000], paddedLength: 1800 });
    assert.ok(built.serverNameOffset !== undefined && built.serverNameOffset > 1500, `name at ${built.serverNameOffset}`);
    const hello = parseOk(built.bytes);
    assert.equal(hello.serverName, 'api.example.test');
    assert.equal(hello.keyShareGroups[0], GROUP_X25519_MLKEM768);
    assert.equal(hello.handshakeLength, 1800);
  });

  it('joins a hello fragmented over many records, down to one byte each', () => {
    for (const records of [2, 3, 17, [1, 1, 1, 1, 1, 1, 1], [4]]) {
      const hello = parseOk(buildClientHello({ ...FULL, records }).bytes);
      assert.equal(hello.serverName, 'api.example.test');
      assert.ok(hello.recordCount >= 2);
    }
    const built = buildClientHello({ ...FULL, records: 10_000 });
    assert.equal(parseOk(built.bytes).recordCount, built.handshake.length);
  });

  it('reads GREASE, ignores it for the highest version and reports its presence', () => {
    const hello = parseOk(buildClientHello({ ...FULL, grease: true, seed: 9 }).bytes);
    assert.equal(hello.grease, true);
    assert.ok(isGrease(hello.cipherSuites[0]!));
    assert.ok(isGrease(hello.supportedVersions[0]!));
    assert.equal(hello.highestVersion, 0x0304);
    assert.ok(hello.extensions.some((e) => isGrease(e.type)));
  });

  it('takes the legacy version as highest when supported_versions is absent (TLS 1.2 client)', () => {
    const hello = parseOk(buildClientHello({ ...FULL, supportedVersions: [] }).bytes);
    assert.deepEqual(hello.supportedVersions, []);
    assert.equal(hello.highestVersion, 0x0303);
  });

  it('flags encrypted_client_hello', () => {
    assert.equal(parseOk(buildClientHello({ ...FULL, echPayloadLength: 200 }).bytes).ech, true);
  });

  it('reads a hello with no extensions block at all (SSL 3.0 style)', () => {
    const body = [0x03, 0x00, ...new Array<number>(32).fill(7), 0, 0, 2, 0x00, 0x2f, 1, 0];
    const bytes = Uint8Array.of(22, 3, 0, 0, body.length + 4, 1, 0, 0, body.length, ...body);
    const hello = parseOk(bytes);
    assert.deepEqual(hello.extensions, []);
    assert.equal(hello.highestVersion, 0x0300);
    assert.equal(hello.serverName, undefined);
  });

  it('escapes ALPN bytes outside printable ASCII', () => {
    const hello = parseOk(buildClientHello({ ...FULL, alpn: ['h2', 'a\u0001b\\', '\u00ff'] }).bytes);
    assert.deepEqual(hello.alpn, ['h2', 'a\\x01b\\x5c', '\\xff']);
  });

  it('ignores whatever follows the last record of the hello', () => {
    const built = buildClientHello(FULL);
    const stream = new Uint8Array(built.bytes.length + 6);
    stream.set(built.bytes);
    stream.set([20, 3, 3, 0, 1, 1], built.bytes.length); // ChangeCipherSpec, as TLS 1.3 clients send
    assert.equal(parseOk(stream).streamLength, built.bytes.length);
  });
});

describe('parseClientHello: prefixes', () => {
  it('says need-more for every proper prefix, with a needed length that is never past the end', () => {
    for (const spec of [FULL, { ...FULL, records: 4 }, { ...FULL, postQuantum: true, records: [1, 2, 3] }]) {
      const bytes = buildClientHello(spec).bytes;
      for (let k = 0; k < bytes.length; k++) {
        const result = parseClientHello(bytes.subarray(0, k));
        assert.equal(result.status, 'need-more', `prefix ${k}: ${JSON.stringify(result)}`);
        const needed = (result as Extract<ClientHelloParseResult, { status: 'need-more' }>).needed;
        assert.ok(needed > k && needed <= bytes.length, `prefix ${k}: needed ${needed} of ${bytes.length}`);
      }
    }
  });

  it('knows the exact length once the single record header has arrived', () => {
    const bytes = buildClientHello(FULL).bytes;
    assert.deepEqual(parseClientHello(bytes.subarray(0, 5)), { status: 'need-more', needed: bytes.length });
  });

  it('rejects garbage on its first byte, not after waiting', () => {
    assert.match(parseInvalid(Uint8Array.of(0x47)), /content type 71 is not a TLS handshake/);
    assert.match(parseInvalid(Uint8Array.of(22, 3, 1, 0, 9, 2)), /handshake type 2 is not ClientHello/);
    assert.match(parseInvalid(Uint8Array.of(22, 4)), /version major 4/);
  });

  it('rejects a bad name byte before the rest of the hello arrives', () => {
    const built = buildClientHello({ serverName: 'bad\u0007name.test' });
    const cut = built.serverNameOffset! + 5;
    assert.match(parseInvalid(built.bytes.subarray(0, cut)), /host_name byte 3 is 0x07/);
  });
});

describe('parseClientHello: corruptions', () => {
  it('rejects a wrong length at every level with a reason naming it', () => {
    const spec: ClientHelloSpec = { ...FULL, records: 2 };
    const original = buildClientHello(spec).bytes;
    for (const field of LENGTH_FIELDS) {
      for (const delta of [-1, 1, 0x100, -0x100]) {
        const corrupted = buildCorruptedClientHello(spec, { kind: 'length', field, delta });
        if (Buffer.from(corrupted).equals(original)) continue; // ±256 on a one-byte field wraps to itself
        const result = parseClientHello(corrupted);
        assert.notEqual(result.status, 'ok', `${field} ${delta}`);
        if (result.status === 'invalid') assert.ok(result.reason.length > 10 && !result.reason.startsWith('internal'), result.reason);
      }
    }
  });

  it('rejects names that are too long, empty, or not printable ASCII', () => {
    assert.match(parseInvalid(buildCorruptedClientHello(FULL, { kind: 'oversized-name', length: 256 })), /host_name is 256 bytes, longer than 255/);
    assert.match(parseInvalid(buildClientHello({ serverName: '' }).bytes), /host_name is empty/);
    for (const byte of [0x00, 0x09, 0x20, 0x7f, 0x80, 0xff]) {
      const reason = parseInvalid(buildCorruptedClientHello(FULL, { kind: 'non-printable-name', position: 4, byte }));
      assert.match(reason, new RegExp(`host_name byte 4 is 0x${byte.toString(16).padStart(2, '0')}`));
    }
  });

  it('rejects a record that is not a handshake record', () => {
    assert.match(parseInvalid(buildCorruptedClientHello(FULL, { kind: 'record-type', type: 23 })), /content type 23/);
  });

  it('rejects a handshake interrupted by another record type', () => {
    const bytes = buildClientHello({ ...FULL, records: 2 }).bytes;
    const first = (bytes[3]! << 8) | bytes[4]!;
    bytes[5 + first] = 21; // second record becomes an alert
    assert.match(parseInvalid(bytes), /record 2 .* interrupts the handshake/);
  });

  it('rejects duplicate extensions, so two different names cannot hide behind each other', () => {
    const second = { type: 0x0000, data: Uint8Array.of(0, 12, 0, 0, 9, ...new TextEncoder().encode('evil.test')) };
    assert.match(parseInvalid(buildClientHello({ ...FULL, extraExtensions: [second] }).bytes), /server_name \(0x0000\) appears twice/);
  });

  it('rejects two host_name entries in one server_name list', () => {
    const name = new TextEncoder().encode('a.test');
    const entry = [0, 0, name.length, ...name];
    const data = Uint8Array.of(0, entry.length * 2, ...entry, ...entry);
    assert.match(parseInvalid(buildClientHello({ extraExtensions: [{ type: 0, data }] }).bytes), /two host_name entries/);
  });

  it('rejects empty and odd lists', () => {
    assert.match(parseInvalid(buildClientHello({ cipherSuites: [] }).bytes), /cipher suites list is empty/);
    assert.match(parseInvalid(buildClientHello({ extraExtensions: [{ type: 0x0010, data: Uint8Array.of(0, 0) }] }).bytes), /ALPN list is empty/);
    assert.match(parseInvalid(buildClientHello({ alpn: ['h2', ''] }).bytes), /ALPN protocol name 2 is empty/);
    assert.match(parseInvalid(buildClientHello({ extraExtensions: [{ type: 0x0000, data: Uint8Array.of(0, 0) }] }).bytes), /server_name list is empty/);
  });

  it('rejects handshake lengths no ClientHello can have', () => {
    assert.match(parseInvalid(Uint8Array.of(22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff)), /exceeds the largest possible ClientHello/);
  });

  it('rejects a client version outside SSL 3.0 to TLS 1.3', () => {
    assert.match(parseInvalid(buildClientHello({ legacyVersion: 0x0200 }).bytes), /client version 0x0200/);
  });

  it('rejects records longer than 2^14 and empty handshake records', () => {
    assert.match(parseInvalid(Uint8Array.of(22, 3, 1, 0x40, 0x01)), /largest plaintext fragment/);
    assert.match(parseInvalid(Uint8Array.of(22, 3, 1, 0, 0)), /empty handshake fragment/);
  });

  it('says need-more, never ok, when the stream is cut anywhere', () => {
    const bytes = buildClientHello({ ...FULL, postQuantum: true }).bytes;
    for (const at of [0, 1, 5, 6, 9, 100, 1300, bytes.length - 1]) {
      assert.equal(parseClientHello(buildCorruptedClientHello({ ...FULL, postQuantum: true }, { kind: 'truncate', at })).status, 'need-more');
      assert.equal(parseClientHello(bytes.subarray(0, at)).status, 'need-more');
    }
  });
});
