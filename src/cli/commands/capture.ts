// SPDX-License-Identifier: Apache-2.0
/**
 * `tlscope capture`: flags → a capture session → packet text or pcapng. The gadget
 * (src/gadgets/capture/) finds the namespaces and labels packets; the writers are in src/output/.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { release } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { hasContainerFilter, type ContainerSelector } from '../../containers/selector.js';
import { TlscopeError, UsageError, errorMessage } from '../../errors.js';
import { captureDefinition, compileCaptureQuery, MAX_SNAPLEN, queryReadsOwners, type CapturedPacket } from '../../gadgets/capture/definition.js';
import { packetFields } from '../../gadgets/capture/fields.js';
import { formatCaptureTotals } from '../../output/packet-text.js';
import { PacketTextWriter, PcapngPacketWriter } from '../../output/packet-writers.js';
import { PcapngWriter } from '../../output/pcapng.js';
import { Session, type SessionMessage, type SessionStats } from '../../session/session.js';
import { bool, helpText, int, parse, str, type OptionSpecs, type ParsedValues } from '../args.js';
import type { CommandContext } from '../context.js';
import { paramOptions, paramValuesFrom, scopeOptions, selectorFrom } from '../scope.js';
import { problemError } from '../trace-command.js';
import { startCpuProfile, type CpuProfile } from '../profile.js';

const VERSION = '0.1.0';

const options: OptionSpecs = {
  ...scopeOptions,
  ...paramOptions(captureDefinition.params),
  ascii: { type: 'boolean', short: 'A', description: 'print each packet (minus its link-level header) in ASCII, as tcpdump -A' },
  hex: { type: 'boolean', short: 'X', description: 'print each packet (minus its link-level header) in hex and ASCII, as tcpdump -X' },
  write: { type: 'string', short: 'w', arg: 'FILE', description: 'write the packets to a pcapng file instead of printing them; "-" for standard output' },
  link: { type: 'boolean', short: 'e', description: 'print the link-level header (MAC addresses, ethertype) on each line' },
  'absolute-seq': { type: 'boolean', short: 'S', description: 'print absolute TCP sequence numbers' },
  numeric: { type: 'boolean', short: 'n', description: 'accepted for tcpdump habits: tlscope never resolves names or ports' },
  'all-netns': { type: 'boolean', description: 'every network namespace of the host: its own, every container\'s and every other (ip netns add, unshare -n, CNI), found as they are created; a container\'s traffic then shows twice (in its namespace and on the host\'s veth)' },
  query: { type: 'string', short: 'q', arg: 'CEL', description: 'keep packets for which this CEL expression is true (after the filter), e.g. \'dport == 443 && runtime.containerName == "web"\' (fields below)' },
  timeout: { type: 'string', arg: 'SECONDS', description: 'stop after tracing for this many seconds, counted from the start of tracing or of the wait for -c containers (default: until Ctrl-C)' },
  verbose: { type: 'boolean', short: 'v', description: 'more detail in the summary and on errors; the sending process on each line' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

const fieldList = packetFields().map((f) => `  ${f.name.padEnd(24)}${f.description}`).join('\n');
const about = `${captureDefinition.about}\n\nFields (for --query; proc.netns_id == N is applied before a socket is opened):\n${fieldList}\n`;

export const help = { usage: captureDefinition.usage, summary: captureDefinition.summary, options, about };

function captureSelector(v: ParsedValues): ContainerSelector {
  const s = selectorFrom(v);
  if (bool(v, 'all-netns')) {
    // no scope at all: the session watches the host, every container and every other namespace
    if (hasContainerFilter(s) || (s.pids?.length ?? 0) > 0 || s.host !== undefined) {
      throw new UsageError('--all-netns takes no other scope flag', 'leave out -c/-p/--host/--k8s-*: --all-netns already means every network namespace');
    }
    return s;
  }
  // No target at all: the host's namespace, as tcpdump (not every container on top of it).
  if (!hasContainerFilter(s) && !(s.pids?.length ?? 0) && s.host === undefined) return { ...s, host: true };
  return s;
}

/** Writes every byte of a chunk to a file descriptor (writeSync may write less). */
function writeAll(fd: number, chunk: Uint8Array): void {
  let off = 0;
  while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
}

