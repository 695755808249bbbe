// SPDX-License-Identifier: Apache-2.0
/**
 * Real ClientHellos recorded from the TLS clients on the dev machine by
 * test/fixtures/clienthello/record.mjs (OpenSSL s_client, curl, python, node, GnuTLS, Go).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ClientHelloAssembler } from '../../../src/protocols/clienthello-assembler.js';
import { isTlsHandshakeStart, parseClientHello, tlsVersionName } from '../../../src/protocols/tls.js';
import { splitIntoSegments } from '../../helpers/clienthello.js';

/** From dist/test/unit/protocols/ back to the source tree's fixtures. */
const FIXTURES = new URL('../../../../test/fixtures/clienthello/', import.meta.url);

interface FixtureEntry {
  file: string;
  serverName: string;
  alpn: string[];
  highestVersion: number;
  client: string;
}

const manifest = JSON.parse(readFileSync(new URL('manifest.json', FIXTURES), 'utf8')) as Record<string, FixtureEntry>;

function fixture(entry: FixtureEntry): Uint8Array {
  return new Uint8Array(readFileSync(new URL(entry.file, FIXTURES)));
}

describe('real ClientHellos', () => {
  it('has fixtures from several clients', () => {
    assert.ok(Object.keys(manifest).length >= 5, Object.keys(manifest).join(', '));
  });

  for (const [id, entry] of Object.entries(manifest)) {
    describe(`${id} (${entry.client})`, () => {
      const bytes = fixture(entry);

      it('parses with the name, ALPN and highest version the client was asked for', () => {
        assert.ok(isTlsHandshakeStart(bytes));
        const result = parseClientHello(bytes);
        assert.equal(result.status, 'ok', JSON.stringify(result));
        if (result.status !== 'ok') return;
        assert.equal(result.hello.serverName, entry.serverName);
        assert.deepEqual(result.hello.alpn, entry.alpn);
        assert.equal(tlsVersionName(result.hello.highestVersion), tlsVersionName(entry.highestVersion));
        assert.equal(result.hello.streamLength, bytes.length);
        assert.ok(result.hello.extensions.some((e) => e.type === 0));
      });

      it('says need-more for every proper prefix', () => {
        for (let k = 0; k < bytes.length; k++) assert.equal(parseClientHello(bytes.subarray(0, k)).status, 'need-more', `prefix ${k}`);
      });

      it('comes out of the assembler whole from small, shuffled, duplicated segments', () => {
        const a = new ClientHelloAssembler({ now: () => 0 });
        const segments = splitIntoSegments(bytes, { sizes: [7], mss: 50, shuffle: true, duplicate: true, seed: 4 });
        const results = segments.map((s) => a.push(id, s.seq, s.payload)).filter((r) => r.status === 'hello');
        assert.equal(results.length, 1);
        assert.equal(results[0]?.status === 'hello' && results[0].hello.serverName, entry.serverName);
      });
    });
  }

  it('curl offers h2 and http/1.1 and TLS 1.3', () => {
    const curl = manifest.curl;
    if (curl === undefined) return;
    const result = parseClientHello(fixture(curl));
    assert.equal(result.status, 'ok');
    if (result.status !== 'ok') return;
    assert.deepEqual(result.hello.alpn, ['h2', 'http/1.1']);
    assert.equal(tlsVersionName(result.hello.highestVersion), 'TLS1.3');
  });
});
