// SPDX-License-Identifier: Apache-2.0
/** `trace tls` declared: parameters, fields, requirements, the --http stage, lifecycle (TlsGadget). */
import type { GadgetContext, GadgetDefinition, GadgetInstance, ParamValues, Stage } from '../definition.js';
import { boolParam, intParam, listParam, ringBytes, ringSizeParam } from '../params.js';
import { hexDump, tlsDataFields, tlsHttpFields, type TraceTlsEvent } from './fields.js';
import { TlsGadget, type TlsEvent, type TlsOptions, type TlsSourceName } from './gadget.js';
import { hasContainerFilter, includesHost } from '../../containers/selector.js';
import { ExecGate } from '../../containers/exec-gate.js';
import { errorMessage } from '../../errors.js';
import { TlsHttp, type TlsHttpEvent } from './http.js';
import type { ProbeSource } from './targets.js';
import { UsageError } from '../../errors.js';
import { Redactor } from '../../protocols/redact.js';
import { RawRedaction, redactionSummary } from './raw-redact.js';
import { loadProtoDir, type DescribeMessage } from './proto-schema.js';

const SOURCE_NAMES: readonly TlsSourceName[] = ['openssl', 'gnutls', 'go', 'rustls', 'nss', 'ktls'];

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
  const kl = g.keylog?.stats;
  const keylog = kl === undefined ? '' : `; key log: ${kl.lines} lines from ${kl.files} Go programs`;
  return `${s.bytes} bytes in ${s.events} calls (${s.truncatedCalls} cut by --max-bytes, ${s.incompleteCalls} incomplete); kernel: ${k['calls']} calls with data, ${k['empty']} without, ${k['nested']} nested skipped, ${k['faults']} unreadable chunks, ${k['nssOther']} NSPR calls on descriptors without SSL skipped; ${s.files} files, ${s.links} probes${ktls}${keylog}`;
}

/**
 * --http: pairs HTTP/1.x and HTTP/2 (gRPC) requests and responses per connection. With
 * `keepCalls` (trace tls -w) each exchange also carries the raw calls it was read from, masked
 * as the redact stage masks raw data when a redactor is given: the pairing itself reads the
 * unmasked bytes (an HPACK block masked in place is still decodable, but the pairing masks the
 * decoded headers anyway), so the calls are masked on a copy.
 */
export function httpStage(redactor?: Redactor, describeMessage?: DescribeMessage, keepCalls = false): Stage<TlsEvent, TlsHttpEvent> {
  const raw = keepCalls && redactor !== undefined ? new RawRedaction(redactor) : undefined;
  const pairing = new TlsHttp({
    ...(redactor === undefined ? {} : { redactor }),
    ...(describeMessage === undefined ? {} : { describeMessage }),
    ...(keepCalls ? { keepCalls: { view: (e: TlsEvent) => (raw === undefined ? e : raw.process([e])[0] ?? e) } } : {}),
  });
  return {
    name: 'http',
    process: (batch) => pairing.process(batch),
    // the trace ends: what is still open (close-delimited or cut-off responses, open streams)
    flush: () => pairing.flush(),
    details: () => {
      const h = pairing.stats;
      return `HTTP: ${h.exchanges} exchanges (${h.http2Exchanges} HTTP/2, ${h.incomplete} not complete), ${h.unmatchedResponses} responses without a request, ${h.notHttpStreams} streams neither HTTP/1 nor HTTP/2, ${h.reusedSessions} TLS sessions reused by a new connection${keepCalls ? `, ${h.callsNotKept} calls not kept for -w (a connection with more than 4096 calls and no exchange)` : ''}`;
    },
    summary: () => {
      const n = pairing.stats.maskedHeaders;
      const rawText = raw === undefined ? undefined : redactionSummary(raw);
      const parts = [
        ...(n > 0 ? [`${n} header value${n === 1 ? '' : 's'} masked in the exchanges`] : []),
        ...(rawText === undefined ? [] : [`in the raw calls kept for -w (of every connection, before --query and --filter choose what is written): ${rawText.replace(/^redaction: /, '')}`]),
      ];
      return parts.length === 0 ? undefined : `redaction: ${parts.join('; ')}`;
    },
  };
}

/** --redact without --http: masks credentials in the raw data (HTTP/1 header lines, HTTP/2 header blocks). */
function redactStage(redactor: Redactor): Stage<TlsEvent, TlsEvent> {
  const raw = new RawRedaction(redactor);
  return {
    name: 'redact',
    process: (batch) => raw.process(batch),
    details: () => {
      const h = raw.h2;
      return `redaction: ${raw.h1.masked} HTTP/1 header values masked, ${h.masked} HTTP/2 header values masked, ${h.splitBlocks} header blocks split across calls (their earlier part masked whole), ${h.unframedBytes} HTTP/2 bytes that could not be framed masked whole`;
    },
    summary: () => redactionSummary(raw),
  };
}

