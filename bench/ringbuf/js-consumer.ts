// SPDX-License-Identifier: Apache-2.0
/**
 * bench/ringbuf: tlscope's own consumer of dist/bpf/selftest.bpf.o (program on_getppid),
 * reading the ring with RingBufReader (mmap'd pages walked in TypeScript, drained on a timer
 * plus epoll readiness, batches through the async iterator). The program submits with
 * BPF_RB_NO_WAKEUP (wakeup=0), as every tlscope program does.
 *
 * Same protocol as consumer.c: prints "ready" once attached, one JSON line of results once
 * received + lost reached --expect (or it went idle), then waits for a line on stdin before
 * it detaches and exits.
 *
 *   node dist/bench/ringbuf/js-consumer.js --pid PID --burst B --expect N
 *        [--obj path.bpf.o] [--interval-ms 5] [--ring-bytes BYTES] [--idle-ms 2000]
 *        [--decode seq|object|batch] [--max-per-drain N] [--profile out.cpuprofile] [--backlog 1]
 *
 * --backlog 1: after "ready", wait for a line on stdin before reading (the ring fills first),
 * to time draining a full ring without the producer setting the pace.
 * --profile samples the CPU from attach to the result (written as a .cpuprofile for Chrome
 * DevTools or speedscope). `node --cpu-prof` cannot be used: its SIGPROF interrupts the
 * verifier, which then fails the load with EAGAIN.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { createInterface } from 'node:readline';
import { datasecVars } from '../../src/ebpf/btf.js';
import { bpf, type Ptr } from '../../src/ebpf/native.js';
import { BpfObject, objectPath, type LoadOptions } from '../../src/ebpf/object.js';
import { RingBatchReader, RingBufReader, type Decoder, type RingReaderOptions } from '../../src/ebpf/ringbuf.js';

interface Args {
  obj: string;
  pid: number;
  burst: number;
  expect: number;
  intervalMs: number;
  ringBytes: number;
  idleMs: number;
  decode: 'seq' | 'object' | 'batch';
  maxPerDrain: number;
  profile: string;
  backlog: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { obj: 'selftest', pid: 0, burst: 1, expect: 0, intervalMs: 5, ringBytes: 0, idleMs: 2000, decode: 'seq', maxPerDrain: 0, profile: '', backlog: false };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i];
    const v = argv[i + 1];
    if (v === undefined) usage();
    switch (k) {
      case '--obj': a.obj = v; break;
      case '--pid': a.pid = Number(v); break;
      case '--burst': a.burst = Number(v); break;
      case '--expect': a.expect = Number(v); break;
      case '--interval-ms': a.intervalMs = Number(v); break;
      case '--ring-bytes': a.ringBytes = Number(v); break;
      case '--idle-ms': a.idleMs = Number(v); break;
      case '--max-per-drain': a.maxPerDrain = Number(v); break;
      case '--profile': a.profile = v; break;
      case '--backlog': a.backlog = v === '1'; break;
      case '--decode':
        if (v !== 'seq' && v !== 'object' && v !== 'batch') usage();
        a.decode = v;
        break;
      default: usage();
    }
  }
  if (!(a.pid > 0) || !(a.expect > 0) || !(a.intervalMs > 0)) usage();
  return a;
}

function usage(): never {
  process.stderr.write('usage: js-consumer --pid PID --burst B --expect N [--obj selftest.bpf.o] [--interval-ms 5] [--ring-bytes BYTES] [--idle-ms 2000] [--decode seq|object|batch] [--max-per-drain N] [--profile out.cpuprofile] [--backlog 1]\n');
  process.exit(2);
}

const U32 = 2 ** 32;
const nowNs = (): number => Number(process.hrtime.bigint()); // CLOCK_MONOTONIC, like bpf_ktime_get_ns()

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const load: LoadOptions = {
    programs: ['on_getppid'],
    constants: { target_tgid: args.pid, burst: args.burst, wakeup: 0 },
  };
  if (args.ringBytes > 0) load.maxEntries = { events: args.ringBytes };
  const obj = BpfObject.load(args.obj, load);
  const link = obj.program('on_getppid').attachTracepoint('syscalls', 'sys_enter_getppid');

  // struct selftest_event { u64 seq; u64 ts_ns; u32 cpu; u32 pad; } — the seq and the
  // timestamp are read as two u32 halves into doubles (exact below 2^53) to avoid a BigInt
  // per event.
  let firstTs = 0;
  let lastTs = 0;
  const tsAt = (dv: DataView, off: number): number => dv.getUint32(off + 8, true) + dv.getUint32(off + 12, true) * U32;
  const decodeSeq: Decoder<number> = (dv, off) => {
    lastTs = tsAt(dv, off);
    if (firstTs === 0) firstTs = lastTs;
    return dv.getUint32(off, true) + dv.getUint32(off + 4, true) * U32;
  };
  // A gadget-like decoder: one object per event.
  const decodeObject: Decoder<{ seq: number; tsNs: number; cpu: number }> = (dv, off) => {
    lastTs = tsAt(dv, off);
    if (firstTs === 0) firstTs = lastTs;
    return { seq: dv.getUint32(off, true) + dv.getUint32(off + 4, true) * U32, tsNs: lastTs, cpu: dv.getUint32(off + 16, true) };
  };

  const profiler = args.profile === '' ? undefined : new Profiler(args.profile);
  const base = { lostCounter: obj.map('tlscope_lost'), intervalMs: args.intervalMs, ...(args.maxPerDrain > 0 ? { maxPerDrain: args.maxPerDrain } : {}) };
  let received = 0;
  let bytes = 0;
  let nextSeq = 0;
  let outOfOrder = 0;
  let batches = 0;
  let firstSeen = 0;
  let lastDelivery = 0;
  let lastProgress = nowNs();
  let idleStop = false;
  // How long the event loop went without running a timer: a reader that keeps the loop busy
  // in microtasks starves timers, I/O and signal handlers of everything else in the process.
  let loopMaxGapMs = 0;

  const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  /** --backlog: says ready and waits for the producer to have filled the ring before the reader opens. */
  const awaitBacklog = async (): Promise<void> => {
    if (!args.backlog) return;
    process.stdout.write('ready\n');
    await stdin.next();
    lastProgress = nowNs();
  };
  /**
   * Watches a reader: ends the run when everything produced is accounted for (some may be lost,
   * then no batch would ever say so) or when nothing arrives any more; measures the event
   * loop's longest gap. Then starts the profiler and says ready (unless --backlog did). Returns
   * the watchdog's stop.
   */
  const watch = async (reader: { lost(): bigint; close(opts: { drain: boolean }): Promise<void> }): Promise<() => void> => {
    let lastTick = nowNs();
    const watchdog = setInterval(() => {
      const t = nowNs();
      loopMaxGapMs = Math.max(loopMaxGapMs, (t - lastTick) / 1e6);
      lastTick = t;
      if (t - lastProgress < 50e6) return; // events are flowing; the lost counter (a map lookup) can wait
      if (received + Number(reader.lost()) >= args.expect) void reader.close({ drain: false });
      else if (t - lastProgress > args.idleMs * 1e6 && (received > 0 || t - lastProgress > 30 * args.idleMs * 1e6)) {
        idleStop = true;
        void reader.close({ drain: false });
      }
    }, 50);
    await profiler?.start();
    if (!args.backlog) process.stdout.write('ready\n');
    return () => {
      clearInterval(watchdog);
      loopMaxGapMs = Math.max(loopMaxGapMs, (nowNs() - lastTick) / 1e6);
    };
  };
  /** A batch arrived: times and counts it. */
  const delivered = (): void => {
    const t = nowNs();
    if (firstSeen === 0) firstSeen = t;
    lastDelivery = t;
    lastProgress = t;
    batches++;
  };
  const run = async <T>(opts: RingReaderOptions<T>, seqOf: (v: T) => number): Promise<RingBufReader<T>> => {
    await awaitBacklog();
    const reader = new RingBufReader(obj.map('events'), opts);
    const stopWatching = await watch(reader);
    for await (const batch of reader) {
      delivered();
      for (let i = 0; i < batch.length; i++) {
        const s = seqOf(batch[i] as T);
        if (s !== nextSeq) outOfOrder++;
        nextSeq = s + 1;
      }
      received += batch.length;
      bytes += batch.length * 24;
      if (received >= args.expect) break; // the iterator's return() closes the reader
    }
    stopWatching();
    await reader.close({ drain: false });
    return reader;
  };

  // --decode batch: RingBatchReader, the fields read on demand from the batch's copy
  const runBatch = async (): Promise<RingBatchReader> => {
    await awaitBacklog();
    const reader = new RingBatchReader(obj.map('events'), base);
    const stopWatching = await watch(reader);
    for await (const batch of reader) {
      delivered();
      const { view, offsets } = batch;
      const n = offsets.length;
      for (let i = 0; i < n; i++) {
        const off = offsets[i] as number;
        const s = view.getUint32(off, true) + view.getUint32(off + 4, true) * U32;
        if (s !== nextSeq) outOfOrder++;
        nextSeq = s + 1;
      }
      if (n > 0) {
        lastTs = tsAt(view, offsets[n - 1] as number);
        if (firstTs === 0) firstTs = tsAt(view, offsets[0] as number);
      }
      received += n;
      bytes += n * 24;
      if (received >= args.expect) break;
    }
    stopWatching();
    await reader.close({ drain: false });
    return reader;
  };

  const reader =
    args.decode === 'seq'
      ? await run<number>({ ...base, decode: decodeSeq }, (s) => s)
      : args.decode === 'batch'
        ? await runBatch()
        : await run({ ...base, decode: decodeObject }, (e) => e.seq);

  await profiler?.stop();
  const lost = Number(obj.map('tlscope_lost').sumU64(0));
  const emitted = readBssU64(obj, args.obj, 'emitted');
  const result = {
    consumer: args.decode === 'seq' ? 'js' : args.decode === 'batch' ? 'js-batch' : 'js-object',
    received,
    bytes,
    lost,
    emitted,
    expected: args.expect,
    outOfOrder,
    batches,
    firstSeenNs: firstSeen,
    lastDeliveryNs: lastDelivery,
    firstEventTsNs: firstTs,
    lastEventTsNs: lastTs,
    idleStop,
    drains: reader.stats.drains,
    loopMaxGapMs,
    decodeErrors: reader.stats.decodeErrors,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);

  await stdin.next(); // a line or EOF
  await stdin.return?.();
  link.close();
  obj.close();
}

