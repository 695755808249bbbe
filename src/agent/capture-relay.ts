// SPDX-License-Identifier: Apache-2.0
/**
 * Capture's packets on their way from a node's session to a client (`kubectl tlscope capture`).
 * The session hands packets over as views of its ring, valid only during the call: each is
 * copied here at once into a wire packet (its bytes, times, interface, direction and who its
 * network namespace belongs to on this node: pod, containers, or the host).
 *
 * An agent in a pod learns pods after they start, so a capture scoped to pods watches every
 * network namespace of the node (NetnsScope): a packet of a namespace the index does not know
 * yet waits here (at most `holdMs`) until it does, then goes on if its pod is in scope; packets
 * of namespaces known and out of scope are dropped. Both are counted.
 */
import { hasContainerFilter, includesHost, matchesContainer, type ContainerSelector } from '../containers/selector.js';
import type { ContainerInfo } from '../containers/types.js';
import type { CapturedPacket } from '../gadgets/capture/definition.js';
import type { NetnsOwner, WirePacket } from '../gadgets/capture/wire.js';

export interface RelayCounters {
  /** packets handed on */
  sent: number;
  /** packets of namespaces known to be out of scope */
  outOfScope: number;
  /** packets of the agent's own namespace (the stream itself), never relayed */
  own: number;
  /** packets whose namespace stayed unknown past the hold */
  unattributed: number;
  /** waiting now */
  held: number;
}

function ownerOf(containers: readonly ContainerInfo[], isHost: boolean, netns: number, fallback: string): NetnsOwner | undefined {
  if (isHost) return { kind: 'host', namespace: '', pod: '', containers: [], runtime: '', label: 'host' };
  const first = containers[0];
  if (first === undefined) return undefined;
  const runtime = [...new Set(containers.map((c) => c.runtime))].join(',');
  if (first.k8s !== undefined && first.k8s.podName !== '') {
    const names = [...new Set(containers.map((c) => (c.k8s?.containerName || c.name)))].sort();
    return { kind: 'pod', namespace: first.k8s.namespace, pod: first.k8s.podName, containers: names, runtime, label: first.k8s.namespace === '' ? first.k8s.podName : `${first.k8s.namespace}/${first.k8s.podName}` };
  }
  const names = [...new Set(containers.map((c) => c.name))].sort();
  return { kind: 'container', namespace: '', pod: '', containers: names, runtime, label: names.join(',') || fallback || `netns ${netns}` };
}

export interface CaptureRelayOptions {
  node: string;
  selector: ContainerSelector;
  /** the index's containers of a network namespace */
  byNetns(inode: number): readonly ContainerInfo[];
  hostNetns(): number | undefined;
  /** whether the session watches every namespace (so that scope must be applied here) */
  everyNamespace: boolean;
  /**
   * the agent's own network namespace: never relayed (its loopback carries the packets to the
   * client: relaying them would capture the capture)
   */
  ownNetns?: number | undefined;
  send(packets: WirePacket[]): void;
  holdMs?: number;
  maxHeld?: number;
  maxHeldBytes?: number;
}

export class CaptureRelay {
  readonly counters: RelayCounters = { sent: 0, outOfScope: 0, own: 0, unattributed: 0, held: 0 };
  private readonly held: { w: WirePacket; at: number }[] = [];
  private readonly holdMs: number;
  private readonly maxHeld: number;
  private readonly scoped: boolean;
  /** the containers last known in each namespace: a pod that came and went before its packets were decided */
  private readonly seen = new Map<number, ContainerInfo[]>();
  /** namespaces whose packets waited the whole hold unknown (another node's, on a shared kernel; a CNI's): not held again */
  private readonly neverKnown = new Set<number>();
  private heldBytes = 0;
  private readonly maxHeldBytes: number;

  constructor(private readonly o: CaptureRelayOptions) {
    this.holdMs = o.holdMs ?? 2000;
    this.maxHeld = o.maxHeld ?? 20_000;
    this.maxHeldBytes = o.maxHeldBytes ?? 32 << 20;
    // pids name namespaces themselves: what the session watches is the scope
    this.scoped = o.everyNamespace && hasContainerFilter(o.selector) && !(o.selector.pids?.length);
  }

