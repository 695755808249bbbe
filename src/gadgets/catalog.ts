// SPDX-License-Identifier: Apache-2.0
/** What each gadget needs from the kernel, for `tlscope doctor` and for clear refusals. */
import type { FeatureName } from '../ebpf/features.js';
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
}

export const gadgetCatalog: GadgetRequirement[] = [
  { gadget: sniDefinition.name, what: sniDefinition.oneLine, requires: sniDefinition.requirements, implemented: true,
    uses: (has) => (has('tp_tcp_sendmsg_locked')
      ? 'owner hook: the tcp_sendmsg_locked tracepoint'
      : 'owner hook: write/writev/sendto/sendmsg/sendmmsg system call tracepoints (no tcp_sendmsg_locked before Linux 6.16; io_uring, sendfile and splice sends are not attributed)') },
  { gadget: 'trace tls: OpenSSL, GnuTLS, node', what: 'TLS plaintext through library uprobes', requires: tlsDefinition.requirements, implemented: true },
  { gadget: 'trace tls: Go crypto/tls', what: 'TLS plaintext of Go programs (uprobes on each RET)', requires: tlsDefinition.requirements, implemented: true },
  { gadget: 'trace tls: kTLS', what: 'kernel TLS plaintext (tls_sw_sendmsg/tls_sw_recvmsg)', requires: [['ringbuf'], ['ktls'], ['fentry', 'kprobe']], implemented: false },
  { gadget: captureDefinition.name, what: 'tcpdump-style capture inside a container network namespace', requires: captureDefinition.requirements, implemented: true },
];
