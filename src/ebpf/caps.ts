// SPDX-License-Identifier: Apache-2.0
/**
 * Linux capabilities of this process, for saying exactly what is missing when tlscope runs as
 * a non-root user (or as a root whose capabilities were cut, as in a container). The kernel
 * accepts CAP_SYS_ADMIN in place of CAP_BPF and CAP_PERFMON (bpf_capable(), perfmon_capable()),
 * so those two are satisfied by it too.
 */
import { readFileSync } from 'node:fs';

export const CAPABILITY_BITS = {
  CAP_DAC_OVERRIDE: 1,
  CAP_DAC_READ_SEARCH: 2,
  CAP_NET_ADMIN: 12,
  CAP_NET_RAW: 13,
  CAP_SYS_PTRACE: 19,
  CAP_SYS_ADMIN: 21,
  CAP_SYS_RESOURCE: 24,
  CAP_PERFMON: 38,
  CAP_BPF: 39,
} as const;

export type Capability = keyof typeof CAPABILITY_BITS;

/** The effective set, from /proc/self/status (`status` for tests). */
export function effectiveCapabilities(status?: string): Set<Capability> {
  const text = status ?? readFileSync('/proc/self/status', 'utf8');
  const m = /^CapEff:\s*([0-9a-f]+)/m.exec(text);
  const eff = m?.[1] === undefined ? 0n : BigInt(`0x${m[1]}`);
  const out = new Set<Capability>();
  for (const [name, bit] of Object.entries(CAPABILITY_BITS) as [Capability, number][]) {
    if ((eff >> BigInt(bit)) & 1n) out.add(name);
  }
  return out;
}

/** Which of `need` the set lacks (CAP_SYS_ADMIN stands in for CAP_BPF and CAP_PERFMON). */
export function missingCapabilities(need: readonly Capability[], have: ReadonlySet<Capability> = effectiveCapabilities()): Capability[] {
  return need.filter((cap) => !have.has(cap) && !((cap === 'CAP_BPF' || cap === 'CAP_PERFMON') && have.has('CAP_SYS_ADMIN')));
}

/** Can load BPF programs at all (CAP_BPF or CAP_SYS_ADMIN). */
export function bpfCapable(have: ReadonlySet<Capability> = effectiveCapabilities()): boolean {
  return missingCapabilities(['CAP_BPF'], have).length === 0;
}
