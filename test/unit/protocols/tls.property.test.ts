// SPDX-License-Identifier: Apache-2.0
/**
 * Property tests: the builder crafts hellos from arbitrary specs, the parser must read them back
 * exactly, say need-more for every prefix, and never produce a wrong name from any corruption
 * or random bytes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isGrease, parseClientHello } from '../../../src/protocols/tls.js';
import { helloSpecArb } from './arbitraries.js';
import {
  buildClientHello,
  buildCorruptedClientHello,
  fieldExists,
  LENGTH_FIELDS,
  type ClientHelloSpec,
  type Corruption,
} from '../../helpers/clienthello.js';

/** FC_RUNS=20000 for a deep run; the default keeps the suite fast. */
const RUNS = Number(process.env.FC_RUNS ?? 300);

function expectedHighest(spec: ClientHelloSpec): number {
  const versions = spec.supportedVersions ?? [0x0304, 0x0303];
  return versions.length === 0 ? (spec.legacyVersion ?? 0x0303) : Math.max(...versions);
}

const DNS_ISH = /^[\x21-\x7e]{1,255}$/;
/** Length fields on the path to the name, and the levels that enclose everything. */
const NAME_FIELDS: ReadonlySet<string> = new Set([
  'record',
  'handshake',
  'sessionId',
  'cipherSuites',
  'compressionMethods',
  'extensions',
  'serverNameExtension',
  'serverNameList',
  'hostName',
]);

describe('ClientHello round trip (builder → parser)', () => {
  it('reads back name, ALPN, versions and extension order for any spec and fragmentation', () => {
    fc.assert(
      fc.property(helloSpecArb, (spec) => {
        const built = buildClientHello(spec);
        const result = parseClientHello(built.bytes);
        assert.equal(result.status, 'ok', JSON.stringify(result));
        if (result.status !== 'ok') return;
        const hello = result.hello;
        assert.equal(hello.serverName, spec.serverName);
        assert.deepEqual(hello.alpn, (spec.alpn ?? []).map(expectedAlpnString));
        assert.deepEqual(hello.extensions.map((e) => e.type), built.extensionTypes);
        assert.deepEqual(hello.supportedVersions.filter((v) => !isGrease(v)), spec.supportedVersions ?? [0x0304, 0x0303]);
        assert.equal(hello.highestVersion, expectedHighest(spec));
        assert.equal(hello.grease, spec.grease === true);
        assert.equal(hello.ech, spec.echPayloadLength !== undefined);
        assert.equal(hello.recordCount, built.recordSizes.length);
        assert.equal(hello.streamLength, built.bytes.length);
        if (spec.paddedLength !== undefined) assert.equal(hello.handshakeLength, spec.paddedLength);
      }),
      { numRuns: RUNS },
    );
  });

  it('says need-more for every prefix, asking for no more than the whole stream', () => {
    fc.assert(
      fc.property(helloSpecArb, fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), (spec, where) => {
        const bytes = buildClientHello(spec).bytes;
        const k = Math.floor(where * bytes.length);
        const result = parseClientHello(bytes.subarray(0, k));
        assert.equal(result.status, 'need-more', `cut at ${k}: ${JSON.stringify(result)}`);
        if (result.status === 'need-more') assert.ok(result.needed > k && result.needed <= bytes.length, `needed ${result.needed}`);
      }),
      { numRuns: RUNS },
    );
  });
});