/** The masking --redact asks for; --no-redact wins (the agent and the UI set --redact by default). */
export function redactorOf(params: ParamValues): Redactor | undefined {
  if (!boolParam(params, 'redact') || boolParam(params, 'no-redact')) return undefined;
  return new Redactor({ headers: [...(listParam(params, 'redact-headers') ?? [])], jsonKeys: [...(listParam(params, 'redact-json') ?? [])] });
}

export const tlsDefinition: GadgetDefinition<TraceTlsEvent, TlsEvent> = {
  name: 'trace tls',
  oneLine: 'TLS plaintext of processes, containers and pods (OpenSSL, GnuTLS, NSS, node, Go, rustls)',
  usage: 'tlscope trace tls [scope] [--http] [--hex] [--max-bytes N] [-o json] [--fields …] [--filter …] [--timeout S]',
  summary: 'Show the plaintext that processes, containers and pods send and receive over TLS, as it\npasses through their TLS library (OpenSSL, GnuTLS, NSS, node, Go crypto/tls,\nrustls, kTLS): no keys, no proxy.',
  about: `How: uprobes on SSL_write/SSL_read/SSL_write_ex/SSL_read_ex (libssl 1.1/3 and binaries
that export them, such as node), gnutls_record_send/recv, NSS through NSPR's PR_Write/
PR_Read/PR_Send/PR_Recv (only on descriptors that carry NSS's SSL layer), rustls' Writer/
Reader, and Go's crypto/tls (*Conn).Write and (*Conn).Read (a uprobe on each RET
instruction: Go programs do not survive uretprobes);
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
  params: [
    { name: 'http', type: 'bool', description: 'pair requests and responses per connection: HTTP/1.x, HTTP/2 (by its preface) and gRPC on it (method, path, status, latency, grpc.service/method/status)' },
    { name: 'redact', type: 'bool', description: 'mask credentials before output: Authorization, Proxy-Authorization, Cookie, Set-Cookie, gRPC *-bin metadata, and --redact-headers/--redact-json names; in raw data too: HTTP/1 header lines, and HTTP/2 header blocks through each connection\'s HPACK table (values overwritten in place)' },
    { name: 'no-exec-gate', type: 'bool', description: 'do not hold the first exec of each program until it is probed (fanotify; at most 2 s per new file): a program run for the first time may then make its first TLS calls before its probes are on' },
    { name: 'no-redact', type: 'bool', description: 'do not mask credentials (tlscope agent and tlscope ui mask them by default: this turns that off for the session)' },
    { name: 'redact-headers', type: 'list', arg: 'LIST', description: 'more header names to mask with --redact' },
    { name: 'redact-json', type: 'list', arg: 'LIST', description: 'JSON body keys whose values --redact masks' },
    { name: 'write', type: 'string', short: 'w', arg: 'FILE', description: 'also write the calls shown to a pcapng file, as TCP streams of the real 4-tuples (Wireshark dissects HTTP/1, HTTP/2, gRPC with no keys): only what the scope, --filter/--query keep, masked by --redact; with --http the shown exchanges\' raw calls; one interface per container (pod container) or host process, each packet\'s comment names pid, tid, comm, function and container',
      check: (v) => { if (v === '-') throw new UsageError('trace tls -w - is not supported: give a file name (standard output carries the events)'); } },
    { name: 'hex', type: 'bool', description: 'show the data as a hex dump under each line (with -o json: data in hex)' },
    { name: 'max-bytes', type: 'size', arg: 'N', min: 1, description: 'capture at most N bytes of each call (e.g. 4096, 64k, 4m; default 4m); cut calls say truncated' },
    { name: 'sources', type: 'list', arg: 'LIST', choices: SOURCE_NAMES, choiceNoun: 'TLS stack', description: 'TLS stacks to probe: openssl,gnutls,go,rustls,nss,ktls (default all; ktls where the kernel has kTLS, see doctor)' },
    ringSizeParam(16),
  ],
  fields: (params, view) => (boolParam(params, 'http') ? tlsHttpFields() : tlsDataFields({ json: view?.json === true, hex: boolParam(params, 'hex') })),
  detail(params) {
    if (!boolParam(params, 'hex') || boolParam(params, 'http')) return undefined;
    return (e) => (e.kind === 'data' && e.data.length > 0 ? hexDump(e.data) : undefined);
  },
  requirements: [['ringbuf'], ['uprobe'], ['tp_btf'], ['tracepoint']],
  processEvents: true,
  stages: (params) => tlsStages(params),
  open: (params, ctx) => openTls(params, ctx),
};


/**
 * trace tls's stages: --http's pairing, or --redact's raw masking. `keepCalls` (the local CLI's
 * -w, which writes a pcapng from the shown events) makes --http exchanges carry their raw
 * calls; only the front end that writes the file asks for it (an agent would ship them for
 * nothing).
 */
export function tlsStages(params: ParamValues, opts: { keepCalls?: boolean } = {}): Stage<any, any>[] {
  const redactor = redactorOf(params);
  const stages: Stage<any, any>[] = [];
  // --proto DIR (a front-end flag: src/cli/commands/trace-tls.ts) names gRPC messages
  const protoDir = params['proto'];
  if (typeof protoDir === 'string' && !boolParam(params, 'http')) throw new UsageError('--proto names gRPC messages in --http exchanges: add --http');
  if (boolParam(params, 'http')) stages.push(httpStage(redactor, typeof protoDir === 'string' ? loadProtoDir(protoDir).describe : undefined, opts.keepCalls === true));
  else if (redactor !== undefined) stages.push(redactStage(redactor));
  return stages;
}

/** Opens trace tls; the front end adds what only it may ask for (--keylog's line sink). */
export function openTls(params: ParamValues, ctx: GadgetContext<TlsEvent>, extra: Pick<TlsOptions, 'keylog'> = {}): GadgetInstance<TlsEvent> {
  const bytes = ringBytes(params);
  const maxBytes = intParam(params, 'max-bytes');
  const sources = listParam(params, 'sources');
  const pids = ctx.selector.pids;
  const g = TlsGadget.open({
    signal: ctx.signal,
    ...(bytes === undefined ? {} : { ringBytes: bytes }),
    ...(maxBytes === undefined ? {} : { maxBytes }),
    ...(sources === undefined ? {} : { sources: sources as TlsSourceName[] }),
    ...(pids === undefined || pids.length === 0 ? {} : { pids }),
    ...(hasContainerFilter(ctx.selector) ? { ktlsMntnsFilter: true } : {}),
    ...extra,
  });
  const gate = pids === undefined || pids.length === 0 ? startExecGate(g, ctx, boolParam(params, 'no-exec-gate')) : undefined;
  return {
    events: g,
    scope: { kind: 'self', follow: (selector, index, warn, note) => g.followScope(selector, index, warn, note) },
    lost: () => Number(g.stats().lost + (g.keylog?.lost() ?? 0n)),
    misses: () => {
      const s = g.stats();
      const m: Record<string, number> = s.incompleteCalls > 0 ? { 'incomplete call': s.incompleteCalls } : {};
      const busy = Number(g.kernelStats()['nssBusy'] ?? 0n);
      if (busy > 0) m[`NSS call${busy === 1 ? '' : 's'} missed (the SSL layer of the descriptor could not be confirmed: the process's memory map was busy)`] = busy;
      const gs = gate?.gate.stats();
      if (gs !== undefined && gs.expired > 0) m[`exec${gs.expired === 1 ? '' : 's'} let go at the exec gate's ${gate!.gate.deadlineMs / 1000} s deadline (late attach: the first TLS calls may be missing)`] = gs.expired;
      const k = g.keylog?.stats;
      if (k !== undefined) {
        for (const [why, n] of Object.entries(k.invalid)) m[`key log record not written (${why})`] = n;
        if (k.filesWithout > 0) m['Go program without writeKeyLog (secrets not logged)'] = k.filesWithout;
      }
      return m;
    },
    startedText: () => describe(g),
    details: () => `${details(g)}${gate === undefined ? '' : `; ${gateDetails(gate.gate)}`}`,
    close: async () => {
      await gate?.gate.close();
      await g.close();
    },
  };
}

