// SPDX-License-Identifier: Apache-2.0
/**
 * `capture` declared: parameters, requirements, lifecycle. Packets are pushed to the session
 * as they are walked in the ring (valid only during the sink call: no copy), each with its
 * namespace's label and, on demand, the owner comment naming the processes of its flow.
 */
import { statSync } from 'node:fs';
import { hasContainerFilter } from '../../containers/selector.js';
import type { ContainerIndex } from '../../containers/index.js';
import { compileFilter, linkTypeOfHatype } from '../../ebpf/pcap-filter.js';
import type { RingPacket } from '../../ebpf/tpacket.js';
import { dissect, FlowKeyReader, type PacketInfo } from '../../protocols/dissect.js';
import { hostNamespaces } from '../../proc/namespaces.js';
import { processComm } from '../../proc/process.js';
import { compileQuery, type CompiledQuery } from '../../query/query.js';
import { queryOptionsFor } from '../../query/vocabulary.js';
import type { GadgetDefinition, GadgetParam, ParamValues } from '../definition.js';
import { boolParam, intParam, strParam } from '../params.js';
import { packetFields, type PacketView } from './fields.js';
import { CaptureGadget, type CaptureTarget, type PacketHandler } from './gadget.js';
import { containerPlace, labelFor, type NamespaceLabel } from './labels.js';
import { FlowOwners } from './owners.js';
import type { ProcRecord } from '../proc-record.js';

export const MAX_SNAPLEN = 262144;

/** One captured packet as the session hands it to a sink: valid only during the call. */
export interface CapturedPacket {
  p: RingPacket;
  linkType: number;
  /** the (namespace) capture it came from: a new id each time a namespace is watched */
  targetId: number;
  /** the inode of that network namespace */
  netns: number;
  label: NamespaceLabel;
  interfaceName: string;
  /** who sent and who receives it ("sender: pid 42 curl on the host; receiver: …"), when known */
  comment(): { text: string; bytes: Buffer } | undefined;
}

const params: GadgetParam[] = [
  { name: 'interface', type: 'string', short: 'i', arg: 'IFACE', description: 'only this interface, by its name inside each target (default: every interface; "any" too)' },
  { name: 'snaplen', type: 'int', short: 's', arg: 'SNAPLEN', min: 0, max: MAX_SNAPLEN, description: `bytes kept of each packet (default and 0: ${MAX_SNAPLEN})` },
  { name: 'count', type: 'int', arg: 'N', min: 1, description: 'stop after N packets (tcpdump -c: -c is --containername in tlscope)' },
  { name: 'buffer-size', type: 'int', short: 'B', arg: 'KiB', min: 256, max: 1 << 21, description: 'capture ring per namespace, in KiB, as tcpdump -B (default 8192 for the first 4 namespaces, 2048 for more)' },
  { name: 'no-owners', type: 'bool', description: 'do not attribute packets to processes (no tracepoints are loaded)' },
  { name: 'block-timeout', type: 'int', hidden: true, arg: 'MS', min: 1, max: 1000, default: 8, description: 'a partly filled ring block is handed over after this many ms (the latency of the output)' },
  { name: 'expression', type: 'string', hidden: true, default: '', description: "tcpdump's filter expression (man pcap-filter)" },
  { name: 'query', type: 'string', hidden: true, description: 'a CEL expression over the packet fields (packetFields()): only packets for which it is true are handed on (after the filter)' },
];

/**
 * `--query` for capture: CEL over the packet fields (their names as the field list gives them:
 * `dport == 443 && runtime.containerName == "web"`). A bad expression is a usage error with
 * its column. `proc.netns_id` (the namespace captured in) is pushed down: no socket is opened
 * in a namespace the expression cannot match. `proc.pid` is not: it names the sending process
 * (seen through its socket), not the namespace to capture in.
 */
