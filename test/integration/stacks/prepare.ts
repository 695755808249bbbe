// SPDX-License-Identifier: Apache-2.0
/**
 * Warms the stack tests' cache (toolchains.ts) so that the test run builds nothing:
 * `scripts/setup.sh --test` runs it after the build. Measured here (2 shared cores): ≈ 10 min
 * and ≈ 3.6 GB the first time (with the Go build cache) (seven Go toolchains from the module proxy, Debian 11's Go 1.15,
 * 27 Go binaries), under a second once cached; plus OpenSSL for musl (toolchains.ts muslOpenSsl:
 * 7 min 55 s wall, 5.5 min of CPU, the first time).
 */
import { boringFixture, GO_RELEASES, GO_VARIANTS, goFixture, muslOpenSsl, nssFixture, nssSkipReason, opensslStaticFixture, rustlsFixture, tlsgetGlibc, tlsgetMusl, type GoVariant } from './toolchains.js';

const started = Date.now();
for (const r of GO_RELEASES) {
  for (const v of Object.keys(GO_VARIANTS) as GoVariant[]) goFixture(r, v);
  console.log(`stacks: go ${r.version} ready (${Math.round((Date.now() - started) / 1000)} s)`);
}
opensslStaticFixture('symbols');
opensslStaticFixture('stripped');
if (nssSkipReason() === false) {
  nssFixture('peer');
  nssFixture('curl');
}
console.log('stacks: static OpenSSL fixtures ready');
rustlsFixture('symbols');
rustlsFixture('stripped');
rustlsFixture('v0');
console.log(`stacks: rustls fixtures ready (${Math.round((Date.now() - started) / 1000)} s)`);
boringFixture('symbols');
boringFixture('stripped');
console.log(`stacks: BoringSSL fixtures ready (${Math.round((Date.now() - started) / 1000)} s)`);
tlsgetGlibc();
const musl = muslOpenSsl();
tlsgetMusl();
console.log(`stacks: OpenSSL ${musl.version} for musl and the tlsget fixtures ready (${Math.round((Date.now() - started) / 1000)} s)`);
