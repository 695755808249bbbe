// SPDX-License-Identifier: Apache-2.0
/** Who we run as, and which libbpf: asked here so nothing outside src/ebpf/ touches native.ts. */
import { readFileSync } from 'node:fs';
import { bpf, c, libbpfUnavailable } from './native.js';

/** Effective uid 0. */
export function isRoot(): boolean {
  return c.geteuid() === 0;
}

/** Effective capabilities include everything tlscope needs (when not uid 0). */
export function hasCaps(): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
  if (m?.[1] === undefined) return false;
  const eff = BigInt(`0x${m[1]}`);
  const need = [12n /* NET_ADMIN */, 21n /* SYS_ADMIN */, 38n /* PERFMON */, 39n /* BPF */];
  return need.every((b) => (eff >> b) & 1n);
}

/** Root, or the capabilities gadgets need. */
export function isPrivileged(): boolean {
  return isRoot() || hasCaps();
}

/** "libbpf.so.1 1.1", or why libbpf could not be loaded. */
export function libbpfVersion(): { loaded: true; text: string } | { loaded: false; text: string } {
  const missing = libbpfUnavailable();
  if (missing !== undefined) return { loaded: false, text: missing };
  return { loaded: true, text: `libbpf.so.1 ${bpf.major() as number}.${bpf.minor() as number}` };
}