export async function run(argv: string[], ctx: CommandContext): Promise<number> {
  const { values, positionals } = parse(argv, options, true);
  if (bool(values, 'help')) {
    ctx.out.write(helpText(captureDefinition.usage, captureDefinition.summary, options, about));
    return 0;
  }
  const expression = positionals.join(' ').trim();
  const timeout = int(values, 'timeout', { min: 1 });
  const out = str(values, 'write');
  const verbose = bool(values, 'verbose') || ctx.verbose;
  const snapArg = int(values, 'snaplen', { min: 0, max: MAX_SNAPLEN });
  const snaplen = snapArg === undefined || snapArg === 0 ? MAX_SNAPLEN : snapArg;
  const selector = captureSelector(values);
  // a bad --query is a usage error with its column, before anything needs root
  const queryText = str(values, 'query');
  const query = queryText === undefined ? undefined : compileCaptureQuery(queryText);
  const params = {
    ...paramValuesFrom(captureDefinition.params, values),
    expression,
    ...(queryText === undefined ? {} : { query: queryText }),
    // files: fuller blocks mean fewer wake-ups and no ring space lost to half-empty blocks
    'block-timeout': out === undefined ? 8 : 25,
    // owners name processes in pcapng comments and, with -v, on each line
    // (and a query that names the sending process)
    ...(out === undefined && !verbose && !(query !== undefined && queryReadsOwners(query)) ? { 'no-owners': true } : {}),
  };

  // ---- the output ----
  const abort = new AbortController();
  if (ctx.signal.aborted) abort.abort();
  const onAbort = (): void => abort.abort();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  let fileFd: number | undefined;
  let writeError: unknown;
  let sink: PacketTextWriter | PcapngPacketWriter;
  const section = { application: `tlscope ${VERSION}`, os: `Linux ${release()}` };
  if (out === undefined) {
    sink = new PacketTextWriter(ctx.out, { link: bool(values, 'link'), absoluteSeq: bool(values, 'absolute-seq'), owners: verbose, ...(bool(values, 'hex') ? { dump: 'hex' as const } : bool(values, 'ascii') ? { dump: 'ascii' as const } : {}) });
  } else if (out === '-') {
    const stdout = ctx.out as unknown as { write(b: Uint8Array): unknown };
    sink = new PcapngPacketWriter(new PcapngWriter((chunk) => stdout.write(chunk), section), { snaplen, filter: expression });
  } else {
    Session.check(captureDefinition, { params, scope: selector }); // usage errors and root before the file is made
    try {
      fileFd = openSync(out, 'w', 0o644);
    } catch (e) {
      throw new TlscopeError('ERR_OUTPUT', `cannot write ${out}: ${errorMessage(e)}`);
    }
    const f = fileFd;
    sink = new PcapngPacketWriter(new PcapngWriter((chunk) => {
      if (writeError !== undefined) return;
      try {
        writeAll(f, chunk);
      } catch (e) {
        // a full disk, say: stop capturing and say so at the end (never crash mid-drain)
        writeError = e;
        onAbort();
      }
    }, section, { reuseBuffer: true, bufferSize: 1 << 20 }), { snaplen, filter: expression });
  }

  let session: Session<CapturedPacket> | undefined;
  let profile: CpuProfile | undefined;
  // -v: how long the event loop was held at most (the ring must absorb that much traffic)
  const loopDelay = verbose ? monitorEventLoopDelay({ resolution: 1 }) : undefined;
  try {
    session = await Session.start(captureDefinition, {
      params,
      scope: selector,
      ...(timeout === undefined ? {} : { timeoutMs: timeout * 1000 }),
      signal: abort.signal,
      verbose,
      sink,
    });
    loopDelay?.enable(); // from here on: while capturing (loading BPF holds the loop too)
    profile = await startCpuProfile();
    let final: SessionStats | undefined;
    for await (const m of session as AsyncIterable<SessionMessage<CapturedPacket>>) {
      if (m.type === 'warning') ctx.err.write(`tlscope: warning: ${m.text}\n`);
      else if (m.type === 'info') ctx.err.write(`tlscope: ${m.text}\n`);
      else if (m.type === 'stats' && m.final) final = m.stats;
    }
    const st = final ?? (await session.stop());
    const k = session.gadgetCounters();
    ctx.err.write(formatCaptureTotals({ captured: k['captured'] ?? 0, received: k['received'] ?? 0, dropped: k['dropped'] ?? 0 }));
    if (query !== undefined) {
      const n = k['notMatchingQuery'] ?? 0;
      const errors = k['queryErrors'] ?? 0;
      ctx.err.write(`${n} packet${n === 1 ? '' : 's'} not matching the query${errors > 0 ? ` (${errors} could not be evaluated)` : ''}\n`);
    }
    if (verbose) {
      ctx.err.write(`tlscope: ${session.details() ?? ''}`);
      if (loopDelay !== undefined) ctx.err.write(`; event loop held up to ${(loopDelay.max / 1e6).toFixed(1)} ms (p99 ${(loopDelay.percentile(99) / 1e6).toFixed(1)} ms)`);
      ctx.err.write('\n');
    }
    if (writeError !== undefined) throw new TlscopeError('ERR_OUTPUT', `writing ${out}: ${errorMessage(writeError)}`, { hint: 'the capture stopped there; the file holds what was written before' });
    const err = problemError(st);
    if (err !== undefined) throw err;
    return 0;
  } finally {
    loopDelay?.disable();
    ctx.signal.removeEventListener('abort', onAbort);
    await session?.stop();
    await profile?.stop();
    if (fileFd !== undefined) closeSync(fileFd);
  }
}