/** CPU sampling through the inspector, started only after the programs are loaded. */
class Profiler {
  private readonly session = new Session();
  constructor(private readonly file: string) {}
  async start(): Promise<void> {
    this.session.connect();
    await this.session.post('Profiler.enable');
    await this.session.post('Profiler.setSamplingInterval', { interval: 200 });
    await this.session.post('Profiler.start');
  }
  async stop(): Promise<void> {
    const { profile } = await this.session.post('Profiler.stop');
    writeFileSync(this.file, JSON.stringify(profile));
    this.session.disconnect();
  }
}

/** A u64 global of the loaded object's .bss; its offset comes from the object file's BTF. */
function readBssU64(obj: BpfObject, nameOrPath: string, name: string): number {
  const path = nameOrPath.endsWith('.o') ? nameOrPath : objectPath(nameOrPath);
  const file = bpf.object_open_file(path, null) as Ptr | null;
  if (file === null) return -1;
  try {
    const btf = bpf.object_btf(file) as Ptr | null;
    const v = btf === null ? undefined : datasecVars(btf, '.bss').find((d) => d.name === name);
    const value = obj.map('.bss').lookup(new Uint8Array(4));
    return v === undefined || v.size !== 8 || value === undefined ? -1 : Number(value.readBigUInt64LE(v.offset));
  } finally {
    bpf.object_close(file);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`js-consumer: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
