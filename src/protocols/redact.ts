// SPDX-License-Identifier: Apache-2.0
/**
 * Masks credentials before anything leaves the process (`--redact`): header values of
 * Authorization, Proxy-Authorization, Cookie, Set-Cookie, every gRPC binary metadata field
 * (`*-bin`) and user-given header names; values of user-given keys in JSON bodies; and the
 * same header values wherever they appear in plaintext bytes of HTTP/1 (masked in place, byte
 * for byte, so lengths and offsets stay true). Pure: no I/O.
 */
import type { HeaderField } from './hpack.js';

export const REDACTED = '[redacted]';
export const DEFAULT_REDACTED_HEADERS: readonly string[] = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie'];

export interface RedactOptions {
  /** extra header names (any case) */
  headers?: readonly string[];
  /** JSON keys whose values are masked in bodies (any case) */
  jsonKeys?: readonly string[];
}

export class Redactor {
  private readonly headerNames: ReadonlySet<string>;
  private readonly jsonKeys: ReadonlySet<string>;

  constructor(o: RedactOptions = {}) {
    this.headerNames = new Set([...DEFAULT_REDACTED_HEADERS, ...(o.headers ?? [])].map((h) => h.toLowerCase()));
    this.jsonKeys = new Set([...(o.jsonKeys ?? [])].map((k) => k.toLowerCase()));
  }

  isSecretHeader(name: string): boolean {
    const n = name.toLowerCase();
    return this.headerNames.has(n) || n.endsWith('-bin');
  }

  headers<H extends { name: string; value: string }>(hs: readonly H[]): H[] {
    return hs.map((h) => (this.isSecretHeader(h.name) ? { ...h, value: REDACTED } : h));
  }

  /** A JSON body with the configured keys' values masked; other bodies unchanged. */
  body(bytes: Uint8Array): Uint8Array {
    if (this.jsonKeys.size === 0 || bytes.length === 0) return bytes;
    const text = Buffer.from(bytes).toString('utf8');
    const t = text.trimStart();
    if (!t.startsWith('{') && !t.startsWith('[')) return bytes;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      // a cut-off JSON body: mask "key": value pairs textually
      return new TextEncoder().encode(this.maskJsonText(text));
    }
    return new TextEncoder().encode(JSON.stringify(this.maskJson(value)));
  }

  private maskJson(v: unknown): unknown {
    if (Array.isArray(v)) return v.map((x) => this.maskJson(x));
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = this.jsonKeys.has(k.toLowerCase()) ? REDACTED : this.maskJson(x);
      return out;
    }
    return v;
  }

  private maskJsonText(text: string): string {
    return text.replace(/"((?:[^"\\]|\\.)*)"(\s*:\s*)("(?:[^"\\]|\\.)*"?|[^,}\]\s]+)/g, (all, key: string, colon: string) =>
      (this.jsonKeys.has(key.toLowerCase()) ? `"${key}"${colon}"${REDACTED}"` : all));
  }

  /**
   * HTTP/1 plaintext with secret header values overwritten by '*' in place (same length).
   * Header lines are found anywhere in the bytes (a call may hold several messages or half a
   * line; a value cut at the end of the bytes is masked to the end). `count.masked` counts the
   * values masked, when given.
   */
  http1Bytes(bytes: Uint8Array, count?: { masked: number }): Uint8Array {
    let out: Uint8Array | undefined;
    let lineStart = 0;
    for (let i = 0; i <= bytes.length; i++) {
      if (i < bytes.length && bytes[i] !== 0x0a) continue;
      const colon = bytes.indexOf(0x3a, lineStart);
      if (colon > lineStart && colon < i) {
        const name = Buffer.from(bytes.subarray(lineStart, colon)).toString('latin1').trim();
        if (/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) && this.isSecretHeader(name)) {
          out ??= bytes.slice();
          let s = colon + 1;
          while (s < i && (out[s] === 0x20 || out[s] === 0x09)) s++;
          const e = i > 0 && out[i - 1] === 0x0d ? i - 1 : i;
          for (let k = s; k < e; k++) out[k] = 0x2a;
          if (count !== undefined) count.masked++;
        }
      }
      lineStart = i + 1;
    }
    return out ?? bytes;
  }
}

export function redactHeaderFields(r: Redactor | undefined, hs: readonly HeaderField[]): readonly HeaderField[] {
  return r === undefined ? hs : r.headers(hs);
}
