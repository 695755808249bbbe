// SPDX-License-Identifier: Apache-2.0
/**
 * `tlscope ui --capture EXPR`: the capture gadget run by a `Session` (as `tlscope capture`),
 * each packet summarised as tcpdump's line while the session's sink holds it (packets are views
 * into the ring, valid only during the call), one row per packet. The UI's own port is left out
 * of the expression: the page's stream would otherwise capture itself.
 */
import type { ContainerIndex } from '../containers/index.js';
import { hasContainerFilter, type ContainerSelector } from '../containers/selector.js';
import type { CommonEvent, CommonField } from '../fields/common.js';
import { commonFields } from '../fields/common.js';
import { captureDefinition, type CapturedPacket } from '../gadgets/capture/definition.js';
import { directionWord, packetSummary, TcpSequences } from '../output/packet-text.js';
import { dissect } from '../protocols/dissect.js';
import { Session, type SessionMessage } from '../session/session.js';
import type { SourceMessage, SourceSpec } from './hub.js';
import { uiStats } from './sources.js';

export interface PacketSummaryEvent extends CommonEvent {
  summary: string;
  src: string | undefined;
  dst: string | undefined;
  interface: string;
  target: string;
}

export function packetSummaryFields(): CommonField<PacketSummaryEvent>[] {
  return [
    ...(commonFields() as CommonField<PacketSummaryEvent>[]),
    { name: 'target', column: 'TARGET', width: 16, description: 'the namespace captured in (host, container, pod)', visible: true, get: (e) => e.target },
    { name: 'interface', column: 'IFACE', width: 8, description: 'the interface inside it', visible: true, get: (e) => e.interface },
    { name: 'src', column: 'SRC', width: 22, description: 'source address', visible: true, get: (e) => e.src },
    { name: 'dst', column: 'DST', width: 22, description: 'destination address', visible: true, get: (e) => e.dst },
    { name: 'summary', column: 'SUMMARY', width: 60, description: "tcpdump's line for the packet", visible: true, get: (e) => e.summary },
  ];
}

class Queue<T> {
  private items: T[] = [];
  private wake: (() => void) | undefined;
  private ended = false;
  push(x: T): void {
    this.items.push(x);
    this.wake?.();
  }
  end(): void {
    this.ended = true;
    this.wake?.();
  }
  async *drain(): AsyncGenerator<T> {
    for (;;) {
      while (this.items.length > 0) yield this.items.shift() as T;
      if (this.ended) return;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }
}

export async function openCaptureSource(o: { expression: string; uiPort: number; selector: ContainerSelector; signal: AbortSignal; index?: ContainerIndex }): Promise<{ spec: SourceSpec<PacketSummaryEvent>; session: Session<CapturedPacket> }> {
  const own = `not port ${o.uiPort}`;
  const expression = o.expression.trim() === '' ? own : `(${o.expression}) and ${own}`;
  // no target: the host's namespace, as tcpdump (and `tlscope capture`)
  const s = o.selector;
  const scope = !hasContainerFilter(s) && !(s.pids?.length ?? 0) && s.host === undefined ? { ...s, host: true } : s;
  const q = new Queue<SourceMessage<PacketSummaryEvent>>();
  const seqs = new TcpSequences();
  let batch: PacketSummaryEvent[] = [];
  const session = await Session.start(captureDefinition, {
    params: { expression, 'no-owners': true },
    scope,
    signal: o.signal,
    ...(o.index === undefined ? {} : { index: o.index }),
    sink: {
      events(packets: CapturedPacket[]) {
        for (const r of packets) {
          const p = r.p;
          const info = dissect(p.buf, p.offset, p.caplen, r.linkType, p.vlanTci, p.vlanTpid);
          batch.push({
            timestamp: p.sec * 1000 + p.nsec / 1e6,
            proc: { pid: 0, tid: 0, comm: '' },
            summary: `${r.interfaceName} ${directionWord(p.pkttype)} ${packetSummary(info, p.len, seqs)}`,
            src: info.src === '' ? undefined : info.sport > 0 ? `${info.src}:${info.sport}` : info.src,
            dst: info.dst === '' ? undefined : info.dport > 0 ? `${info.dst}:${info.dport}` : info.dst,
            interface: r.interfaceName,
            target: r.label.short,
          } as PacketSummaryEvent);
        }
      },
      flush() {
        if (batch.length === 0) return;
        q.push({ type: 'events', events: batch });
        batch = [];
      },
    },
  });
  void (async () => {
    try {
      for await (const m of session as AsyncIterable<SessionMessage<CapturedPacket>>) {
        if (m.type === 'warning') q.push({ type: 'warning', code: m.code, text: m.text });
        else if (m.type === 'info') {
          if (m.text !== '') q.push({ type: 'info', code: m.code, text: m.text });
        } else if (m.type === 'stats') q.push({ type: 'stats', stats: uiStats(m.stats, m.final), final: m.final });
      }
    } finally {
      q.end();
    }
  })();
  return { spec: { gadget: captureDefinition.name, fields: packetSummaryFields() as never, messages: q.drain() }, session };
}
