// SPDX-License-Identifier: Apache-2.0
/** `tlscope trace tls` */
import { UsageError } from '../../errors.js';
import { hexDump, tlsDataFields, tlsHttpFields, type TraceTlsEvent } from '../../gadgets/tls/fields.js';
import { TlsGadget, type TlsEvent } from '../../gadgets/tls/gadget.js';
import { TlsHttp } from '../../gadgets/tls/http.js';
import type { TlsSourceName } from '../../gadgets/tls/gadget.js';
import { hasContainerFilter } from '../../containers/selector.js';
import { bool, int, list, str, type ParsedValues } from '../args.js';
import type { CommandContext } from '../context.js';
import { runTrace, selectorFrom, type TraceGadget, type TraceSpec } from '../trace-runner.js';

/** "4096", "64k", "4m" → bytes. */
export function parseSize(flag: string, s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const m = /^(\d+)\s*([kKmM]?)(i?[bB])?$/.exec(s.trim());
  if (m === null) throw new UsageError(`--${flag} wants a size such as 4096, 64k or 4m, got "${s}"`);
  const n = Number(m[1]) * (m[2] === '' ? 1 : /k/i.test(m[2] ?? '') ? 1024 : 1024 * 1024);
  if (!Number.isSafeInteger(n) || n > 0xffffffff) throw new UsageError(`--${flag} ${s} is too large`);
  return n;
}

const SOURCE_NAMES: readonly TlsSourceName[] = ['openssl', 'gnutls', 'go', 'ktls'];

function describe(g: TlsGadget): string {
  const files = g.attachedFiles();
  if (files.length === 0) return `tracing 0 files: no TLS library or Go program in scope yet; new processes and containers are picked up as they start; ${tuples(g)}${kernelTls(g)}`;
  const by = new Map<string, number>();
  for (const f of files) by.set(f.source, (by.get(f.source) ?? 0) + 1);
  return `tracing ${files.length} file${files.length === 1 ? '' : 's'} (${[...by].map(([s, n]) => `${s} ${n}`).join(', ')}); new processes and containers are picked up as they start; ${tuples(g)}${kernelTls(g)}`;
}

function kernelTls(g: TlsGadget): string {
  if (g.ktls !== undefined) return `; kTLS: ${g.ktls.hooks === 'fentry' ? 'fentry/fexit' : 'kprobes'} on ${g.ktls.functions.join(', ')}`;
  return g.ktlsOff === undefined ? '' : `; kTLS: off (${g.ktlsOff})`;
}

function tuples(g: TlsGadget): string {
  return g.tupleHooks === 'sock' ? 'sockets from sock_send_length/sock_recv_length' : 'sockets from the fds of read/write/send/recv system calls (kernel before 6.3)';
}

function details(g: TlsGadget): string {
  const s = g.stats();
  const k = g.kernelStats();
  const kt = g.ktls?.kernelStats();
  const ktls = kt === undefined ? '' : `; kTLS: ${kt.calls} calls with data, ${kt.shared} inside library calls (shown as <library>+ktls), ${kt.control} control records skipped, ${kt.peek} MSG_PEEK reads skipped, ${kt.filtered} filtered in the kernel, ${kt.faults} unreadable, ${kt.unknownIter} of unread iterator types`;
  return `${s.bytes} bytes in ${s.events} calls (${s.truncatedCalls} cut by --max-bytes, ${s.incompleteCalls} incomplete); kernel: ${k['calls']} calls with data, ${k['empty']} without, ${k['nested']} nested skipped, ${k['faults']} unreadable chunks; ${s.files} files, ${s.links} probes${ktls}`;
}

