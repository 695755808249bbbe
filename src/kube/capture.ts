// SPDX-License-Identifier: Apache-2.0
/**
 * `kubectl tlscope capture`: the capture gadget on every wanted node's agent, through the
 * cluster stream (src/kube/stream.ts), into ONE pcapng (tlscope's own writer, src/output/) or
 * tcpdump-like lines. Each (node, network namespace, interface) is one pcapng interface whose
 * if_name names node, pod and containers ("tlscope-n1/shop/cart-7d9f/cart,sidecar eth0");
 * packets of every node go out in time order (the stream's merge).
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { TlscopeError, UsageError, errorMessage } from '../errors.js';
import { captureDefinition } from '../gadgets/capture/definition.js';
import type { WirePacket } from '../gadgets/capture/wire.js';
import { parseParams } from '../gadgets/params.js';
import type { RingPacket } from '../ebpf/tpacket.js';
import { PacketTextWriter, PcapngPacketWriter, type PacketRecord } from '../output/packet-writers.js';
import { PcapngWriter } from '../output/pcapng.js';
import { clusterOptions, flag, help, paramSpecs, parseFlags, str, traceOptions, type Specs } from './flags.js';
import type { RunRequest } from './proto.js';
import { openCluster, rawParams, runClusterStream, selectorFromFlags, timeoutFromFlags, wireScope, type ClusterSummary, type NodeState } from './stream.js';
import type { KubeContext } from './trace.js';

const VERSION = '0.1.0';

/** the trace scope flags, without those of events (-o, --fields, -F) */
const scopeOptions: Specs = Object.fromEntries(Object.entries(traceOptions).filter(([k]) => !['output', 'fields', 'filter', 'help', 'verbose', 'timeout'].includes(k)));

