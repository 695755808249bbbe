// SPDX-License-Identifier: Apache-2.0
/**
 * Which process uses which TCP connection or connected UDP socket, learnt in the kernel
 * (bpf/capture_owner.bpf.c: the sock_send_length and sock_recv_length tracepoints run in the
 * process that sends or receives) and kept here by flow key, so that a captured packet can name
 * the process that sent it and the one it was for.
 *
 * Limits: a socket is known once its process sends or receives data on it after the capture
 * started (a SYN, or a connection that stays silent, has no owner yet); unconnected UDP
 * (sendto without connect) has no 4-tuple and is not attributed; the tracepoints exist since
 * Linux 6.3 — on older kernels attribution is off and tlscope says why.
 */
import { BpfObject } from '../../ebpf/object.js';
import type { BpfLink } from '../../ebpf/link.js';
import { PolledRingBuffer } from '../../ebpf/ringbuf.js';
import { requireFeature } from '../../ebpf/features.js';
import { errorMessage } from '../../errors.js';
import { decodeTuple, TUPLE_LAYOUT } from '../../net/tuple.js';
import { flowKeyOfTuple } from '../../protocols/dissect.js';
import { decodeProc, type ProcRecord } from '../proc-record.js';

/** struct capture_owner (bpf/include/capture.h): tuple@0 (struct tlscope_tuple, src/net/tuple.ts),
 * proc@40 (struct tlscope_proc, src/gadgets/proc-record.ts); 88 bytes. */
export const CAPTURE_OWNER_LAYOUT = { size: 88, tuple: 0, proc: 40 } as const;
export const CAPTURE_OWNER_SIZE = CAPTURE_OWNER_LAYOUT.size;

export function decodeOwner(view: DataView, at: number): { key: string; owner: ProcRecord } {
  const bytes = new Uint8Array(view.buffer, view.byteOffset + at, CAPTURE_OWNER_SIZE);
  const t = decodeTuple(view, at + CAPTURE_OWNER_LAYOUT.tuple);
  // the kernel only sends IPv4/IPv6 tuples; a record without a family is keyed as IPv4 (it matches no packet)
  const key = t === undefined
    ? flowKeyOfTuple(bytes[TUPLE_LAYOUT.protocol] ?? 0, 4, bytes.subarray(0, 4), view.getUint16(at + TUPLE_LAYOUT.sport, true), bytes.subarray(16, 20), view.getUint16(at + TUPLE_LAYOUT.dport, true))
    : flowKeyOfTuple(t.protocol, t.family, t.saddrBytes, t.sport, t.daddrBytes, t.dport);
  return { key, owner: decodeProc(view, at + CAPTURE_OWNER_LAYOUT.proc) };
}

type Decoded = { key: string; owner: ProcRecord };

export class FlowOwners {
  private readonly owners = new Map<string, ProcRecord>();
  private readonly links: BpfLink[] = [];
  private readonly ring: PolledRingBuffer<Decoded>;
  private finalLost: bigint | undefined;
  /** bumps whenever an owner is learnt, so callers can cache what they derive */
  version = 0;

  private constructor(private readonly obj: BpfObject, private readonly capacity: number) {
    this.ring = new PolledRingBuffer<Decoded>(obj.map('owners'), (v, at) => decodeOwner(v, at));
  }

  /**
   * Loads and attaches the kernel side; undefined (with `warn` told why) where the kernel
   * cannot: capture works on without attribution.
   */
  static tryOpen(warn: (msg: string) => void, capacity = 65536): FlowOwners | undefined {
    let obj: BpfObject | undefined;
    try {
      requireFeature('ringbuf');
      requireFeature('tp_btf');
      obj = BpfObject.load('capture_owner');
      const owners = new FlowOwners(obj, capacity);
      const failures: string[] = [];
      for (const p of ['owner_send', 'owner_recv']) {
        try {
          owners.links.push(obj.program(p).attachTrace());
        } catch (e) {
          failures.push(`${p}: ${errorMessage(e)}`);
        }
      }
      if (owners.links.length === 0) {
        void owners.close();
        warn(`no process attribution on this kernel (${failures.join('; ')})`);
        return undefined;
      }
      return owners;
    } catch (e) {
      obj?.close();
      warn(`no process attribution: ${errorMessage(e)} (the sock_send_length/sock_recv_length tracepoints need Linux ≥ 6.3)`);
      return undefined;
    }
  }

  private apply(batch: readonly Decoded[]): void {
    for (const { key, owner } of batch) {
      this.owners.delete(key);
      this.owners.set(key, owner);
      if (this.owners.size > this.capacity) this.owners.delete(this.owners.keys().next().value as string);
    }
    if (batch.length > 0) this.version++;
  }

  /**
   * Reads what the kernel has queued (call before reading packets, so that owners come first;
   * and now and then when no packets come, so that the ring does not fill).
   */
  poll(): void {
    this.apply(this.ring.read());
  }

  /** The process using the socket whose local end is the key's source. */
  get(key: string): ProcRecord | undefined {
    return this.owners.get(key);
  }

  get size(): number {
    return this.owners.size;
  }

  /** Records lost because the owner ring was full. */
  lost(): bigint {
    return this.finalLost ?? this.obj.map('tlscope_lost').sumU64(0);
  }

  async close(): Promise<void> {
    if (this.finalLost !== undefined) return;
    for (const l of this.links) l.close();
    this.links.length = 0;
    this.finalLost = this.lost();
    this.ring.close();
    this.obj.close();
  }
}
