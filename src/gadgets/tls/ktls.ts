// SPDX-License-Identifier: Apache-2.0
/**
 * trace tls, kTLS source (bpf/ktls.bpf.c): the plaintext of kernel TLS sockets at
 * tls_sw_sendmsg / tls_sw_sendpage (TX) and tls_sw_recvmsg / tls_sw_splice_read (RX), with the
 * hook kind src/ebpf/ktls.ts found to work here. Records have the library sources' layout and
 * are put together by the same CallAssembler; filters by pid and mount namespace are checked in
 * the kernel. When the library sources run too, their `tls_calls` map is shared with this
 * object so a library call whose bytes pass kTLS is reported once, by the library call
 * (`openssl+ktls`); bytes only the kernel sees (sendfile, splice) come from here (`ktls`).
 */
import { NotSupportedError, TlscopeError } from '../../errors.js';
import { attachKtls, ktlsSupport, loadKtls, type KtlsFunction, type KtlsHooks } from '../../ebpf/ktls.js';
import type { BpfObject } from '../../ebpf/object.js';
import type { BpfLink } from '../../ebpf/link.js';
import type { BpfMap } from '../../ebpf/map.js';
import { RingBufReader } from '../../ebpf/ringbuf.js';
import { CallAssembler, type TlsCall } from './assembler.js';
import { decodeTlsChunk, type TlsChunk } from './decode.js';

export interface KtlsOptions {
  maxBytes: number;
  ringBytes?: number;
  /** only these processes (tgids), checked in the kernel */
  pids?: readonly number[];
  /** only the mount namespaces added with allowMntns (checked in the kernel) */
  mntnsFilter?: boolean;
  /** the library sources' tls_calls map (one event per chunk when both see it) */
  libraryCalls?: BpfMap;
  signal?: AbortSignal;
  /** force a hook kind (tests); default: what the probe found */
  hooks?: KtlsHooks;
}

/** Kernel counters, by name (bpf/ktls.bpf.c STAT_*). */
const STAT_NAMES = ['calls', 'empty', 'control', 'peek', 'faults', 'records', 'truncated', 'filtered', 'unknownIter', 'shared'] as const;
export type KtlsKernelStats = Record<(typeof STAT_NAMES)[number], bigint>;

export class KtlsSource {
  private readonly links: BpfLink[];
  private readonly reader: RingBufReader<TlsChunk>;
  private readonly assembler = new CallAssembler();
  private finalStats: KtlsKernelStats | undefined;
  private closed = false;

  private constructor(private readonly obj: BpfObject, readonly hooks: KtlsHooks, readonly functions: readonly KtlsFunction[], links: BpfLink[], signal: AbortSignal | undefined) {
    this.links = links;
    this.reader = new RingBufReader(obj.map('events'), { decode: decodeTlsChunk, lostCounter: obj.map('tlscope_lost'), ...(signal === undefined ? {} : { signal }) });
  }

  static open(opts: KtlsOptions): KtlsSource {
    const support = ktlsSupport();
    if (!support.supported || support.hooks === undefined) throw new NotSupportedError('kTLS source', support.reason ?? 'not supported');
    const hooks = opts.hooks ?? support.hooks;
    const pids = opts.pids ?? [];
    const obj = loadKtls(hooks, support.functions, {
      constants: {
        max_bytes: opts.maxBytes,
        self_tgid: process.pid,
        filter_pids: pids.length > 0 ? 1 : 0,
        filter_mntns: opts.mntnsFilter === true ? 1 : 0,
      },
      ...(opts.ringBytes === undefined ? {} : { maxEntries: { events: opts.ringBytes } }),
      ...(opts.libraryCalls === undefined ? {} : { reuseMaps: { tls_calls: opts.libraryCalls } }),
    });
    try {
      for (const pid of pids) obj.map('ktls_pids').update(u32(pid), Buffer.from([1]));
      const links = attachKtls(obj, hooks, support.functions);
      return new KtlsSource(obj, hooks, support.functions, links, opts.signal);
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  /** Lets a mount namespace through the kernel filter (with mntnsFilter). */
  allowMntns(inode: number): void {
    if (this.closed) return;
    try {
      this.obj.map('ktls_mntns').update(u32(inode), Buffer.from([1]));
    } catch (e) {
      throw new TlscopeError('ERR_KTLS_FILTER', `cannot add mount namespace ${inode} to the kTLS filter: ${(e as Error).message}`);
    }
  }

  dropMntns(inode: number): void {
    if (!this.closed) this.obj.map('ktls_mntns').delete(u32(inode));
  }

  /** Calls as they complete; ends after close(). */
  async *calls(): AsyncGenerator<TlsCall[]> {
    for await (const batch of this.reader) {
      const out: TlsCall[] = [];
      for (const chunk of batch) this.assembler.push(chunk, out);
      this.assembler.expire(out);
      if (out.length > 0) yield out;
    }
    const rest: TlsCall[] = [];
    this.assembler.flush(rest);
    if (rest.length > 0) yield rest;
  }

  lost(): bigint {
    return this.reader.lost();
  }

  get incompleteCalls(): number {
    return this.assembler.incomplete;
  }

  kernelStats(): KtlsKernelStats {
    if (this.finalStats !== undefined) return this.finalStats;
    const m = this.obj.map('ktls_stats');
    return Object.fromEntries(STAT_NAMES.map((n, i) => [n, m.sumU64(i)])) as KtlsKernelStats;
  }

  /** Detaches, reads what the kernel queued, frees the object. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.links) l.close();
    await this.reader.close();
    this.finalStats = this.kernelStats();
    this.obj.close();
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}

/** Batches from several async sources, in arrival order; ends when all have ended. */
export async function* mergeBatches<T>(sources: readonly AsyncIterable<T[]>[]): AsyncGenerator<T[]> {
  const its = sources.map((s) => s[Symbol.asyncIterator]());
  const pending = new Map<number, Promise<{ i: number; r: IteratorResult<T[]> }>>();
  const next = (i: number): void => {
    const it = its[i];
    if (it !== undefined) pending.set(i, it.next().then((r) => ({ i, r })));
  };
  its.forEach((_, i) => next(i));
  while (pending.size > 0) {
    const { i, r } = await Promise.race(pending.values());
    if (r.done === true) {
      pending.delete(i);
      continue;
    }
    next(i);
    yield r.value;
  }
}