const options: Specs = {
  ...scopeOptions,
  ...paramSpecs(captureDefinition.params),
  write: { type: 'string', short: 'w', arg: 'FILE', description: 'write every node\'s packets to ONE pcapng file ("-": standard output) instead of printing them' },
  ascii: { type: 'boolean', short: 'A', description: 'print each packet (minus its link-level header) in ASCII, as tcpdump -A' },
  hex: { type: 'boolean', short: 'X', description: 'print each packet (minus its link-level header) in hex and ASCII, as tcpdump -X' },
  link: { type: 'boolean', short: 'e', description: 'print the link-level header on each line' },
  'absolute-seq': { type: 'boolean', short: 'S', description: 'print absolute TCP sequence numbers' },
  timeout: traceOptions['timeout'] as Specs[string],
  verbose: { type: 'boolean', short: 'v', description: 'more detail; the sending process on each line' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
  ...clusterOptions,
};

export const CAPTURE_USAGE = help(
  'kubectl tlscope capture [scope] [-i IFACE] [-s SNAPLEN] [-w FILE.pcapng] [--timeout S] [FILTER EXPRESSION…]',
  'tcpdump in pods on every node (or --node NAME…), through each node\'s tlscope agent: ONE pcapng\nfor the whole cluster, one interface per node, pod and interface, packets merged in time order.',
  options,
  `Scope flags are those of kubectl tlscope trace (-n NS, --k8s-podname POD, -l K=V, -c NAME, --node):
pod filters are resolved by the API, and only the nodes that run matching pods are asked. With no
scope flag: every pod of every node (the agent's own pod is never captured: it carries the
packets). --host adds each node's own network namespace; it also carries the API server's
port-forward streams (the capture itself): give a filter that leaves them out.

The filter is tcpdump's (man pcap-filter), compiled and run on each node; a bad one is the
agents' error, said once with its node. Words after the options form it, as with tcpdump.

In the -w file each interface is named NODE/NAMESPACE/POD/CONTAINERS IFACE (if_name), e.g.
"tlscope-n1/shop/cart-7d9f/cart eth0", and described in if_description; packets carry the
sending and receiving processes as comments where the node saw their sockets. Without -w, lines
are tcpdump's, each with its node and pod: "12:00:01.000001 tlscope-n1 shop/cart-7d9f eth0 Out IP …".
A pod's first packets are caught though the agent learns pods after they start: they wait on
its node (at most 2 s) until the pod is known, so the file's order holds within 2.5 s.

Examples:
  kubectl tlscope capture -n shop -w shop.pcapng --timeout 30 'tcp port 443'
  tshark -r shop.pcapng -T fields -e frame.interface_name -e ip.src -e ip.dst -e tcp.dstport
  wireshark shop.pcapng            (Statistics > Capture File Properties lists the interfaces)
  kubectl tlscope capture --k8s-podname cart-7d9f -A 'tcp port 8080'
  kubectl tlscope capture -l app=web --node tlscope-n2 -w - | tshark -r - -Y http

Needs pods/portforward in the agents' namespace.`,
);

function writeAll(fd: number, chunk: Uint8Array): void {
  let off = 0;
  while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
}

/** A wire packet as the packet writers take it (its own copy: no ring behind it). */
function recordOf(w: WirePacket, targetId: number): PacketRecord {
  const p: RingPacket = {
    sec: w.sec, nsec: w.nsec, caplen: w.caplen, len: w.len, status: 0, ifindex: w.ifindex, hatype: 0, pkttype: w.pkttype,
    protocol: w.protocol, vlanTci: w.vlanTci, vlanTpid: w.vlanTpid, buf: w.data, offset: 0,
  };
  const node = w.k8s.node;
  const o = w.owner;
  const where = o.kind === 'pod' ? `${o.namespace}/${o.pod}/${o.containers.join(',')}` : o.kind === 'container' ? o.containers.join(',') || o.label : o.label;
  const long = o.kind === 'pod'
    ? `node ${node}: pod ${o.namespace}/${o.pod}, container${o.containers.length === 1 ? '' : 's'} ${o.containers.join(', ')} (${o.runtime})`
    : o.kind === 'container' ? `node ${node}: container ${o.containers.join(', ')} (${o.runtime})` : o.kind === 'host' ? `node ${node}: the node's own network namespace` : `node ${node}: ${o.label}`;
  let comment: { text: string; bytes: Uint8Array } | undefined;
  return {
    p, linkType: w.linkType, targetId, interfaceName: w.interfaceName,
    label: { short: `${node} ${o.label}`, long },
    pcapngInterface: { name: `${node}/${where} ${w.interfaceName}`, description: `${long}, interface ${w.interfaceName}` },
    comment: () => (w.comment === undefined ? undefined : (comment ??= { text: w.comment, bytes: Buffer.from(w.comment) })),
  };
}

function plural(n: number, w: string): string {
  return `${n} ${w}${n === 1 ? '' : 's'}`;
}

/** One line per node: what it captured, what reached this client, what was lost on the way. */
export function captureNodeLine(s: NodeState, written: number): string {
  const k = s.counters;
  const parts = [`${plural(written, 'packet')} ${'written'}`, `${k['captured'] ?? 0} captured`, `${k['received'] ?? 0} received by filter`, `${k['dropped'] ?? 0} dropped by kernel`];
  if (s.dropped > 0) parts.push(`${s.dropped} dropped by the agent (this client read too slowly)`);
  if ((k['notInScope'] ?? 0) > 0) parts.push(`${k['notInScope']} of pods not in scope`);
  if ((k['unattributed'] ?? 0) > 0) parts.push(`${k['unattributed']} of namespaces not known within 2 s (dropped)`);
  if (s.gone > 0) parts.push(`agent gone ${plural(s.gone, 'time')}`);
  if (s.state !== 'ended' && s.state !== 'running') parts.push(`${s.state}${s.reason ? ` (${s.reason})` : ''}`);
  return `node ${s.node}: ${parts.join(', ')}`;
}

export function captureSummaryLine(s: ClusterSummary, nodes: readonly NodeState[], written: number, interfaces: number | undefined, file: string | undefined): string {
  const parts = [`${plural(written, 'packet')} from ${plural(s.started.length, 'node')}${file === undefined ? '' : ` written to ${file === '-' ? 'standard output' : file}`}${interfaces === undefined ? '' : ` (${plural(interfaces, 'interface')})`}`];
  const lost = nodes.reduce((n, x) => n + (x.counters['dropped'] ?? 0), 0);
  parts.push(`${lost} dropped by kernel`);
  if (s.sum.dropped > 0) parts.push(`${s.sum.dropped} dropped by the agents (this client read too slowly)`);
  if (s.late > 0) parts.push(`${s.late} merged out of order`);
  if (s.gone.length > 0) parts.push(`${plural(s.gone.length, 'agent')} gone: ${s.gone.map((g) => `node ${g.node} (${g.reason})`).join('; ')}`);
  return parts.join(', ');
}

export async function runKubeCapture(argv: string[], ctx: KubeContext): Promise<number> {
  const { values: v, positionals } = parseFlags(argv, options);
  if (flag(v, 'help')) {
    ctx.out.write(CAPTURE_USAGE);
    return 0;
  }
  const expression = positionals.join(' ').trim();
  const file = str(v, 'write');
  const verbose = flag(v, 'verbose');
  const selector = selectorFromFlags(v);
  const timeout = timeoutFromFlags(v);
  // usage errors before anything talks to the cluster (the filter is compiled on the nodes)
  const { raw, wire } = rawParams(captureDefinition, v);
  const params = parseParams(captureDefinition.params, raw);
  const snapArg = params['snaplen'];
  const snaplen = typeof snapArg === 'number' && snapArg > 0 ? snapArg : 262144;
  const request: RunRequest = {
    gadget: 'capture',
    params: {
      ...wire,
      expression,
      'block-timeout': file === undefined ? '8' : '25',
      ...(file === undefined && !verbose ? { 'no-owners': 'true' } : {}),
    },
    scope: wireScope(selector), filter: '', timeout_ms: timeout === undefined ? 0 : timeout * 1000,
    verbose, json_view: false, max_queued_events: 0,
  };

  let fd: number | undefined;
  if (file !== undefined && file !== '-') {
    try {
      fd = openSync(file, 'w', 0o644);
    } catch (e) {
      throw new UsageError(`-w ${file}: cannot write it: ${errorMessage(e)}`, 'give a path in a directory you can write to');
    }
  }
  const { cluster, allNodes, onlyNodes } = await openCluster(v).catch((e: unknown) => {
    if (fd !== undefined) closeSync(fd);
    throw e;
  });

  let writeError: unknown;
  const abort = new AbortController();
  const onAbort = (): void => abort.abort();
  if (ctx.signal.aborted) abort.abort();
  else ctx.signal.addEventListener('abort', onAbort, { once: true });
  const section = { application: `tlscope ${VERSION} (kubectl tlscope capture)`, comment: `nodes: ${(onlyNodes ?? allNodes).join(', ')}` };
  let pcapng: PcapngWriter | undefined;
  let sink: PacketTextWriter | PcapngPacketWriter;
  if (file === undefined) {
    sink = new PacketTextWriter(ctx.out, { link: flag(v, 'link'), absoluteSeq: flag(v, 'absolute-seq'), owners: verbose, ...(flag(v, 'hex') ? { dump: 'hex' as const } : flag(v, 'ascii') ? { dump: 'ascii' as const } : {}) });
  } else if (fd === undefined) {
    const stdout = ctx.out as unknown as { write(b: Uint8Array): unknown };
    pcapng = new PcapngWriter((chunk) => stdout.write(chunk), section);
    sink = new PcapngPacketWriter(pcapng, { snaplen, filter: expression });
  } else {
    const f = fd;
    pcapng = new PcapngWriter((chunk) => {
      if (writeError !== undefined) return;
      try {
        writeAll(f, chunk);
      } catch (e) {
        writeError = e; // a full disk: stop, and say so at the end
        onAbort();
      }
    }, section, { reuseBuffer: true, bufferSize: 1 << 20 });
    sink = new PcapngPacketWriter(pcapng, { snaplen, filter: expression });
  }

  /** (node, netns, owner) → a target id of this file */
  const targets = new Map<string, number>();
  const written = new Map<string, number>();
  let total = 0;
  const errors: { node: string | undefined; text: string }[] = [];
  const say = (text: string): void => { ctx.err.write(`tlscope: ${text}\n`); };
  let summary: ClusterSummary;
  /** every node's counts as the stream last published them (its agents' runs added up) */
  let lastNodes: NodeState[] = [];
  try {
    summary = await runClusterStream({
      cluster, allNodes, onlyNodes, selector, request, verbose, timeout, signal: abort.signal,
      // a pod's first packets wait on its node until the agent knows the pod (up to 2 s)
      mergeWindowMs: file === undefined ? 500 : 2500,
      emit: (m) => {
        if (m.type === 'events') {
          const records: PacketRecord[] = [];
          for (const e of m.events as unknown as WirePacket[]) {
            const key = `${e.k8s.node}\0${e.netns}\0${e.owner.label}`;
            let id = targets.get(key);
            if (id === undefined) targets.set(key, (id = targets.size));
            records.push(recordOf(e, id));
            written.set(e.k8s.node, (written.get(e.k8s.node) ?? 0) + 1);
          }
          total += records.length;
          sink.events(records);
          sink.flush();
        } else if (m.type === 'say') {
          // a node's error (a bad filter is every node's): said once, at the end, with its node
          if (m.error) errors.push({ node: m.node, text: m.text });
          else say(m.text);
        } else if (m.type === 'nodes') {
          lastNodes = m.nodes;
          // every node asked has ended and one could not run: nothing more will come
          if (errors.length > 0 && m.nodes.length > 0 && m.nodes.every((n) => n.state === 'ended' || n.state === 'unreachable')) abort.abort();
        }
      },
    });
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    sink.flush();
    if (fd !== undefined) closeSync(fd);
  }
  for (const n of lastNodes) say(captureNodeLine(n, written.get(n.node) ?? 0));
  say(captureSummaryLine(summary, lastNodes, total, pcapng?.interfaceCount, file));
  if (writeError !== undefined) throw new TlscopeError('ERR_OUTPUT', `writing ${file}: ${errorMessage(writeError)}`, { hint: 'the capture stopped there; the file holds what was written before' });
  if (summary.problem !== undefined) {
    // other nodes' errors, when they differ from the first's
    const first = summary.problem.message.replace(/^node \S+: /, '');
    const seen = new Set([first]);
    for (const e of errors) {
      const text = e.text.replace(/^node \S+: /, '');
      if (!seen.has(text)) {
        seen.add(text);
        say(e.text);
      }
    }
    throw summary.problem;
  }
  if (summary.started.length === 0) throw new TlscopeError('ERR_NO_AGENT', 'no node\'s agent could run the capture', { hint: 'kubectl tlscope deploy, then check kubectl -n tlscope get pods' });
  return 0;
}
