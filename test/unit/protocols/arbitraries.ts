// SPDX-License-Identifier: Apache-2.0
/** fast-check arbitraries shared by the protocol property tests (no tests here). */
import fc from 'fast-check';
import { buildClientHello, type ClientHelloSpec } from '../../helpers/clienthello.js';

const printableChar = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));
export const hostNameArb = fc.string({ unit: printableChar, minLength: 1, maxLength: 255 });
const alpnArb = fc.array(fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 30 }), { maxLength: 6 });
const versionsArb = fc.subarray([0x0304, 0x0303, 0x0302, 0x0301], { minLength: 0 });
const recordsArb = fc.oneof(
  fc.constant(undefined),
  fc.integer({ min: 1, max: 40 }),
  fc.array(fc.integer({ min: 1, max: 600 }), { minLength: 1, maxLength: 8 }),
);

export const helloSpecArb: fc.Arbitrary<ClientHelloSpec> = fc
  .record({
    seed: fc.integer({ min: 1, max: 0x7fffffff }),
    serverName: fc.option(hostNameArb, { nil: undefined }),
    alpn: alpnArb,
    supportedVersions: versionsArb,
    grease: fc.boolean(),
    postQuantum: fc.boolean(),
    extensionOrder: fc.constantFrom('as-built' as const, 'shuffle' as const),
    echPayloadLength: fc.option(fc.integer({ min: 1, max: 300 }), { nil: undefined }),
    padding: fc.option(fc.integer({ min: 0, max: 2000 }), { nil: undefined }),
    records: recordsArb,
    sessionIdLength: fc.integer({ min: 0, max: 32 }),
  })
  .map(({ serverName, echPayloadLength, padding, records, ...always }) => {
    const spec: ClientHelloSpec = { ...always };
    if (serverName !== undefined) spec.serverName = serverName;
    if (echPayloadLength !== undefined) spec.echPayloadLength = echPayloadLength;
    if (records !== undefined) spec.records = records;
    // Pad relative to the unpadded size, so any amount of padding is possible.
    if (padding !== undefined) spec.paddedLength = buildClientHello(spec).handshake.length + 4 + padding;
    return spec;
  });

