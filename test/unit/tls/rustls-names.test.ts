// SPDX-License-Identifier: Apache-2.0
// The rustls finder's name matching (src/gadgets/tls/rustls.ts) on symbol names as rustc 1.95
// emitted them for the stacks fixture (legacy and v0 mangling), and on look-alikes that must not
// match: another crate's Reader, rustls' own codec `read`s, a generic Stream's read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { demangleLegacy, rustlsMethodOf, v0Identifiers } from '../../../src/gadgets/tls/rustls.js';

const LEGACY_READ = '_ZN66_$LT$rustls..conn..connection..Reader$u20$as$u20$std..io..Read$GT$4read17h3c07223565efe192E';
const LEGACY_WRITE = '_ZN67_$LT$rustls..conn..connection..Writer$u20$as$u20$std..io..Write$GT$5write17hcd74e6df663c99d9E';
const V0_READ = '_RNvXs2_NtNtCs44UcDpYKeQn_6rustls4conn10connectionNtB5_6ReaderNtNtCsjrHSEGnQ3l9_3std2io4Read4read';
const V0_WRITE = '_RNvXs5_NtNtCs44UcDpYKeQn_6rustls4conn10connectionNtB5_6WriterNtNtCsjrHSEGnQ3l9_3std2io5Write5write';

test('legacy names demangle to their paths, without the hash', () => {
  assert.equal(demangleLegacy(LEGACY_READ), '<rustls::conn::connection::Reader as std::io::Read>::read');
  assert.equal(demangleLegacy(`${LEGACY_WRITE}.llvm.123456`), '<rustls::conn::connection::Writer as std::io::Write>::write');
  assert.equal(demangleLegacy('_ZN6rustls6vecbuf14ChunkVecBuffer4read17ha5951a850c0ed003E'), 'rustls::vecbuf::ChunkVecBuffer::read');
  assert.equal(demangleLegacy('_ZN6rustls4trunc'), undefined);
  assert.equal(demangleLegacy('SSL_read'), undefined);
});

test('v0 names give their identifiers in order', () => {
  assert.deepEqual(v0Identifiers(V0_READ), ['rustls', 'conn', 'connection', 'Reader', 'std', 'io', 'Read', 'read']);
});

test('the two methods are recognised in both manglings, and nothing else is', () => {
  assert.equal(rustlsMethodOf(LEGACY_READ), 'read');
  assert.equal(rustlsMethodOf(LEGACY_WRITE), 'write');
  assert.equal(rustlsMethodOf(V0_READ), 'read');
  assert.equal(rustlsMethodOf(V0_WRITE), 'write');
  // rustls 0.21's path (no `connection` module)
  assert.equal(rustlsMethodOf('_ZN54_$LT$rustls..conn..Reader$u20$as$u20$std..io..Read$GT$4read17h0123456789abcdefE'), 'read');
  for (const other of [
    '_ZN6rustls6vecbuf14ChunkVecBuffer4read17ha5951a850c0ed003E',
    '_ZN49_$LT$u8$u20$as$u20$rustls..msgs..codec..Codec$GT$4read17h7b657c263099c750E',
    '_ZN69_$LT$rustls..stream..Stream$LT$C$C$T$GT$$u20$as$u20$std..io..Read$GT$4read17hb38d9f05bc81800dE',
    '_ZN62_$LT$notrustls..conn..Reader$u20$as$u20$std..io..Read$GT$4read17h0123456789abcdefE',
    '_RNvXs2_NtNtCs44UcDpYKeQn_6rustls4conn10connectionNtB5_6ReaderNtNtCsjrHSEGnQ3l9_3std2io4Read10read_exact',
  ]) assert.equal(rustlsMethodOf(other), undefined, other);
});