  /** The index learnt a container (call it for every added or updated one). */
  learn(c: ContainerInfo): void {
    if (c.netns === 0) return;
    const list = (this.seen.get(c.netns) ?? []).filter((x) => x.id !== c.id);
    list.push(c);
    this.seen.set(c.netns, list);
  }

  private containersOf(netns: number): readonly ContainerInfo[] {
    const now = this.o.byNetns(netns);
    return now.length > 0 ? now : (this.seen.get(netns) ?? []);
  }

  /** Whether a namespace's packets go on (true), are dropped (false) or wait (undefined). */
  private decide(w: WirePacket): boolean | undefined {
    const isHost = w.netns === this.o.hostNetns();
    const containers = isHost ? [] : this.containersOf(w.netns);
    const owner = ownerOf(containers, isHost, w.netns, w.owner.label);
    if (owner !== undefined) this.setOwner(w, owner);
    if (!this.scoped) return true;
    if (isHost) return includesHost(this.o.selector);
    if (containers.length === 0) return undefined;
    return containers.some((c) => matchesContainer(this.o.selector, c));
  }

  private setOwner(w: WirePacket, owner: NetnsOwner): void {
    w.owner = owner;
    w.k8s = { node: this.o.node, namespace: owner.namespace, podName: owner.pod, containerName: owner.containers.join(',') };
  }

  /** Copies the session's packets (views of its ring) and sends, holds or drops each. */
  packets(batch: readonly CapturedPacket[], now: number): void {
    const out: WirePacket[] = [];
    for (const r of batch) {
      if (r.netns === this.o.ownNetns) {
        this.counters.own++;
        continue;
      }
      const p = r.p;
      const c = r.comment();
      const w: WirePacket = {
        timestamp: p.sec * 1000 + p.nsec / 1e6,
        sec: p.sec, nsec: p.nsec, caplen: p.caplen, len: p.len, ifindex: p.ifindex, pkttype: p.pkttype, protocol: p.protocol,
        vlanTci: p.vlanTci, vlanTpid: p.vlanTpid, linkType: r.linkType, netns: r.netns, interfaceName: r.interfaceName,
        data: Buffer.from(p.buf.subarray(p.offset, p.offset + p.caplen)),
        ...(c === undefined ? {} : { comment: c.text }),
        owner: { kind: 'other', namespace: '', pod: '', containers: [], runtime: '', label: r.label.short },
        k8s: { node: this.o.node, namespace: '', podName: '', containerName: '' },
      };
      const d = this.decide(w);
      if (d === true) out.push(w);
      else if (d === false) this.counters.outOfScope++;
      else if (this.neverKnown.has(w.netns)) this.counters.unattributed++;
      else {
        this.held.push({ w, at: now });
        this.heldBytes += w.caplen;
        while (this.held.length > this.maxHeld || this.heldBytes > this.maxHeldBytes) {
          const first = this.held.shift();
          if (first === undefined) break;
          this.heldBytes -= first.w.caplen;
          this.counters.unattributed++;
        }
      }
    }
    this.release(now, out);
  }

  /** Sends what waited and is now known, drops what waited too long; call it now and then. */
  tick(now: number): void {
    this.release(now, []);
  }

  /** Ends: what still waits is unattributed. */
  close(): void {
    this.release(Infinity, []);
  }

  private release(now: number, out: WirePacket[]): void {
    if (this.held.length > 0) {
      const keep: { w: WirePacket; at: number }[] = [];
      const ready: WirePacket[] = [];
      for (const h of this.held) {
        const d = this.decide(h.w);
        if (d === true) ready.push(h.w);
        else if (d === false) this.counters.outOfScope++;
        else if (now - h.at >= this.holdMs) {
          this.counters.unattributed++;
          if (now !== Infinity) this.neverKnown.add(h.w.netns);
        } else keep.push(h);
      }
      this.held.length = 0;
      this.held.push(...keep);
      this.heldBytes = keep.reduce((n, h) => n + h.w.caplen, 0);
      // the held ones are older than this batch
      if (ready.length > 0) out = [...ready, ...out];
    }
    this.counters.held = this.held.length;
    if (out.length === 0) return;
    this.counters.sent += out.length;
    this.o.send(out);
  }
}
