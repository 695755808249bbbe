// SPDX-License-Identifier: Apache-2.0
/**
 * `tlscope capture`: tcpdump inside the network namespace of containers, pods or processes,
 * chosen by name, with tcpdump's filter language, -A/-X, and -w to pcapng with one interface
 * per (namespace, interface) named after its container and a comment per packet naming the
 * process that sent it.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { release } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { ContainerIndex } from '../../containers/index.js';
import { hasContainerFilter, type ContainerSelector } from '../../containers/selector.js';
import { compileFilter, linkTypeOfHatype, PACKET_BROADCAST, PACKET_HOST, PACKET_MULTICAST, PACKET_OTHERHOST, PACKET_OUTGOING, type RingPacket } from '../../ebpf/capture.js';
import { requireCapabilities } from '../../gadgets/catalog.js';
import { c } from '../../ebpf/native.js';
import { PermissionError, TlscopeError, errorMessage } from '../../errors.js';
import { dissect, FlowKeyReader } from '../../gadgets/capture/dissect.js';
import { CaptureGadget, type CaptureTarget, type PacketHandler } from '../../gadgets/capture/gadget.js';
import { FlowOwners, type FlowOwner } from '../../gadgets/capture/owners.js';
import { labelFor, type NamespaceLabel } from '../../gadgets/capture/labels.js';
import { NetnsScope } from '../../gadgets/netns-scope.js';
import { namespaceInode } from '../../proc/namespaces.js';
import { processComm } from '../../proc/process.js';
import { asciiDump, directionWord, formatCaptureTotals, hexAsciiDump, packetSummary, TcpSequences, TimeFormatter } from '../../output/packet-text.js';
import { EPB_BROADCAST, EPB_INBOUND, EPB_MULTICAST, EPB_OUTBOUND, EPB_PROMISCUOUS, EPB_UNICAST, PcapngWriter } from '../../output/pcapng.js';
import { bool, helpText, int, list, parse, str, type OptionSpecs, type ParsedValues } from '../args.js';
import type { CommandContext } from '../context.js';
import { scopeOptions, selectorFrom } from '../trace-runner.js';

const VERSION = '0.1.0';
const MAX_SNAPLEN = 262144;

const options: OptionSpecs = {
  ...scopeOptions,
  interface: { type: 'string', short: 'i', arg: 'IFACE', description: 'only this interface, by its name inside each target (default: every interface; "any" too)' },
  snaplen: { type: 'string', short: 's', arg: 'SNAPLEN', description: `bytes kept of each packet (default and 0: ${MAX_SNAPLEN})` },
  ascii: { type: 'boolean', short: 'A', description: 'print each packet (minus its link-level header) in ASCII, as tcpdump -A' },
  hex: { type: 'boolean', short: 'X', description: 'print each packet (minus its link-level header) in hex and ASCII, as tcpdump -X' },
  write: { type: 'string', short: 'w', arg: 'FILE', description: 'write the packets to a pcapng file instead of printing them; "-" for standard output' },
  count: { type: 'string', arg: 'N', description: 'stop after N packets (tcpdump -c: -c is --containername in tlscope)' },
  'buffer-size': { type: 'string', short: 'B', arg: 'KiB', description: 'capture ring per namespace, in KiB, as tcpdump -B (default 8192 for the first 4 namespaces, 2048 for more)' },
  link: { type: 'boolean', short: 'e', description: 'print the link-level header (MAC addresses, ethertype) on each line' },
  'absolute-seq': { type: 'boolean', short: 'S', description: 'print absolute TCP sequence numbers' },
  numeric: { type: 'boolean', short: 'n', description: 'accepted for tcpdump habits: tlscope never resolves names or ports' },
  'no-owners': { type: 'boolean', description: 'do not attribute packets to processes (no tracepoints are loaded)' },
  timeout: { type: 'string', arg: 'SECONDS', description: 'stop after this many seconds (default: until Ctrl-C)' },
  verbose: { type: 'boolean', short: 'v', description: 'more detail in the summary and on errors; the sending process on each line' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

const USAGE = 'tlscope capture [scope] [-i IFACE] [-s SNAPLEN] [-A|-X] [-w FILE|-] [--count N] [--timeout S] [FILTER EXPRESSION…]';
const SUMMARY = 'Capture packets inside the network namespace of containers, pods or processes, like\n`nsenter -t PID -n tcpdump`, with no tool inside the container and nothing to exec.';
const ABOUT = `Targets: -c NAME, -r RUNTIME, --k8s-namespace/--k8s-podname/--k8s-selector, -p PID and
--host choose the network namespaces to capture in (every pod of a namespace at once, say),
each labelled with its container or pod; containers that start later and match are added.
With no scope flag, the host's own namespace is captured (as tcpdump would), not every
container's: container traffic crossing the host's bridge and veths shows there already.
-r, -c and the --k8s-* flags choose containers and leave the host out; --host adds it back.

The filter is tcpdump's (man pcap-filter), compiled by libpcap and run in the kernel on each
packet socket: what it rejects is never copied to tlscope. All the words after the options
form the expression, as with tcpdump.

Differences from tcpdump: every interface is captured by default (link-layer headers kept:
Ethernet, veth and loopback as Ethernet, tun/wireguard/ipip as raw IP; other link types are
not captured); -c is the container name, so the packet count is --count; names are never
resolved (-n is implied); -r is --runtimes (no reading of files); the line shows the container
and interface before the direction. Loopback packets show once, as with tcpdump -i lo (the
outgoing copy of each is dropped in the kernel).

In -w files, each (namespace, interface) is one interface whose description names the container
("web (docker) eth0"), and a packet whose TCP or connected UDP socket tlscope saw in use carries
a comment naming the sending and receiving processes (pid, comm, container).

Examples:
  tlscope capture -c web 'tcp port 8000' -A        HTTP of the container "web", as text
  tlscope capture -c web -w web.pcapng              everything of "web" into a file
  tlscope capture --k8s-namespace shop -w - | tshark -r -      every pod of a namespace
  tlscope capture -p 1234 -i eth0 -X 'udp port 53'
  tlscope capture --host -i lo --count 10`;

export const help = { usage: USAGE, summary: SUMMARY, options, about: ABOUT };

function captureSelector(v: ParsedValues): ContainerSelector {
  const s = selectorFrom(v);
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
    ctx.out.write(helpText(USAGE, SUMMARY, options, ABOUT));
    return 0;
  }
  const expression = positionals.join(' ').trim();
  const snapArg = int(values, 'snaplen', { min: 0, max: MAX_SNAPLEN });
  const snaplen = snapArg === undefined || snapArg === 0 ? MAX_SNAPLEN : snapArg;
  const count = int(values, 'count', { min: 1 });
  const timeout = int(values, 'timeout', { min: 1 });
  const bufferArg = int(values, 'buffer-size', { min: 256, max: 1 << 21 });
  const bufferKiB = bufferArg ?? 8192;
  const ifname = str(values, 'interface');
  const interfaceName = ifname === undefined || ifname === 'any' ? undefined : ifname;
  const out = str(values, 'write');
  const ascii = bool(values, 'ascii');
  const hex = bool(values, 'hex');
  const verbose = bool(values, 'verbose') || ctx.verbose;
  // tcpdump's own words for a bad expression (exit 2), before anything needs root
  const filter = compileFilter(expression, snaplen);
  const selector = captureSelector(values);
  requireCapabilities('capture');

  // The ring: blocks big enough for one packet of the snap length (with its headers), at least
  // 256 KiB, as many as the buffer holds (at least 4). The kernel hands a block over when it is
  // full or after retireMs: short for text (it shows at once), longer for files, where fuller
  // blocks mean fewer wake-ups and no ring space lost to half-empty blocks.
  let blockSize = 1 << 18;
  while (blockSize < snaplen + 512) blockSize *= 2;
  const blockCount = Math.max(4, Math.floor((bufferKiB * 1024) / blockSize));
  // Without -B, from the 5th namespace on rings get tcpdump's 2 MiB: 50 pods cost 124 MiB, not 400.
  const manyTargets = bufferArg === undefined ? { after: 4, blockCount: Math.max(4, Math.floor((2 << 20) / blockSize)) } : undefined;
  const retireMs = out === undefined ? 8 : 25;

  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  const timer = timeout === undefined ? undefined : setTimeout(onAbort, timeout * 1000);

  const warned = new Set<string>();
  const watchFailures: string[] = [];
  const warn = (msg: string): void => {
    if (msg.startsWith('cannot watch')) watchFailures.push(msg);
    if (warned.has(msg)) return;
    warned.add(msg);
    ctx.err.write(`tlscope: warning: ${msg}\n`);
  };
  const index = new ContainerIndex({ onWarning: (w) => warn(w.kind === 'runtime' ? `${w.runtime}: ${errorMessage(w.error)}` : errorMessage(w.error)) });

  // The host's network namespace: pid 1's, or ours where pid 1's cannot be read (as the index does)
  let hostNetns: number | undefined;
  try {
    hostNetns = namespaceInode(1, 'net');
  } catch {
    hostNetns = undefined;
  }
  hostNetns ??= namespaceInode(process.pid, 'net');
  const labelOf = (t: CaptureTarget): NamespaceLabel => {
    if (t.netns === (index.hostNamespaces?.net ?? hostNetns)) return { short: 'host', long: 'host' };
    const fromIndex = labelFor(index.byNetns(t.netns));
    if (fromIndex !== undefined) return fromIndex;
    const pid = /^\/proc\/(\d+)\//.exec(t.nsPath)?.[1];
    if (pid !== undefined) {
      const comm = processComm(Number(pid));
      return { short: `pid${pid}`, long: `pid ${pid}${comm === undefined ? '' : ` (${comm})`}` };
    }
    return { short: `netns${t.netns}`, long: `netns ${t.netns}` };
  };
  /** who a process is, for packet comments: "pid 42 curl on the host", "pid 7 httpd in web (docker)" */
  const whoIs = (o: FlowOwner): string => {
    const container = index.byMntns(o.mntns);
    const where = container === undefined ? 'on the host' : `in ${labelFor([container])?.long ?? container.name}`;
    return `pid ${o.pid} ${o.comm} ${where}`;
  };

  // ---- the output ----
  let fileFd: number | undefined;
  let writer: PcapngWriter | undefined;
  let writeError: unknown;
  if (out !== undefined) {
    if (out === '-') {
      const stdout = ctx.out as unknown as { write(b: Uint8Array): unknown };
      writer = new PcapngWriter((chunk) => stdout.write(chunk), { application: `tlscope ${VERSION}`, os: `Linux ${release()}` });
    } else {
      try {
        fileFd = openSync(out, 'w', 0o644);
      } catch (e) {
        throw new TlscopeError('ERR_OUTPUT', `cannot write ${out}: ${errorMessage(e)}`);
      }
      const fd = fileFd;
      writer = new PcapngWriter((chunk) => {
        if (writeError !== undefined) return;
        try {
          writeAll(fd, chunk);
        } catch (e) {
          // a full disk, say: stop capturing and say so at the end (never crash mid-drain)
          writeError = e;
          onAbort();
        }
      }, { application: `tlscope ${VERSION}`, os: `Linux ${release()}` }, { reuseBuffer: true, bufferSize: 1 << 20 });
    }
  }

  let owners: FlowOwners | undefined;
  let gadget: CaptureGadget | undefined;
  let scope: NetnsScope | undefined;
  const missingNames = new Set(selector.containerNames ?? []);
  let captured = 0;
  const labels = new Map<number, NamespaceLabel>();
  /** (target id, ifindex) → pcapng interface id */
  const idbs = new Map<number, Map<number, number>>();
  const times = new TimeFormatter();
  const seqs = bool(values, 'absolute-seq') ? undefined : new TcpSequences();
  const textOpts = { link: bool(values, 'link'), absoluteSeq: bool(values, 'absolute-seq') };
  let lines: string[] = [];
  /** comment text and its UTF-8 bytes per flow, until owners change */
  let commentCache = new Map<string, { text: string; bytes: Buffer } | null>();
  let commentVersion = -1;

  const flowKeys = new FlowKeyReader();
  const commentFor = (p: RingPacket, linkType: number): { text: string; bytes: Buffer } | undefined => {
    if (owners === undefined || owners.size === 0) return undefined;
    const k = flowKeys.read(p.buf, p.offset, p.caplen, linkType);
    if (k === undefined) return undefined;
    if (commentVersion !== owners.version) {
      commentCache = new Map();
      commentVersion = owners.version;
    }
    let c = commentCache.get(k.forward);
    if (c === undefined) {
      const sender = owners.get(k.forward);
      const receiver = owners.get(k.reverse);
      const parts: string[] = [];
      if (sender !== undefined) parts.push(`sender: ${whoIs(sender)}`);
      if (receiver !== undefined) parts.push(`receiver: ${whoIs(receiver)}`);
      const text = parts.join('; ');
      c = text === '' ? null : { text, bytes: Buffer.from(text) };
      if (commentCache.size > 65536) commentCache.clear();
      commentCache.set(k.forward, c);
    }
    return c ?? undefined;
  };

  const interfaceId = (t: CaptureTarget, p: RingPacket, linkType: number): number => {
    let perTarget = idbs.get(t.id);
    if (perTarget === undefined) idbs.set(t.id, (perTarget = new Map()));
    let id = perTarget.get(p.ifindex);
    if (id === undefined) {
      const name = t.socket.interfaceName(p.ifindex);
      const label = labels.get(t.id) ?? labelOf(t);
      id = (writer as PcapngWriter).addInterface({ linkType, snaplen, name, description: `${label.long} ${name}`, filter: expression, os: `Linux ${release()}` });
      perTarget.set(p.ifindex, id);
    }
    return id;
  };

  const epbFlags = (pkttype: number): number => {
    switch (pkttype) {
      case PACKET_OUTGOING:
        return EPB_OUTBOUND | EPB_UNICAST;
      case PACKET_HOST:
        return EPB_INBOUND | EPB_UNICAST;
      case PACKET_BROADCAST:
        return EPB_INBOUND | EPB_BROADCAST;
      case PACKET_MULTICAST:
        return EPB_INBOUND | EPB_MULTICAST;
      case PACKET_OTHERHOST:
        return EPB_INBOUND | EPB_PROMISCUOUS;
      default:
        return 0;
    }
  };

  const handler: PacketHandler = {
    packet(p, t) {
      const linkType = linkTypeOfHatype(p.hatype);
      if (linkType === undefined) return true; // the filter lets none through; belt and braces
      if (writer !== undefined) {
        writer.writePacket(interfaceId(t, p, linkType), p.sec, p.nsec, p.buf, p.offset, p.caplen, p.len, epbFlags(p.pkttype), commentFor(p, linkType)?.bytes);
      } else {
        const info = dissect(p.buf, p.offset, p.caplen, linkType, p.vlanTci, p.vlanTpid);
        const label = labels.get(t.id) ?? labelOf(t);
        let line = `${times.format(p.sec, p.nsec)} ${label.short} ${t.socket.interfaceName(p.ifindex)} ${directionWord(p.pkttype)} ${packetSummary(info, p.len, seqs, textOpts)}`;
        if (verbose) {
          const who = commentFor(p, linkType);
          if (who !== undefined) line += ` [${who.text}]`;
        }
        const from = p.offset + Math.max(0, info.netOffset);
        if (hex) line += hexAsciiDump(p.buf, from, p.offset + p.caplen);
        else if (ascii) line += asciiDump(p.buf, from, p.offset + p.caplen);
        lines.push(line);
      }
      captured++;
      return count === undefined || captured < count;
    },
    flush() {
      if (writer !== undefined) writer.flush();
      else if (lines.length > 0) {
        ctx.out.write(`${lines.join('\n')}\n`);
        lines = [];
      }
    },
    targetAdded(t) {
      const label = labelOf(t);
      labels.set(t.id, label);
      const where = interfaceName === undefined ? 'every interface' : interfaceName;
      ctx.err.write(`tlscope: listening on ${where} of ${label.long} (netns ${t.netns}), snapshot length ${snaplen} bytes, ring ${t.socket.ringBytes >> 10} KiB\n`);
    },
    targetRemoved(t) {
      if (verbose) ctx.err.write(`tlscope: stopped listening in ${labels.get(t.id)?.long ?? t.netns}\n`);
    },
  };

  // -v: how long the event loop was held at most (the ring must absorb that much traffic)
  const loopDelay = verbose ? monitorEventLoopDelay({ resolution: 1 }) : undefined;
  loopDelay?.enable();
  try {
    if (!bool(values, 'no-owners') && (writer !== undefined || verbose)) owners = FlowOwners.tryOpen(warn);
    gadget = new CaptureGadget({
      filter, blockSize, blockCount, retireMs, handler,
      ...(manyTargets === undefined ? {} : { manyTargets }),
      ...(interfaceName === undefined ? {} : { interfaceName }),
      ...(owners === undefined ? {} : { owners }),
      onLimit: onAbort,
    });
    scope = new NetnsScope(gadget, selector, index, warn);
    // The host and pids need no container index to be found: listen at once (a runtime that is
    // slow to answer delays only the names in comments). Containers are found through it.
    const early = !hasContainerFilter(selector);
    if (early) scope.start();
    const stopped = new Promise<void>((resolve) => {
      if (stop.signal.aborted) resolve();
      else stop.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    await Promise.race([index.start(), stopped]); // --timeout and Ctrl-C also while runtimes are slow
    for (const x of index.all()) missingNames.delete(x.name);
    const unsubscribeNames = index.subscribe((e) => {
      if (e.type !== 'removed') missingNames.delete(e.container.name);
    });
    if (missingNames.size > 0) {
      ctx.err.write(`tlscope: waiting for container${missingNames.size > 1 ? 's' : ''} ${[...missingNames].join(', ')} to start${timeout === undefined ? ' (Ctrl-C to stop)' : ` (up to ${timeout} s)`}\n`);
    }
    if (early) {
      // a pid's namespace may turn out to be a container's, now that the index knows them
      for (const t of gadget.watched()) labels.set(t.id, labelOf(t));
    } else if (!stop.signal.aborted) {
      scope.start();
    }
    loopDelay?.reset(); // from here on: while capturing (loading BPF above holds the loop too)
    if (verbose && filter.rawError !== undefined) ctx.err.write(`tlscope: the filter does not apply to raw-IP interfaces (${filter.rawError}): none of their packets are captured\n`);

    await stopped;
    unsubscribeNames();
    scope.stop();
    await gadget.close();
    const st = gadget.stats();
    writer?.flush();
    ctx.err.write(formatCaptureTotals({ captured, received: st.received, dropped: st.dropped }));
    if (verbose) {
      ctx.err.write(`tlscope: ${st.targets} namespace${st.targets === 1 ? '' : 's'} captured, ${st.losing} packets marked as following a loss, ${st.freezes} ring freezes, ${st.wakeups} wake-ups, ${st.rereads} immediate re-reads`);
      if (owners !== undefined) ctx.err.write(`; ${owners.size} sockets attributed, ${owners.lost()} attribution records lost`);
      if (loopDelay !== undefined) ctx.err.write(`; event loop held up to ${(loopDelay.max / 1e6).toFixed(1)} ms (p99 ${(loopDelay.percentile(99) / 1e6).toFixed(1)} ms)`);
      ctx.err.write('\n');
    }
    if (writeError !== undefined) throw new TlscopeError('ERR_OUTPUT', `writing ${out}: ${errorMessage(writeError)}`, { hint: 'the capture stopped there; the file holds what was written before' });
    if (missingNames.size > 0) {
      throw new TlscopeError('ERR_NO_CONTAINER', `container${missingNames.size > 1 ? 's' : ''} ${[...missingNames].join(', ')} never appeared`, {
        hint: 'check the name with `tlscope containers` (or docker ps / ctr -n k8s.io containers ls / podman ps)',
      });
    }
    if (st.targets === 0 && watchFailures.length > 0) {
      throw new TlscopeError('ERR_NO_TARGET', `nothing was captured: ${watchFailures.join('; ')}`);
    }
    if (st.targets === 0 && hasContainerFilter(selector) && missingNames.size === 0 && selector.containerNames === undefined) {
      ctx.err.write('tlscope: no container matched the scope\n');
    }
    return 0;
  } finally {
    loopDelay?.disable();
    if (timer !== undefined) clearTimeout(timer);
    ctx.signal.removeEventListener('abort', onAbort);
    scope?.stop();
    await gadget?.close();
    await owners?.close();
    await index.close();
    try {
      writer?.flush();
    } finally {
      if (fileFd !== undefined) closeSync(fileFd);
    }
  }
}