function gateDetails(gate: ExecGate): string {
  const s = gate.stats();
  const passed = Object.entries(s.passed).map(([why, n]) => `${n} ${why}`).join(', ');
  return `exec gate: ${s.held} execs of new files held (${s.released} probed in time, ${s.expired} at the deadline)${passed === '' ? '' : `, let go at once: ${passed}`}`;
}

/**
 * The exec gate (src/containers/exec-gate.ts) for host processes: a program never run before
 * is probed before its first instruction. Said at start-up whether it is on, and why not.
 */
function startExecGate(g: TlsGadget, ctx: GadgetContext<TlsEvent>, off: boolean): { gate: ExecGate } | undefined {
  if (!includesHost(ctx.selector)) return undefined;
  if (off) {
    ctx.info('exec-gate', 'exec gate: off (--no-exec-gate): a program run for the first time may make its first TLS calls before it is probed');
    return undefined;
  }
  const gate = new ExecGate({ onExec: (file, name, pid) => g.probeBeforeExec(file, name, pid), onNote: (m) => ctx.note(m) });
  gate.start().then(
    () => ctx.info('exec-gate', `exec gate: on (fanotify FAN_OPEN_EXEC_PERM on ${gate.mounts.length} mount${gate.mounts.length === 1 ? '' : 's'}): a program's first exec waits up to ${gate.deadlineMs / 1000} s for its probes`),
    (e: unknown) => {
      void gate.close();
      ctx.info('exec-gate', `exec gate: off (${errorMessage(e)}): a program run for the first time may make its first TLS calls before it is probed`);
    },
  );
  return { gate };
}
