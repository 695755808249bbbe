// SPDX-License-Identifier: Apache-2.0
/** The open lock: this row's bytes came decrypted, from the named TLS stack. */

const NAMES: Record<string, string> = { openssl: 'OpenSSL', gnutls: 'GnuTLS', go: 'Go crypto/tls', rustls: 'rustls', nss: 'NSS', ktls: 'kernel TLS' };

export function sourceName(source: string): string {
  return NAMES[source] ?? source;
}

export function Lock({ source }: { source: string | undefined }) {
  return (
    <svg class="lock" viewBox="0 0 16 16" width="14" height="14" aria-label={source ? `decrypted from ${sourceName(source)}` : 'tlscope'} role="img" data-test="lock">
      {source ? <title>decrypted from {sourceName(source)}</title> : null}
      <path d="M4.6 7.2V4.8a3.2 3.2 0 0 1 6.2-1.2" fill="none" stroke="currentColor" stroke-width="1.7" stroke-linecap="round" />
      <rect x="2.4" y="7.2" width="11.2" height="7.6" rx="1.6" fill="currentColor" />
      <circle cx="8" cy="11" r="1.2" fill="var(--bg, #fff)" />
    </svg>
  );
}
