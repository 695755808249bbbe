// SPDX-License-Identifier: Apache-2.0
/** What each gadget needs from the kernel, for `tlscope doctor` and for clear refusals. */
import type { FeatureName } from '../ebpf/features.js';
import { describeKtls, ktlsSupport } from '../ebpf/ktls.js';

export interface GadgetRequirement {
  gadget: string;
  what: string;
  /** Every group must have at least one supported feature. */
  requires: FeatureName[][];
  /** false while the gadget is not part of this build yet. */
  implemented: boolean;
  /** Which of its alternatives the gadget will use here, given what the probes found (doctor shows it). */
  uses?: (supported: (f: FeatureName) => boolean) => string;
}

export const gadgetCatalog: GadgetRequirement[] = [
  { gadget: 'trace sni', what: 'TLS server names asked for, by process, container and pod', requires: [['ringbuf'], ['socket_filter'], ['tp_tcp_sendmsg_locked', 'tracepoint']], implemented: true,
    uses: (has) => (has('tp_tcp_sendmsg_locked')
      ? 'owner hook: the tcp_sendmsg_locked tracepoint'
      : 'owner hook: write/writev/sendto/sendmsg/sendmmsg system call tracepoints (no tcp_sendmsg_locked before Linux 6.16; io_uring, sendfile and splice sends are not attributed)') },
  { gadget: 'trace tls: OpenSSL, GnuTLS, node', what: 'TLS plaintext through library uprobes', requires: [['ringbuf'], ['uprobe'], ['tp_btf'], ['tracepoint']], implemented: true },
  { gadget: 'trace tls: Go crypto/tls', what: 'TLS plaintext of Go programs (uprobes on each RET)', requires: [['ringbuf'], ['uprobe'], ['tp_btf'], ['tracepoint']], implemented: true },
  // the ktls probe covers the hooks too: it attaches them on this kernel's tls_sw_* functions
  { gadget: 'trace tls: kTLS', what: 'kernel TLS plaintext (--sources ktls)', requires: [['ringbuf'], ['ktls']], implemented: true,
    uses: (has) => (has('ktls') ? describeKtls(ktlsSupport()) : '') },
  { gadget: 'capture', what: 'tcpdump-style capture inside a container network namespace', requires: [['socket_filter']], implemented: true },
];
