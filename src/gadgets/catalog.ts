// SPDX-License-Identifier: Apache-2.0
/** What each gadget needs from the kernel, for `tlscope doctor` and for clear refusals. */
import { missingCapabilities, type Capability } from '../ebpf/caps.js';
import type { FeatureName } from '../ebpf/features.js';
import { PermissionError } from '../errors.js';
import { describeKtls, ktlsSupport } from '../ebpf/ktls.js';
import { captureDefinition } from './capture/definition.js';
import { sniDefinition } from './sni/definition.js';
import { tlsDefinition } from './tls/definition.js';

export interface GadgetRequirement {
  gadget: string;
  what: string;
  /** Every group must have at least one supported feature. */
  requires: readonly (readonly FeatureName[])[];
  /** false while the gadget is not part of this build yet. */
  implemented: boolean;
  /** Which of its alternatives the gadget will use here, given what the probes found (doctor shows it). */
  uses?: (supported: (f: FeatureName) => boolean) => string;
  /** The capabilities it needs without root (measured, see COMMAND_CAPABILITIES). */
  caps: readonly Capability[];
}

/**
 * What each command needs as a non-root user, measured on Linux 6.18 (Debian 12) with
 * setpriv --reuid=65534 --ambient-caps: starting from every candidate capability, each one
 * dropped in turn, kept out when the command still saw a local TLS client's name (trace sni),
 * request (trace tls) or ClientHello (capture). CAP_SYS_ADMIN also stands in for CAP_BPF and
 * CAP_PERFMON (the kernel's bpf_capable()/perfmon_capable()). Naming containers also needs
 * access to the runtimes' sockets (root's or the runtime's group), which is not a capability.
 */
export const COMMAND_CAPABILITIES: Record<'trace sni' | 'trace tls' | 'capture', readonly Capability[]> = {
  // AF_PACKET sockets need CAP_NET_RAW; BPF maps and programs CAP_BPF; tracepoints CAP_PERFMON
  'trace sni': ['CAP_BPF', 'CAP_PERFMON', 'CAP_NET_RAW'],
  // uprobes through perf_event_open were refused with CAP_PERFMON alone (EACCES) and worked
  // with CAP_SYS_ADMIN; tracefs (mode 0700) needs CAP_DAC_READ_SEARCH; other users' processes
  // and containers' libraries (/proc/PID/maps, /proc/PID/root) need ptrace access
  'trace tls': ['CAP_SYS_ADMIN', 'CAP_DAC_READ_SEARCH', 'CAP_SYS_PTRACE'],
  // packets: CAP_NET_RAW alone (classic BPF filter); which process sent them: see CAPTURE_ATTRIBUTION
  capture: ['CAP_NET_RAW'],
};

/** capture's process attribution (the capture_owner object) also needs these; without them it captures unattributed. */
export const CAPTURE_ATTRIBUTION: readonly Capability[] = ['CAP_BPF', 'CAP_PERFMON'];

/** Throws a PermissionError naming exactly what the command lacks here. */
export function requireCapabilities(command: keyof typeof COMMAND_CAPABILITIES): void {
  const need = COMMAND_CAPABILITIES[command];
  const missing = missingCapabilities(need);
  if (missing.length === 0) return;
  throw new PermissionError(`tlscope ${command} needs ${missing.join(', ')}`, undefined, `run as root, or with ${need.join(', ')} (what ${command} needs; \`tlscope doctor\` lists each command's)`);
}

export const gadgetCatalog: GadgetRequirement[] = [
  { gadget: sniDefinition.name, what: sniDefinition.oneLine, requires: sniDefinition.requirements, implemented: true, caps: COMMAND_CAPABILITIES['trace sni'],
    uses: (has) => (has('tp_tcp_sendmsg_locked')
      ? 'owner hook: the tcp_sendmsg_locked tracepoint'
      : 'owner hook: write/writev/sendto/sendmsg/sendmmsg system call tracepoints (no tcp_sendmsg_locked before Linux 6.16; io_uring, sendfile and splice sends are not attributed)') },
  { gadget: 'trace tls: OpenSSL, GnuTLS, node, NSS, rustls', what: 'TLS plaintext through library uprobes', requires: tlsDefinition.requirements, implemented: true, caps: COMMAND_CAPABILITIES['trace tls'] },
  { gadget: 'trace tls: Go crypto/tls', what: 'TLS plaintext of Go programs (uprobes on each RET)', requires: tlsDefinition.requirements, implemented: true, caps: COMMAND_CAPABILITIES['trace tls'] },
  // the ktls probe covers the hooks too: it attaches them on this kernel's tls_sw_* functions
  { gadget: 'trace tls: kTLS', what: 'kernel TLS plaintext (--sources ktls)', requires: [['ringbuf'], ['ktls']], implemented: true, caps: COMMAND_CAPABILITIES['trace tls'],
    uses: (has) => (has('ktls') ? describeKtls(ktlsSupport()) : '') },
  { gadget: captureDefinition.name, what: 'tcpdump-style capture inside a container network namespace', requires: captureDefinition.requirements, implemented: true, caps: COMMAND_CAPABILITIES.capture,
    uses: () => {
      const lacking = missingCapabilities(CAPTURE_ATTRIBUTION);
      return lacking.length === 0 ? '' : `packets without process attribution: that needs ${lacking.join(', ')} too`;
    } },
];