const spec: TraceSpec<TraceTlsEvent> = {
  usage: 'tlscope trace tls [scope] [--http] [--hex] [--max-bytes N] [-o json] [--fields …] [--filter …] [--timeout S]',
  summary: 'Show the plaintext that processes, containers and pods send and receive over TLS, as it\npasses through their TLS library (OpenSSL, GnuTLS, node, Go crypto/tls): no keys, no proxy.',
  about: `How: uprobes on SSL_write/SSL_read/SSL_write_ex/SSL_read_ex (libssl 1.1/3 and binaries
that export them, such as node), gnutls_record_send/recv, and Go's crypto/tls (*Conn).Write
and (*Conn).Read (a uprobe on each RET instruction: Go programs do not survive uretprobes);
kernel TLS (kTLS) sockets at tls_sw_sendmsg/tls_sw_sendpage/tls_sw_recvmsg/tls_sw_splice_read
(fentry/fexit, or kprobes; source "ktls", sendfile included) where the kernel has kTLS. A
library call whose bytes also pass kTLS shows once, as source "openssl+ktls".
Probes go on the files the processes in scope actually map (containers' own copies too), and
new processes and containers are picked up as they start. Only calls that moved bytes show.
SRC and DST follow the bytes: local→remote for writes, remote→local for reads. The socket is
the one the thread used during the call; for libraries that do their socket I/O elsewhere
(node) it is inferred from the thread's latest socket I/O (field tupleSource says which).
-o json: data is UTF-8 text when the bytes are valid UTF-8 (dataEncoding "utf8"), else
base64 ("base64"); with --hex always hex ("hex").

Examples:
  tlscope trace tls                                    every process and container
  tlscope trace tls -c web --http                      HTTP requests and responses of one container
  tlscope trace tls -p 1234 --hex                      one process, with hex dumps
  tlscope trace tls -o json | jq -r 'select(.direction=="read") | .data'
  tlscope trace tls --fields comm,pid,direction,len,source,function,src,dst --filter 'proc.comm==curl'`,
  fields: (values: ParsedValues) => (bool(values, 'http') ? tlsHttpFields() : tlsDataFields({ json: (str(values, 'output') ?? 'columns') !== 'columns', hex: bool(values, 'hex') })),
  extraOptions: {
    http: { type: 'boolean', description: 'pair HTTP/1.x requests and responses per connection (method, path, status, latency)' },
    hex: { type: 'boolean', description: 'show the data as a hex dump under each line (with -o json: data in hex)' },
    'max-bytes': { type: 'string', arg: 'N', description: 'capture at most N bytes of each call (e.g. 4096, 64k, 4m; default 4m); cut calls say truncated' },
    sources: { type: 'string', arg: 'LIST', description: 'TLS stacks to probe: openssl,gnutls,go,ktls (default all; ktls where the kernel has kTLS, see doctor)' },
    'ring-size': { type: 'string', arg: 'MIB', description: 'ring buffer size in MiB, a power of two (default 16)' },
  },
  detail(values) {
    if (!bool(values, 'hex') || bool(values, 'http')) return undefined;
    return (e) => (e.kind === 'data' && e.data.length > 0 ? hexDump(e.data) : undefined);
  },
  open(values, signal) {
    const mib = int(values, 'ring-size', { min: 1, max: 1024 });
    if (mib !== undefined && (mib & (mib - 1)) !== 0) throw new UsageError(`--ring-size wants a power of two, got ${mib}`);
    const maxBytes = parseSize('max-bytes', str(values, 'max-bytes'));
    const sources = list(values, 'sources');
    for (const s of sources ?? []) {
      if (!(SOURCE_NAMES as readonly string[]).includes(s)) throw new UsageError(`--sources: unknown TLS stack "${s}"`, `use ${SOURCE_NAMES.join(', ')}`);
    }
    const pids = list(values, 'pid')?.map(Number).filter((n) => Number.isInteger(n) && n > 0);
    const g = TlsGadget.open({
      signal,
      ...(mib === undefined ? {} : { ringBytes: mib << 20 }),
      ...(maxBytes === undefined ? {} : { maxBytes }),
      ...(sources === undefined ? {} : { sources: sources as TlsSourceName[] }),
      ...(pids === undefined || pids.length === 0 ? {} : { pids }),
      ...(hasContainerFilter(selectorFrom(values)) ? { ktlsMntnsFilter: true } : {}),
    });
    if (!bool(values, 'http')) {
      return Object.assign(g as TlsGadget & AsyncIterable<TraceTlsEvent[]>, { details: () => details(g), startedText: () => describe(g) });
    }
    const pairing = new TlsHttp();
    let exchanges = 0;
    const wrapped: TraceGadget<TraceTlsEvent> = {
      async *[Symbol.asyncIterator]() {
        for await (const batch of g as AsyncIterable<TlsEvent[]>) {
          const out = pairing.process(batch);
          exchanges += out.length;
          if (out.length > 0) yield out;
        }
      },
      stats: () => ({ events: exchanges, lost: g.stats().lost }),
      details: () => {
        const h = pairing.stats;
        return `${details(g)}; HTTP: ${h.exchanges} exchanges, ${h.unmatchedResponses} responses without a request, ${h.notHttpStreams} streams not HTTP/1`;
      },
      startedText: () => describe(g),
      followScope: (selector, index, warn, note) => g.followScope(selector, index, warn, note),
      close: () => g.close(),
    };
    return wrapped;
  },
};

export const help = spec;

export function run(argv: string[], ctx: CommandContext): Promise<number> {
  return runTrace(spec, argv, ctx);
}
