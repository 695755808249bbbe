// SPDX-License-Identifier: Apache-2.0
/**
 * Writers for captured packets: tcpdump-style text lines (with -A/-X dumps) and pcapng with one
 * interface per (namespace, interface) and owner comments. They take packets as a session's
 * sink gets them: views into the capture ring, valid only during the call.
 */
import { release } from 'node:os';
import { PACKET_BROADCAST, PACKET_HOST, PACKET_MULTICAST, PACKET_OTHERHOST, PACKET_OUTGOING } from '../constants.js';
import type { RingPacket } from '../ebpf/tpacket.js';
import { dissect } from '../protocols/dissect.js';
import type { Sink } from './columns.js';
import { asciiDump, directionWord, hexAsciiDump, packetSummary, TcpSequences, TimeFormatter } from './packet-text.js';
import { EPB_BROADCAST, EPB_INBOUND, EPB_MULTICAST, EPB_OUTBOUND, EPB_PROMISCUOUS, EPB_UNICAST, PcapngWriter } from './pcapng.js';

/** What a packet writer needs of each packet. */
export interface PacketRecord {
  readonly p: RingPacket;
  readonly linkType: number;
  /** the namespace capture it came from */
  readonly targetId: number;
  readonly label: { readonly short: string; readonly long: string };
  readonly interfaceName: string;
  /**
   * the pcapng interface's if_name and if_description, when the writer's own ("eth0", "label
   * eth0") are not enough (a cluster's packets: node, pod and containers)
   */
  readonly pcapngInterface?: { readonly name: string; readonly description: string };
  comment(): { text: string; bytes: Uint8Array } | undefined;
}

export interface PacketTextWriterOptions {
  /** -e: the link-level header on each line */
  link?: boolean;
  /** -S: absolute TCP sequence numbers */
  absoluteSeq?: boolean;
  /** -A / -X */
  dump?: 'ascii' | 'hex';
  /** -v: the sending and receiving processes on each line */
  owners?: boolean;
}

export class PacketTextWriter {
  private readonly times = new TimeFormatter();
  private readonly seqs: TcpSequences | undefined;
  private lines: string[] = [];

  constructor(private readonly out: Sink, private readonly opts: PacketTextWriterOptions = {}) {
    this.seqs = opts.absoluteSeq ? undefined : new TcpSequences();
  }

  events(batch: readonly PacketRecord[]): void {
    const textOpts = { link: this.opts.link === true, absoluteSeq: this.opts.absoluteSeq === true };
    for (const r of batch) {
      const p = r.p;
      const info = dissect(p.buf, p.offset, p.caplen, r.linkType, p.vlanTci, p.vlanTpid);
      let line = `${this.times.format(p.sec, p.nsec)} ${r.label.short} ${r.interfaceName} ${directionWord(p.pkttype)} ${packetSummary(info, p.len, this.seqs, textOpts)}`;
      if (this.opts.owners) {
        const who = r.comment();
        if (who !== undefined) line += ` [${who.text}]`;
      }
      const from = p.offset + Math.max(0, info.netOffset);
      if (this.opts.dump === 'hex') line += hexAsciiDump(p.buf, from, p.offset + p.caplen);
      else if (this.opts.dump === 'ascii') line += asciiDump(p.buf, from, p.offset + p.caplen);
      this.lines.push(line);
    }
  }

  flush(): void {
    if (this.lines.length === 0) return;
    this.out.write(`${this.lines.join('\n')}\n`);
    this.lines = [];
  }
}

function epbFlags(pkttype: number): number {
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
}

export class PcapngPacketWriter {
  /** (target id, ifindex) → pcapng interface id */
  private readonly idbs = new Map<number, Map<number, number>>();

  constructor(private readonly writer: PcapngWriter, private readonly opts: { snaplen: number; filter: string }) {}

  private interfaceId(r: PacketRecord): number {
    let perTarget = this.idbs.get(r.targetId);
    if (perTarget === undefined) this.idbs.set(r.targetId, (perTarget = new Map()));
    let id = perTarget.get(r.p.ifindex);
    if (id === undefined) {
      const name = r.pcapngInterface?.name ?? r.interfaceName;
      const description = r.pcapngInterface?.description ?? `${r.label.long} ${name}`;
      id = this.writer.addInterface({ linkType: r.linkType, snaplen: this.opts.snaplen, name, description, filter: this.opts.filter, ...(r.pcapngInterface === undefined ? { os: `Linux ${release()}` } : {}) });
      perTarget.set(r.p.ifindex, id);
    }
    return id;
  }

  events(batch: readonly PacketRecord[]): void {
    for (const r of batch) {
      const p = r.p;
      this.writer.writePacket(this.interfaceId(r), p.sec, p.nsec, p.buf, p.offset, p.caplen, p.len, epbFlags(p.pkttype), r.comment()?.bytes);
    }
  }

  flush(): void {
    this.writer.flush();
  }
}
