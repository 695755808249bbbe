// SPDX-License-Identifier: Apache-2.0
/** `trace tls` declared: parameters, fields, requirements, the --http stage, lifecycle (TlsGadget). */
import type { GadgetDefinition, Stage } from '../definition.js';
import { boolParam, intParam, listParam, ringBytes, ringSizeParam } from '../params.js';
import { hexDump, tlsDataFields, tlsHttpFields, type TraceTlsEvent } from './fields.js';
import { TlsGadget, type TlsEvent } from './gadget.js';
import { TlsHttp, type TlsHttpEvent } from './http.js';
import type { ProbeSource } from './targets.js';

const SOURCE_NAMES: readonly ProbeSource[] = ['openssl', 'gnutls', 'go'];

function describe(g: TlsGadget): string {
  const files = g.attachedFiles();
  if (files.length === 0) return `tracing 0 files: no TLS library or Go program in scope yet; new processes and containers are picked up as they start; ${tuples(g)}`;
  const by = new Map<string, number>();
  for (const f of files) by.set(f.source, (by.get(f.source) ?? 0) + 1);
  return `tracing ${files.length} file${files.length === 1 ? '' : 's'} (${[...by].map(([s, n]) => `${s} ${n}`).join(', ')}); new processes and containers are picked up as they start; ${tuples(g)}`;
}

function tuples(g: TlsGadget): string {
  return g.tupleHooks === 'sock' ? 'sockets from sock_send_length/sock_recv_length' : 'sockets from the fds of read/write/send/recv system calls (kernel before 6.3)';
}

function details(g: TlsGadget): string {
  const s = g.stats();
  const k = g.kernelStats();
  return `${s.bytes} bytes in ${s.events} calls (${s.truncatedCalls} cut by --max-bytes, ${s.incompleteCalls} incomplete); kernel: ${k['calls']} calls with data, ${k['empty']} without, ${k['nested']} nested skipped, ${k['faults']} unreadable chunks; ${s.files} files, ${s.links} probes`;
}

/** --http: pairs HTTP/1.x requests and responses per connection. */
export function httpStage(): Stage<TlsEvent, TlsHttpEvent> {
  const pairing = new TlsHttp();
  return {
    name: 'http',
    process: (batch) => pairing.process(batch),
    details: () => {
      const h = pairing.stats;
      return `HTTP: ${h.exchanges} exchanges, ${h.unmatchedResponses} responses without a request, ${h.notHttpStreams} streams not HTTP/1`;
    },
  };
}

export const tlsDefinition: GadgetDefinition<TraceTlsEvent, TlsEvent> = {
  name: 'trace tls',
  oneLine: 'TLS plaintext of processes, containers and pods (OpenSSL, GnuTLS, node, Go)',
  usage: 'tlscope trace tls [scope] [--http] [--hex] [--max-bytes N] [-o json] [--fields …] [--filter …] [--timeout S]',
  summary: 'Show the plaintext that processes, containers and pods send and receive over TLS, as it\npasses through their TLS library (OpenSSL, GnuTLS, node, Go crypto/tls): no keys, no proxy.',
  about: `How: uprobes on SSL_write/SSL_read/SSL_write_ex/SSL_read_ex (libssl 1.1/3 and binaries
that export them, such as node), gnutls_record_send/recv, and Go's crypto/tls (*Conn).Write
and (*Conn).Read (a uprobe on each RET instruction: Go programs do not survive uretprobes).
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
  params: [
    { name: 'http', type: 'bool', description: 'pair HTTP/1.x requests and responses per connection (method, path, status, latency)' },
    { name: 'hex', type: 'bool', description: 'show the data as a hex dump under each line (with -o json: data in hex)' },
    { name: 'max-bytes', type: 'size', arg: 'N', min: 1, description: 'capture at most N bytes of each call (e.g. 4096, 64k, 4m; default 4m); cut calls say truncated' },
    { name: 'sources', type: 'list', arg: 'LIST', choices: SOURCE_NAMES, choiceNoun: 'TLS stack', description: 'TLS stacks to probe: openssl,gnutls,go (default all)' },
    ringSizeParam(16),
  ],
  fields: (params, view) => (boolParam(params, 'http') ? tlsHttpFields() : tlsDataFields({ json: view?.json === true, hex: boolParam(params, 'hex') })),
  detail(params) {
    if (!boolParam(params, 'hex') || boolParam(params, 'http')) return undefined;
    return (e) => (e.kind === 'data' && e.data.length > 0 ? hexDump(e.data) : undefined);
  },
  requirements: [['ringbuf'], ['uprobe'], ['tp_btf'], ['tracepoint']],
  processEvents: true,
  stages: (params) => (boolParam(params, 'http') ? [httpStage()] : []),
  open(params, ctx) {
    const bytes = ringBytes(params);
    const maxBytes = intParam(params, 'max-bytes');
    const sources = listParam(params, 'sources');
    const pids = ctx.selector.pids;
    const g = TlsGadget.open({
      signal: ctx.signal,
      ...(bytes === undefined ? {} : { ringBytes: bytes }),
      ...(maxBytes === undefined ? {} : { maxBytes }),
      ...(sources === undefined ? {} : { sources: sources as ProbeSource[] }),
      ...(pids === undefined || pids.length === 0 ? {} : { pids }),
    });
    return {
      events: g,
      scope: { kind: 'self', follow: (selector, index, warn, note) => g.followScope(selector, index, warn, note) },
      lost: () => Number(g.stats().lost),
      misses: () => {
        const s = g.stats();
        return s.incompleteCalls > 0 ? { 'incomplete call': s.incompleteCalls } : {};
      },
      startedText: () => describe(g),
      details: () => details(g),
      close: () => g.close(),
    };
  },
};
