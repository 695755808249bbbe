// SPDX-License-Identifier: Apache-2.0
/** `tlscope trace sni` */
import { SniGadget, describeOwnerHook, OWNER_HOOKS, type OwnerHook, type SniEvent } from '../../gadgets/sni/gadget.js';
import { sniFields } from '../../gadgets/sni/fields.js';
import { UsageError } from '../../errors.js';
import { int, str } from '../args.js';
import type { CommandContext } from '../context.js';
import { runTrace, type TraceSpec } from '../trace-runner.js';

const spec: TraceSpec<SniEvent> = {
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
  fields: sniFields(),
  extraOptions: {
    'ring-size': { type: 'string', arg: 'MIB', description: 'ring buffer size in MiB, a power of two (default 32)' },
    'owner-hook': { type: 'string', arg: 'HOOK', description: 'how the sending process is found: tcp_sendmsg_locked (Linux >= 6.16), syscalls (older kernels), auto (default: the first this kernel has)' },
  },
  open(values, signal) {
    const mib = int(values, 'ring-size', { min: 1, max: 1024 });
    if (mib !== undefined && (mib & (mib - 1)) !== 0) throw new UsageError(`--ring-size wants a power of two, got ${mib}`);
    const hook = str(values, 'owner-hook') ?? 'auto';
    if (hook !== 'auto' && !(OWNER_HOOKS as readonly string[]).includes(hook)) throw new UsageError(`--owner-hook: unknown hook "${hook}"`, `use auto, ${OWNER_HOOKS.join(', ')}`);
    const g = SniGadget.open({ signal, ownerHook: hook as OwnerHook | 'auto', ...(mib === undefined ? {} : { ringBytes: mib << 20 }) });
    return Object.assign(g, {
      startedText: () => `sending processes from ${describeOwnerHook(g.ownerHook)}`,
      details: () => {
        const s = g.stats();
        const k = g.kernelStats();
        const dropped = Object.entries(s.dropped).filter(([, n]) => n > 0).map(([r, n]) => `${n} ${r}`).join(', ') || 'none';
        return `${s.segments} segments (${k.segmentsForwarded} forwarded by the kernel, ${s.duplicates} duplicate), hellos dropped: ${dropped}, ${k.loadErrors} packet read errors, ${s.decodeErrors} decode errors, ${k.ownersRecorded} owners recorded (${g.ownerHook})`;
      },
    });
  },
};

export const help = spec;

export function run(argv: string[], ctx: CommandContext): Promise<number> {
  return runTrace(spec, argv, ctx);
}
