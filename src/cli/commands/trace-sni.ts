// SPDX-License-Identifier: Apache-2.0
/** `tlscope trace sni` */
import { SniGadget, type SniEvent } from '../../gadgets/sni/gadget.js';
import { sniFields } from '../../gadgets/sni/fields.js';
import { UsageError } from '../../errors.js';
import { int } from '../args.js';
import type { CommandContext } from '../context.js';
import { runTrace, type TraceSpec } from '../trace-runner.js';

const spec: TraceSpec<SniEvent> = {
  usage: 'tlscope trace sni [scope] [-o json] [--fields …] [--filter …] [--timeout S]',
  summary: 'Show every TLS server name (SNI) asked for on this host, by process, container and pod,\nas ClientHellos cross the network: no change to the workload, any TLS library.',
  about: `How: a socket filter in each network namespace in scope forwards the TCP segments of
ClientHellos (also when split over several segments); tlscope reassembles and parses them
in user space: every extension, names up to 255 bytes, ALPN, TLS version, IPv4 and IPv6.
The sending thread comes from the tcp_sendmsg_locked tracepoint, so PID/TID are the thread
that sent the hello. A hello seen several times (loopback, veth, bridge) is shown once.
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
  },
  open(values, signal) {
    const mib = int(values, 'ring-size', { min: 1, max: 1024 });
    if (mib !== undefined && (mib & (mib - 1)) !== 0) throw new UsageError(`--ring-size wants a power of two, got ${mib}`);
    const g = SniGadget.open({ signal, ...(mib === undefined ? {} : { ringBytes: mib << 20 }) });
    return Object.assign(g, {
      details: () => {
        const s = g.stats();
        const k = g.kernelStats();
        const dropped = Object.entries(s.dropped).filter(([, n]) => n > 0).map(([r, n]) => `${n} ${r}`).join(', ') || 'none';
        return `${s.segments} segments (${k.segmentsForwarded} forwarded by the kernel, ${s.duplicates} duplicate), hellos dropped: ${dropped}, ${k.loadErrors} packet read errors, ${s.decodeErrors} decode errors`;
      },
    });
  },
};

export const help = spec;

export function run(argv: string[], ctx: CommandContext): Promise<number> {
  return runTrace(spec, argv, ctx);
}
