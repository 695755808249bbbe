// SPDX-License-Identifier: Apache-2.0
/**
 * bench/sni/pipeline: the user-space cost of trace sni per ClientHello, without the kernel:
 * ring records laid out as bpf/include/sni.h (one first segment per hello, owner known, each
 * hello with its own name, client random and source port, ~1.8 KB post-quantum hellos) in one
 * RingBatch, then
 *   objects  decodeSniSegment per record (an object and a payload copy each) + SniPipeline.process
 *   batch    SniPipeline.processBatch over the batch (fields read in place)
 * in the same process, alternating, so the two are compared on the same load.
 *
 *   npm run build && node dist/bench/sni/pipeline.js [--hellos 4096] [--seconds 2] [--rounds 3]
 *
 * With TLSCOPE_CPU_PROFILE=FILE.cpuprofile the batch path is profiled.
 */
import { RingBatch } from '../../src/ebpf/ringbuf.js';
import { decodeSniSegment, SNI_EVENT_LAYOUT, type SniSegment } from '../../src/gadgets/sni/decode.js';
import { SniPipeline } from '../../src/gadgets/sni/pipeline.js';
import { buildClientHello } from '../../test/helpers/clienthello.js';
import { startCpuProfile } from '../../src/cli/profile.js';
import { benchOptions, numberOption } from '../common.js';

const L = SNI_EVENT_LAYOUT;

/** `n` records, 8-byte aligned with their 8-byte ring headers, as drainBatch hands them out. */
function buildBatch(n: number, round: number): RingBatch {
  const hello = buildClientHello({ serverName: 'h00000000.sni-bench.test', alpn: ['h2', 'http/1.1'], grease: true, postQuantum: true, seed: 42 });
  const nameAt = (hello.serverNameOffset as number) + 1;
  const recLen = L.size + hello.bytes.length;
  const stride = (recLen + 8 + 7) & ~7;
  const bytes = new Uint8Array(stride * n);
  const dv = new DataView(bytes.buffer);
  const offsets = new Int32Array(n);
  const lengths = new Int32Array(n);
  const comm = new TextEncoder().encode('generator');
  for (let i = 0; i < n; i++) {
    const at = i * stride + 8;
    offsets[i] = at;
    lengths[i] = recLen;
    dv.setUint32(at - 8, recLen, true);
    dv.setBigUint64(at + L.ts_ns, BigInt(1e9 + i * 1000 + round * 1e9), true);
    bytes.set([127, 0, 0, 1], at + L.tuple);
    bytes.set([127, 0, 0, 1], at + L.tuple + 16);
    const sport = 1024 + ((i + round * n) % 60000);
    dv.setUint16(at + L.tuple + 32, sport, true);
    dv.setUint16(at + L.tuple + 34, 8443, true);
    dv.setUint8(at + L.tuple + 36, 4);
    dv.setUint8(at + L.tuple + 37, 6);
    const o = at + L.owner;
    dv.setBigUint64(o, 1n, true);
    dv.setUint32(o + 8, 4242, true);
    dv.setUint32(o + 12, 4242, true);
    dv.setUint32(o + 24, 4026531841, true);
    dv.setUint32(o + 28, 4026531840, true);
    bytes.set(comm, o + 40);
    dv.setUint8(at + L.owner_known, 1);
    dv.setUint32(at + L.seq, 1000 + i, true);
    dv.setUint32(at + L.payload_len, hello.bytes.length, true);
    dv.setUint32(at + L.captured_len, hello.bytes.length, true);
    dv.setUint32(at + L.ifindex, 1, true);
    dv.setUint8(at + L.first, 1);
    const p = at + L.size;
    bytes.set(hello.bytes, p);
    const tag = ((i + round * n) >>> 0).toString(16).padStart(8, '0');
    for (let k = 0; k < 8; k++) bytes[p + nameAt + k] = tag.charCodeAt(k);
    dv.setUint32(p + 11, i + round * n, true); // client random
    dv.setUint32(p + 15, round, true);
  }
  return new RingBatch(bytes, offsets, lengths);
}

function runObjects(p: SniPipeline, b: RingBatch): number {
  const segs: SniSegment[] = [];
  for (let i = 0; i < b.length; i++) segs.push(decodeSniSegment(b.view, b.offsets[i] as number, b.lengths[i] as number));
  return p.process(segs).length;
}

function runBatch(p: SniPipeline, b: RingBatch): number {
  return p.processBatch(b).length;
}

async function main(): Promise<void> {
  const v = benchOptions(process.argv.slice(2), { hellos: { type: 'string' }, seconds: { type: 'string' }, rounds: { type: 'string' } }, 'node dist/bench/sni/pipeline.js [--hellos 4096] [--seconds 2] [--rounds 3]');
  const n = numberOption('hellos', v['hellos'], 1) ?? 4096;
  const seconds = numberOption('seconds', v['seconds'], 0.1) ?? 2;
  const rounds = numberOption('rounds', v['rounds'], 1) ?? 3;
  const batches = Array.from({ length: 64 }, (_, r) => buildBatch(n, r));
  const ways: Record<string, (p: SniPipeline, b: RingBatch) => number> = { objects: runObjects, batch: runBatch };
  const results: Record<string, number[]> = { objects: [], batch: [] };
  const profile = process.env.TLSCOPE_CPU_PROFILE;
  for (let r = 0; r < rounds; r++) {
    for (const [name, run] of Object.entries(ways)) {
      const p = new SniPipeline({ now: () => 0 });
      const prof = name === 'batch' && r === rounds - 1 && profile !== undefined ? await startCpuProfile() : undefined;
      const t0 = process.cpuUsage();
      const w0 = performance.now();
      let hellos = 0;
      let k = 0;
      while (performance.now() - w0 < seconds * 1000) {
        const got = run(p, batches[k++ % batches.length] as RingBatch);
        if (k <= batches.length && got !== n) throw new Error(`${name}: ${got} events for ${n} hellos`);
        hellos += n;
      }
      const cpu = process.cpuUsage(t0);
      await prof?.stop();
      results[name]?.push(((cpu.user + cpu.system) * 1000) / hellos);
    }
  }
  const best = (xs: number[]): number => Math.min(...xs);
  const o = best(results['objects'] as number[]);
  const b = best(results['batch'] as number[]);
  process.stdout.write(`bench/sni/pipeline: ${n} hellos per batch, ${rounds} rounds of ${seconds} s each way, CPU ns per hello (best round)\n`);
  process.stdout.write(`  objects (decodeSniSegment + process): ${o.toFixed(0)} ns  [${(results['objects'] as number[]).map((x) => x.toFixed(0)).join(', ')}]\n`);
  process.stdout.write(`  batch   (processBatch in place):       ${b.toFixed(0)} ns  [${(results['batch'] as number[]).map((x) => x.toFixed(0)).join(', ')}]\n`);
  process.stdout.write(`  batch / objects: ${(b / o).toFixed(2)}\n`);
}

await main();