function expectedAlpnString(name: string): string {
  let out = '';
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    out += c >= 0x20 && c < 0x7f && c !== 0x5c ? name[i] : `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return out;
}

const corruptionArb = (spec: ClientHelloSpec, length: number): fc.Arbitrary<Corruption> => {
  const fields = LENGTH_FIELDS.filter((f) => fieldExists(spec, f));
  return fc.oneof(
    fc.record({ kind: fc.constant('truncate' as const), at: fc.integer({ min: 0, max: length - 1 }) }),
    fc.record({
      kind: fc.constant('length' as const),
      field: fc.constantFrom(...fields),
      delta: fc.integer({ min: -300, max: 300 }).filter((d) => d % 256 !== 0),
    }),
    fc.record({ kind: fc.constant('oversized-name' as const), length: fc.integer({ min: 256, max: 3000 }) }),
    fc.record({
      kind: fc.constant('non-printable-name' as const),
      position: fc.integer({ min: 0, max: 254 }),
      byte: fc.oneof(fc.integer({ min: 0, max: 0x20 }), fc.integer({ min: 0x7f, max: 0xff })),
    }),
    fc.record({ kind: fc.constant('record-type' as const), type: fc.integer({ min: 0, max: 255 }).filter((t) => t !== 22) }),
  );
};

describe('ClientHello corruptions', () => {
  it('never yield a wrong name: invalid or need-more, or a different but well-formed hello with the same name', () => {
    const specAndCorruption = helloSpecArb
      .filter((s) => s.serverName !== undefined)
      .chain((spec) => fc.tuple(fc.constant(spec), corruptionArb(spec, buildClientHello(spec).bytes.length)));
    fc.assert(
      fc.property(specAndCorruption, ([spec, corruption]) => {
        const result = parseClientHello(buildCorruptedClientHello(spec, corruption));
        const describe = `${JSON.stringify(corruption)} parsed as ${JSON.stringify(result)}`;
        if (result.status === 'ok') {
          // A shifted length inside an opaque list (ALPN names are arbitrary bytes here) can
          // describe another well-formed list; that is a valid hello, but its name must be intact.
          assert.ok(corruption.kind === 'length' && !NAME_FIELDS.has(corruption.field), describe);
          assert.equal(result.hello.serverName, spec.serverName, describe);
        }
        if (corruption.kind === 'truncate') assert.equal(result.status, 'need-more', describe);
        if (corruption.kind === 'oversized-name' || corruption.kind === 'non-printable-name' || corruption.kind === 'record-type') {
          assert.equal(result.status, 'invalid', describe);
        }
        if (result.status === 'invalid') assert.ok(!result.reason.startsWith('internal'), result.reason);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('bit flips anywhere never throw and never yield a name that is not DNS-ish', () => {
    const flips = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 });
    fc.assert(
      fc.property(helloSpecArb, flips, (spec, changes) => {
        const bytes = buildClientHello(spec).bytes;
        for (const [at, xor] of changes) bytes[at % bytes.length]! ^= xor;
        const result = parseClientHello(bytes);
        if (result.status === 'ok' && result.hello.serverName !== undefined) assert.match(result.hello.serverName, DNS_ISH);
        if (result.status === 'invalid') assert.ok(!result.reason.startsWith('internal'), result.reason);
      }),
      { numRuns: RUNS * 2 },
    );
  });
});

describe('ClientHello parser on random bytes', () => {
  it('never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4096 }), (bytes) => {
        const result = parseClientHello(bytes);
        assert.ok(['ok', 'need-more', 'invalid'].includes(result.status));
        if (result.status === 'invalid') assert.ok(!result.reason.startsWith('internal'), result.reason);
      }),
      { numRuns: RUNS * 3 },
    );
  });

  it('never throws on random bodies behind a valid record and handshake header', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), fc.integer({ min: 0, max: 0xff }), (body, minor) => {
        const stream = new Uint8Array(9 + body.length);
        stream.set([22, 3, minor & 3, (body.length + 4) >> 8, (body.length + 4) & 0xff, 1, 0, body.length >> 8, body.length & 0xff]);
        stream.set(body, 9);
        const result = parseClientHello(stream);
        if (result.status === 'ok' && result.hello.serverName !== undefined) assert.match(result.hello.serverName, DNS_ISH);
        if (result.status === 'invalid') assert.ok(!result.reason.startsWith('internal'), result.reason);
      }),
      { numRuns: RUNS * 3 },
    );
  });
});