export function compileCaptureQuery(source: string): CompiledQuery<PacketView> {
  const fields = packetFields();
  return compileQuery(source, fields, queryOptionsFor('capture', fields));
}

/** Whether a query needs the packets' owners (the sending process). */
export function queryReadsOwners(q: CompiledQuery<PacketView>): boolean {
  return q.reads.some((r) => r.startsWith('proc.') && r !== 'proc.netns_id');
}

function snaplenOf(v: ParamValues): number {
  const s = intParam(v, 'snaplen');
  return s === undefined || s === 0 ? MAX_SNAPLEN : s;
}

export const captureDefinition: GadgetDefinition<CapturedPacket> = {
  name: 'capture',
  oneLine: 'tcpdump inside containers, pods or processes, by name: text, -A/-X, or pcapng (-w)',
  usage: 'tlscope capture [scope] [-i IFACE] [-s SNAPLEN] [-A|-X] [-w FILE|-] [--count N] [--timeout S] [FILTER EXPRESSION…]',
  summary: 'Capture packets inside the network namespace of containers, pods or processes, like\n`nsenter -t PID -n tcpdump`, with no tool inside the container and nothing to exec.',
  about: `Targets: -c NAME, -r RUNTIME, --k8s-namespace/--k8s-podname/--k8s-selector, -p PID and
--host choose the network namespaces to capture in (every pod of a namespace at once, say),
each labelled with its container or pod; containers that start later and match are added.
With no scope flag, the host's own namespace is captured (as tcpdump would), not every
container's: container traffic crossing the host's bridge and veths shows there already.
-r, -c and the --k8s-* flags choose containers and leave the host out; --host adds it back.
--all-netns captures in every network namespace: the host's, every container's and every
other one (ip netns add, unshare -n, CNI), each found as it is created.

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
  tlscope capture --host -i lo --count 10`,
  params,
  fields: () => [],
  requirements: [['socket_filter']],
  processEvents: false,
  validate(v) {
    // tcpdump's own words for a bad expression (exit 2), before anything needs root
    compileFilter(strParam(v, 'expression') ?? '', snaplenOf(v));
    const q = strParam(v, 'query');
    if (q !== undefined) compileCaptureQuery(q);
  },
  open(v, ctx) {
    const snaplen = snaplenOf(v);
    const expression = strParam(v, 'expression') ?? '';
    const filter = compileFilter(expression, snaplen);
    const bufferArg = intParam(v, 'buffer-size');
    const ifname = strParam(v, 'interface');
    const interfaceName = ifname === undefined || ifname === 'any' ? undefined : ifname;
    const count = intParam(v, 'count');
    const queryText = strParam(v, 'query');
    const query = queryText === undefined ? undefined : compileCaptureQuery(queryText);
    const onlyNetns = query?.pushdown.netns === undefined ? undefined : new Set(query.pushdown.netns);
    // The ring: blocks big enough for one packet of the snap length (with its headers), at least
    // 256 KiB, as many as the buffer holds (at least 4). The kernel hands a block over when it is
    // full or after the block timeout: short for text (it shows at once), longer for files.
    let blockSize = 1 << 18;
    while (blockSize < snaplen + 512) blockSize *= 2;
    const blockCount = Math.max(4, Math.floor(((bufferArg ?? 8192) * 1024) / blockSize));
    // Without -B, from the 5th namespace on rings get tcpdump's 2 MiB: 50 pods cost 124 MiB, not 400.
    const manyTargets = bufferArg === undefined ? { after: 4, blockCount: Math.max(4, Math.floor((2 << 20) / blockSize)) } : undefined;
    const index: ContainerIndex = ctx.index;
    const hostNetns = (): number | undefined => index.hostNamespaces?.net ?? hostNamespaces()?.net;

    const labels = new Map<number, NamespaceLabel>();
    const labelOf = (t: CaptureTarget): NamespaceLabel => {
      if (t.netns === hostNetns()) return { short: 'host', long: 'host' };
      const fromIndex = labelFor(index.byNetns(t.netns));
      if (fromIndex !== undefined) return fromIndex;
      const pid = /^\/proc\/(\d+)\//.exec(t.nsPath)?.[1];
      if (pid !== undefined) {
        const comm = processComm(Number(pid));
        return { short: `pid${pid}`, long: `pid ${pid}${comm === undefined ? '' : ` (${comm})`}` };
      }
      return { short: `netns${t.netns}`, long: `netns ${t.netns}` };
    };
    /** who a process is, for packet comments: "pid 42 curl on the host", "pid 7 httpd in web (docker)", "pid 9 curl in client of pod shop/cart (containerd)" */
    const whoIs = (o: ProcRecord): string => {
      const container = index.byMntns(o.mntns);
      const where = container === undefined ? 'on the host' : `in ${containerPlace(container)}`;
      return `pid ${o.pid} ${o.comm} ${where}`;
    };

    const watchFailures: string[] = [];
    const owners = boolParam(v, 'no-owners') ? undefined : FlowOwners.tryOpen((text) => ctx.warn('owners', text));
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

    // one record and one batch, reused: a packet is valid only during the push
    let current: { p: RingPacket; linkType: number } = { p: undefined as unknown as RingPacket, linkType: 0 };
    let currentTarget: CaptureTarget | undefined;
    const record: CapturedPacket = {
      get p() { return current.p; },
      get linkType() { return current.linkType; },
      get targetId() { return (currentTarget as CaptureTarget).id; },
      get netns() { return (currentTarget as CaptureTarget).netns; },
      get label() { const t = currentTarget as CaptureTarget; return labels.get(t.id) ?? labelOf(t); },
      get interfaceName() { return (currentTarget as CaptureTarget).socket.interfaceName(current.p.ifindex); },
      comment: () => commentFor(current.p, current.linkType),
    };
    const batch = [record];
    let captured = 0;
    let queryDropped = 0;
    // the packet as the query sees it: one object, its values computed only when read
    let viewInfo: PacketInfo | undefined;
    let viewTarget: CaptureTarget | undefined;
    let viewPacket: RingPacket | undefined;
    let viewLink = 0;
    const view: PacketView = {
      get timestamp() { const p = viewPacket as RingPacket; return p.sec * 1000 + Math.floor(p.nsec / 1e6); },
      get interfaceName() { return (viewTarget as CaptureTarget).socket.interfaceName((viewPacket as RingPacket).ifindex); },
      get pkttype() { return (viewPacket as RingPacket).pkttype; },
      get netns() { return (viewTarget as CaptureTarget).netns; },
      get containers() { return index.byNetns((viewTarget as CaptureTarget).netns); },
      get len() { return (viewPacket as RingPacket).len; },
      info() {
        const p = viewPacket as RingPacket;
        return (viewInfo ??= dissect(p.buf, p.offset, p.caplen, viewLink, p.vlanTci, p.vlanTpid));
      },
      sender() {
        const p = viewPacket as RingPacket;
        const k = owners === undefined ? undefined : flowKeys.read(p.buf, p.offset, p.caplen, viewLink);
        return k === undefined ? undefined : owners?.get(k.forward);
      },
    };
    const handler: PacketHandler = {
      packet(p, t) {
        const linkType = linkTypeOfHatype(p.hatype);
        if (linkType === undefined) return true; // the filter lets none through; belt and braces
        if (query !== undefined) {
          viewPacket = p;
          viewTarget = t;
          viewLink = linkType;
          viewInfo = undefined;
          if (!query.predicate(view)) {
            queryDropped++;
            return true;
          }
        }
        current = { p, linkType };
        currentTarget = t;
        ctx.push(batch);
        captured++;
        return count === undefined || captured < count;
      },
      flush: () => ctx.flush(),
      targetAdded(t) {
        const label = labelOf(t);
        labels.set(t.id, label);
        const where = interfaceName === undefined ? 'every interface' : interfaceName;
        ctx.info('listening', `listening on ${where} of ${label.long} (netns ${t.netns}), snapshot length ${snaplen} bytes, ring ${t.socket.ringBytes >> 10} KiB`);
      },
      targetRemoved(t) {
        ctx.note(`stopped listening in ${labels.get(t.id)?.long ?? t.netns}`);
      },
    };
    let gadget: CaptureGadget;
    try {
      gadget = new CaptureGadget({
        filter, blockSize, blockCount, retireMs: intParam(v, 'block-timeout') ?? 8, handler,
        ...(manyTargets === undefined ? {} : { manyTargets }),
        ...(interfaceName === undefined ? {} : { interfaceName }),
        ...(owners === undefined ? {} : { owners }),
        onLimit: () => ctx.stop(),
      });
    } catch (e) {
      void owners?.close();
      throw e;
    }
    const g = gadget;
    // proc.netns_id pushed down: a namespace the query cannot match gets no socket (its inode
    // is still handed back, so the scope's bookkeeping stays the same)
    const skipped = new Set<number>();
    const watcher = onlyNetns === undefined ? g : {
      watchNetns(p?: string): number {
        const inode = statSync(p ?? '/proc/self/ns/net').ino;
        if (onlyNetns.has(inode)) return g.watchNetns(p);
        if (!skipped.has(inode)) ctx.note(`not listening in netns ${inode}: the query needs proc.netns_id in [${[...onlyNetns].join(', ')}]`);
        skipped.add(inode);
        return inode;
      },
      unwatchNetns(inode: number): void {
        if (skipped.delete(inode)) return;
        g.unwatchNetns(inode);
      },
    };
    return {
      // The host and pids need no container index to be found: listen at once (a runtime that is
      // slow to answer delays only the names in comments). Containers are found through it.
      scope: {
        kind: 'netns',
        watcher: { watchNetns: (p) => watcher.watchNetns(p), unwatchNetns: (i) => watcher.unwatchNetns(i) },
        early: !hasContainerFilter(ctx.selector),
        onWatchError: (text) => watchFailures.push(text),
      },
      lost: () => g.stats().dropped,
      indexReady() {
        // a pid's namespace may turn out to be a container's, now that the index knows them
        for (const t of g.watched()) labels.set(t.id, labelOf(t));
        if (ctx.verbose && filter.rawError !== undefined) ctx.note(`the filter does not apply to raw-IP interfaces (${filter.rawError}): none of their packets are captured`);
      },
      counters: () => {
        const st = g.stats();
        return { captured, received: st.received, dropped: st.dropped, targets: st.targets, ...(query === undefined ? {} : { notMatchingQuery: queryDropped, queryErrors: query.errors() }) };
      },
      details: () => {
        const st = g.stats();
        let s = `${st.targets} namespace${st.targets === 1 ? '' : 's'} captured, ${st.losing} packets marked as following a loss, ${st.freezes} ring freezes, ${st.wakeups} wake-ups, ${st.rereads} immediate re-reads, ${st.timerChecks} timer looks`;
        if (owners !== undefined) s += `; ${owners.size} sockets attributed, ${owners.lost()} attribution records lost`;
        return s;
      },
      async close() {
        await g.close();
        await owners?.close();
        const st = g.stats();
        if (st.targets === 0 && watchFailures.length > 0) ctx.problem({ code: 'ERR_NO_TARGET', text: `nothing was captured: ${watchFailures.join('; ')}` });
        if (st.targets === 0 && hasContainerFilter(ctx.selector) && ctx.selector.containerNames === undefined && skipped.size === 0) ctx.info('no-match', 'no container matched the scope');
        if (st.targets === 0 && skipped.size > 0) ctx.info('no-match', `no namespace in scope has the query's proc.netns_id (${[...(onlyNetns ?? [])].join(', ')}): nothing was captured`);
      },
    };
  },
};
