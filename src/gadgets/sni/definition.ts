// SPDX-License-Identifier: Apache-2.0
/** `trace sni` declared: parameters, fields, requirements, lifecycle (SniGadget). */
import type { GadgetDefinition } from '../definition.js';
import { ringBytes, ringSizeParam, strParam } from '../params.js';
import { sniFields } from './fields.js';
import { describeOwnerHook, OWNER_HOOKS, SniGadget, type OwnerHook, type SniEvent } from './gadget.js';

export const sniDefinition: GadgetDefinition<SniEvent> = {
  name: 'trace sni',
  oneLine: 'TLS server names asked for, by process, container and pod',
  usage: 'tlscope trace sni [scope] [-o json] [--fields …] [--filter …] [--timeout S]',
  summary: 'Show every TLS server name (SNI) asked for on this host, by process, container and pod,\nas ClientHellos cross the network: no change to the workload, any TLS library.',
  about: `How: a socket filter in each network namespace in scope forwards the TCP segments of
ClientHellos (also when split over several segments); tlscope reassembles and parses them
in user space: every extension, names up to 255 bytes, ALPN, TLS version, IPv4 and IPv6.
The sending thread comes from the tcp_sendmsg_locked tracepoint (Linux >= 6.16; before, from
the write/writev/sendto/sendmsg/sendmmsg system calls), so PID/TID are the thread that sent
the hello; -v says which hook this run uses. A hello seen several times (loopback, veth, bridge) is shown once.
ClientHellos received from peers that are not on this host are shown with DIR "in" and no
process (with --fields direction,src,dst,name); a container or pod filter leaves them out.

Examples:
  tlscope trace sni                               the host and every container
  tlscope trace sni -r docker -c web              one docker container
  tlscope trace sni --k8s-namespace default       every pod of a namespace
  tlscope trace sni -o json | jq .name
  tlscope trace sni --fields comm,pid,src,dst,alpn,tlsversion,name --filter 'name~\\.test$'`,
  params: [
    ringSizeParam(32),
    {
      name: 'owner-hook', type: 'string', arg: 'HOOK', default: 'auto', choices: ['auto', ...OWNER_HOOKS], choiceNoun: 'hook',
      description: 'how the sending process is found: tcp_sendmsg_locked (Linux >= 6.16), syscalls (older kernels), auto (default: the first this kernel has)',
    },
  ],
  fields: () => sniFields(),
  requirements: [['ringbuf'], ['socket_filter'], ['tp_tcp_sendmsg_locked', 'tracepoint']],
  processEvents: true,
  open(params, ctx) {
    const bytes = ringBytes(params);
    const g = SniGadget.open({ signal: ctx.signal, ownerHook: (strParam(params, 'owner-hook') ?? 'auto') as OwnerHook | 'auto', ...(bytes === undefined ? {} : { ringBytes: bytes }) });
    return {
      events: g,
      scope: { kind: 'netns', watcher: g },
      lost: () => Number(g.stats().lost),
      misses: () => {
        const d = g.stats().dropped;
        return Object.fromEntries(Object.entries(d).filter(([, n]) => n > 0).map(([r, n]) => [`hello ${r}`, n]));
      },
      startedText: () => `sending processes from ${describeOwnerHook(g.ownerHook)}`,
      details: () => {
        const s = g.stats();
        const k = g.kernelStats();
        const dropped = Object.entries(s.dropped).filter(([, n]) => n > 0).map(([r, n]) => `${n} ${r}`).join(', ') || 'none';
        return `${s.segments} segments (${k.segmentsForwarded} forwarded by the kernel, ${s.duplicates} duplicate), hellos dropped: ${dropped}, ${k.loadErrors} packet read errors, ${s.decodeErrors} decode errors, ${k.ownersRecorded} owners recorded (${g.ownerHook})`;
      },
      close: () => g.close(),
    };
  },
};
