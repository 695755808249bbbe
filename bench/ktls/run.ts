// SPDX-License-Identifier: Apache-2.0
/**
 * bench/ktls: what the kTLS hooks of `trace tls --sources ktls` (bpf/ktls.bpf.c) add to a
 * kernel-TLS transfer, on a kernel that has kTLS. The development hosts have no CONFIG_TLS, so
 * by default it boots Debian's 6.1 and 6.12 kernels under qemu (scripts/kernel-matrix.sh --run,
 * software emulation) and runs itself inside each one; on a kernel with kTLS (or with --here)
 * it measures where it runs.
 *
 * The transfer: `openssl s_server -WWW -sendfile` (TLS 1.2 AES-128-GCM, kTLS TX through
 * OPENSSL_CONF `Options = KTLS`) serves a file of --size MiB to a python ssl client (kTLS RX),
 * which reads it with recv_into and times request → last byte. So every byte crosses the TX
 * hooks (6.1: tls_sw_sendpage, a call per page; 6.12: tls_sw_sendmsg with an ITER_BVEC) and
 * the RX hooks (tls_sw_recvmsg).
 *
 * Modes, run in turn per rep (the order rotates so none always goes first):
 *   none     the transfer alone
 *   fentry   tlscope trace tls --sources ktls -o json > file, fentry/fexit (TLSCOPE_KTLS_HOOKS)
 *   kprobe   the same with kprobe/kretprobe forced (TLSCOPE_KTLS_HOOKS=kprobe)
 *
 * Columns: MB/s (client-measured, median of --reps) and its ratio to none; BPF µs per call of
 * each hooked function (entry + exit program: run_time_ns / run_cnt from the kernel's BPF
 * statistics, kernel.bpf_stats_enabled set to 1 for the run and restored); BPF µs per 16 KiB
 * of plaintext (a full TLS record) over all programs and both directions; captured = plaintext
 * bytes tlscope reported ÷ bytes moved (server TX + client RX + request both ways), and the
 * records it counted lost (a full ring: its user space, JSON on the same 2 CPUs, fell behind).
 *
 *   npm run build && node dist/bench/ktls/run.js [--quick] [--size 32] [--reps 3]
 *       [--modes none,fentry,kprobe] [--kernels 6.1,6.12] [--here]
 *
 * Needs root, openssl, python3, bpftool (and for the guests what scripts/kernel-matrix.sh
 * needs). Writes JSON to bench/out/ (in a guest: to $KM_OUT, which comes back to the host).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { OUT_DIR, ROOT, benchOptions, fixed, listOption, markdownTable, median, numberOption, sleep, writeResults } from '../common.js';
import { bpfIdsHeldBy, bpfObjectsNow } from '../../test/helpers/bpf-held.js';
import { ktlsSupport } from '../../src/ebpf/ktls.js';

const BIN = join(ROOT, 'dist/src/cli/bin.js');
const MODES = ['none', 'fentry', 'kprobe'] as const;
type Mode = (typeof MODES)[number];

interface Options {
  sizeMiB: number;
  reps: number;
  modes: Mode[];
  kernels: string[];
  here: boolean;
  /** in a guest: where the JSON goes */
  json: string | undefined;
}

const USAGE = 'node dist/bench/ktls/run.js [--quick] [--size 32] [--reps 3] [--modes none,fentry,kprobe] [--kernels 6.1,6.12] [--here]';

function options(argv: string[]): Options {
  const v = benchOptions(argv, {
    quick: { type: 'boolean' }, size: { type: 'string' }, reps: { type: 'string' }, modes: { type: 'string' },
    kernels: { type: 'string' }, here: { type: 'boolean' }, json: { type: 'string' },
  }, USAGE);
  const quick = v['quick'] === true; // 8 MiB, one rep
  const modes = (listOption(v['modes']) ?? [...MODES]).map((m) => {
    if (!(MODES as readonly string[]).includes(m)) throw new Error(`unknown mode ${m}: ${MODES.join(', ')}`);
    return m as Mode;
  });
  return {
    sizeMiB: quick ? 8 : numberOption('size', v['size'], 1) ?? 32,
    reps: quick ? 1 : numberOption('reps', v['reps'], 1) ?? 3,
    modes,
    kernels: listOption(v['kernels'], /[\s,]+/) ?? ['6.1', '6.12'],
    here: v['here'] === true,
    json: typeof v['json'] === 'string' ? v['json'] : undefined,
  };
}

async function until(what: string, cond: () => boolean, timeoutMs = 180_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
    });
  });
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGINT'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const closed = new Promise<void>((r) => child.once('close', () => r()));
  child.kill(signal);
  await Promise.race([closed, sleep(60_000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await closed;
}

/** The python kTLS client: one request, reads to the end, prints bytes and seconds. */
const CLIENT = `
import json, os, socket, ssl, sys, time
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
req = ('GET /%s HTTP/1.0\\r\\n\\r\\n' % sys.argv[2]).encode()
with socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=300) as raw:
    s = ctx.wrap_socket(raw, server_hostname='bench.test')
    ulp = s.getsockopt(socket.IPPROTO_TCP, 31, 16).rstrip(b'\\0').decode()
    buf = bytearray(1 << 20); n = 0
    t0 = time.perf_counter()
    s.sendall(req)
    while True:
        k = s.recv_into(buf)
        if not k:
            break
        n += k
    t1 = time.perf_counter()
print(json.dumps({'pid': os.getpid(), 'ulp': ulp, 'bytes': n, 'request': len(req), 'seconds': t1 - t0}))
`;

interface Transfer {
  pid: number;
  ulp: string;
  bytes: number;
  request: number;
  seconds: number;
}

async function transfer(port: number, env: NodeJS.ProcessEnv): Promise<Transfer> {
  const child = spawn('python3', ['-c', CLIENT, String(port), 'file.bin'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
  if (code !== 0) throw new Error(`the client failed (exit ${code}): ${err}`);
  const t = JSON.parse(out) as Transfer;
  if (t.ulp !== 'tls') throw new Error(`the client's socket is not kTLS (TCP_ULP ${JSON.stringify(t.ulp)})`);
  return t;
}

interface ProgStat {
  name: string;
  runTimeNs: number;
  runCnt: number;
}

/** run_time_ns and run_cnt of the ktls_* programs a process holds (kernel.bpf_stats_enabled = 1). */
function bpfStats(pid: number): ProgStat[] {
  const ids = bpfIdsHeldBy(pid, 'prog');
  return bpfObjectsNow<{ id: number; name?: string; run_time_ns?: number; run_cnt?: number }>('prog')
    .filter((p) => ids.has(p.id) && p.name?.startsWith('ktls_') === true)
    .map((p) => ({ name: p.name ?? '', runTimeNs: p.run_time_ns ?? 0, runCnt: p.run_cnt ?? 0 }));
}

function setBpfStats(on: boolean): void {
  writeFileSync('/proc/sys/kernel/bpf_stats_enabled', on ? '1' : '0');
}

/** The hooked function a program belongs to: ktls_fentry_sendpage → sendpage; ktls_kretprobe → return. */
function hookOf(prog: string): string {
  const m = /^ktls_(?:fentry|fexit|kprobe)_(.+)$/.exec(prog);
  return m?.[1] ?? (prog === 'ktls_kretprobe' ? 'kretprobe' : prog);
}

interface Run {
  mode: Mode;
  rep: number;
  bytes: number;
  seconds: number;
  mbPerS: number;
  /** plaintext bytes tlscope reported, from its exit summary */
  captured: number | undefined;
  /** records tlscope counted lost (the ring was full), from its exit summary */
  lost: number | undefined;
  /** plaintext bytes that crossed kTLS: server TX + client RX + the request both ways */
  moved: number;
  progs: ProgStat[];
  tracerStartS: number | undefined;
}

async function runOnce(mode: Mode, rep: number, port: number, env: NodeJS.ProcessEnv, work: string): Promise<Run> {
  let tracer: ChildProcess | undefined;
  let stderr = '';
  let outFd: number | undefined;
  let tracerStartS: number | undefined;
  const outFile = join(work, `trace-${mode}-${rep}.json`);
  if (mode !== 'none') {
    outFd = openSync(outFile, 'w');
    const t0 = Date.now();
    tracer = spawn(process.execPath, [BIN, 'trace', 'tls', '--sources', 'ktls', '-o', 'json', '-v'], {
      env: { ...process.env, TLSCOPE_KTLS_HOOKS: mode }, stdio: ['ignore', outFd, 'pipe'],
    });
    tracer.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    await until('trace tls to start', () => /tlscope: tracing \d+ file/.test(stderr) || tracer!.exitCode !== null);
    if (tracer.exitCode !== null) throw new Error(`tlscope exited: ${stderr}`);
    const want = mode === 'kprobe' ? 'kprobes' : 'fentry/fexit';
    if (!stderr.includes(`kTLS: ${want} on`)) throw new Error(`tlscope did not report kTLS ${want}: ${stderr}`);
    tracerStartS = (Date.now() - t0) / 1000;
  }
  try {
    const t = await transfer(port, env);
    let progs: ProgStat[] = [];
    let captured: number | undefined;
    let lost: number | undefined;
    if (tracer !== undefined) {
      progs = bpfStats(tracer.pid ?? 0); // the programs ran in the two processes' system calls: complete now
      await stopChild(tracer);
      const m = /(\d+) bytes in (\d+) calls/.exec(stderr);
      captured = m ? Number(m[1]) : undefined;
      const l = /(\d+) events shown, (\d+) lost/.exec(stderr);
      lost = l ? Number(l[2]) : undefined;
    }
    const mb = t.bytes / 1e6;
    return { mode, rep, bytes: t.bytes, seconds: t.seconds, mbPerS: mb / t.seconds, captured, lost, moved: 2 * t.bytes + 2 * t.request, progs, tracerStartS };
  } finally {
    if (tracer !== undefined) await stopChild(tracer);
    if (outFd !== undefined) closeSync(outFd);
    rmSync(outFile, { force: true });
  }
}

interface Result {
  kernel: string;
  hooks: string;
  sendfile: string | undefined;
  sizeMiB: number;
  reps: number;
  runs: Run[];
}

async function measureHere(o: Options): Promise<Result> {
  const support = ktlsSupport();
  if (!support.supported) throw new Error(`this kernel cannot run the kTLS source: ${support.reason ?? '?'}`);
  const work = mkdtempSync(join(tmpdir(), 'tlscope-bench-ktls-'));
  const statsWas = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8').trim() === '1';
  let server: ChildProcess | undefined;
  const runs: Run[] = [];
  try {
    setBpfStats(true);
    const conf = join(work, 'openssl.cnf');
    writeFileSync(conf, 'openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n[ssl_sect]\nsystem_default = ssl_default\n[ssl_default]\nOptions = KTLS\n');
    const env = { ...process.env, OPENSSL_CONF: conf };
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(work, 'key.pem'), '-out', join(work, 'cert.pem'), '-days', '1', '-subj', '/CN=bench.test'], { stdio: 'ignore' });
    writeFileSync(join(work, 'file.bin'), randomBytes(o.sizeMiB << 20));
    const port = await freePort();
    server = spawn('openssl', ['s_server', '-accept', `127.0.0.1:${port}`, '-cert', join(work, 'cert.pem'), '-key', join(work, 'key.pem'), '-WWW', '-sendfile', '-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'],
      { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    server.stdout!.setEncoding('utf8').on('data', (d: string) => (log += d));
    server.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
    await until('s_server to accept', () => log.includes('ACCEPT') || server!.exitCode !== null);
    if (server.exitCode !== null) throw new Error(`s_server exited: ${log}`);
    await transfer(port, env); // warm-up: page cache, module code, python's imports
    for (let rep = 0; rep < o.reps; rep++) {
      const order = o.modes.map((_, i) => o.modes[(i + rep) % o.modes.length] as Mode);
      for (const mode of order) {
        const r = await runOnce(mode, rep, port, env, work);
        runs.push(r);
        console.error(`${mode} rep ${rep}: ${fixed(r.mbPerS, 2)} MB/s${r.captured === undefined ? '' : `, captured ${fixed((100 * r.captured) / r.moved, 1)} %, ${r.lost ?? '?'} lost`}`);
      }
    }
    if (!log.includes('KTLS SENDFILE')) console.error(`warning: s_server did not log KTLS SENDFILE: ${log.slice(-300)}`);
  } finally {
    if (server !== undefined) await stopChild(server, 'SIGTERM');
    setBpfStats(statsWas);
    rmSync(work, { recursive: true, force: true });
  }
  return { kernel: release(), hooks: support.hooks ?? '?', sendfile: support.sendfile, sizeMiB: o.sizeMiB, reps: o.reps, runs };
}

/** The tables for one kernel's result. */
function report(r: Result): string {
  const modes = [...new Set(r.runs.map((x) => x.mode))];
  const rate = (m: Mode): number => median(r.runs.filter((x) => x.mode === m).map((x) => x.mbPerS));
  const base = rate('none');
  const hooks = [...new Set(r.runs.flatMap((x) => x.progs.map((p) => hookOf(p.name))))].filter((h) => h !== 'kretprobe').sort();
  const rows = modes.map((m) => {
    const runs = r.runs.filter((x) => x.mode === m);
    const perHook = hooks.map((h) => {
      // entry + exit (fentry/fexit); kprobe: the entry program + the shared kretprobe's share
      const ns = median(runs.map((x) => {
        const entry = x.progs.filter((p) => hookOf(p.name) === h);
        const calls = Math.max(0, ...entry.map((p) => p.runCnt));
        if (calls === 0) return Number.NaN;
        const ret = x.progs.find((p) => p.name === 'ktls_kretprobe');
        const retNsPerCall = ret !== undefined && ret.runCnt > 0 ? ret.runTimeNs / ret.runCnt : 0;
        return entry.reduce((a, p) => a + p.runTimeNs, 0) / calls + (m === 'kprobe' ? retNsPerCall : 0);
      }));
      const calls = median(runs.map((x) => Math.max(0, ...x.progs.filter((p) => hookOf(p.name) === h).map((p) => p.runCnt))));
      return m === 'none' ? '' : `${fixed(ns / 1000, 2)} (${calls})`;
    });
    const perRecord = median(runs.map((x) => (x.progs.reduce((a, p) => a + p.runTimeNs, 0) / 1000) / (x.moved / 16384)));
    const captured = median(runs.map((x) => (x.captured === undefined ? Number.NaN : (100 * x.captured) / x.moved)));
    const lost = median(runs.map((x) => x.lost ?? Number.NaN));
    return [m, fixed(rate(m), 2), m === 'none' ? '1.00' : fixed(rate(m) / base, 2), ...perHook, m === 'none' ? '' : fixed(perRecord, 2), m === 'none' ? '' : `${fixed(captured, 1)} %`, m === 'none' ? '' : fixed(lost, 0)];
  });
  return [
    `${r.kernel}: ${r.sizeMiB} MiB by sendfile over kTLS (TLS 1.2), median of ${r.reps}; sendfile through ${r.sendfile ?? '?'}; probed hooks ${r.hooks}`,
    '',
    markdownTable(['mode', 'MB/s', '× none', ...hooks.map((h) => `BPF µs/call ${h} (calls)`), 'BPF µs / 16 KiB', 'captured', 'lost records'], `lrr${'r'.repeat(hooks.length)}rrr`, rows),
  ].join('\n');
}

/** On a host without kTLS: the same benchmark inside kernel-matrix guests. */
function inGuests(o: Options, reason: string): number {
  const work = mkdtempSync(join(tmpdir(), 'tlscope-bench-ktls-run-'));
  const out = join(OUT_DIR, `ktls-guests-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(out, { recursive: true });
  const script = join(work, 'bench-ktls.sh');
  const args = ['--here', '--size', String(o.sizeMiB), '--reps', String(o.reps), '--modes', o.modes.join(',')];
  writeFileSync(script, `#!/usr/bin/env bash\n# generated by bench/ktls/run.ts: the benchmark inside a kernel-matrix guest\ncd "$KM_REPO" && exec "$KM_NODE" dist/bench/ktls/run.js ${args.join(' ')} --json "$KM_OUT/ktls.json"\n`);
  console.error(`here: ${reason}; running it in qemu guests of ${o.kernels.join(', ')} (scripts/kernel-matrix.sh --run; software emulation, several minutes per kernel)`);
  let status = 0;
  try {
    execFileSync('bash', [join(ROOT, 'scripts/kernel-matrix.sh'), '--run', script, '--out', out, ...o.kernels], { stdio: 'inherit', cwd: ROOT });
  } catch (e) {
    status = 1;
    console.error(`kernel-matrix.sh failed: ${(e as Error).message}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const results: Result[] = [];
  for (const k of existsSync(out) ? readdirSync(out).sort() : []) {
    const f = join(out, k, 'ktls.json');
    if (existsSync(f) && statSync(f).size > 0) results.push(JSON.parse(readFileSync(f, 'utf8')) as Result);
    else console.error(`${k}: no result (see ${join(out, k, 'run.log')})`);
  }
  for (const r of results) console.log(`\n${report(r)}`);
  console.log('\nMeasured under emulation (qemu TCG): compare the modes with each other, not with real hardware.');
  const file = writeResults('ktls', { kernels: o.kernels, results });
  console.error(`results: ${file} (guest logs: ${out})`);
  return results.length === o.kernels.length ? status : 1;
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('bench/ktls needs root (BPF, bpf_stats, and qemu guests)');
  const support = o.here ? undefined : ktlsSupport();
  if (support !== undefined && !support.supported) {
    process.exitCode = inGuests(o, support.reason ?? 'no kTLS');
    return;
  }
  const r = await measureHere(o);
  console.log(report(r));
  if (o.json !== undefined) writeFileSync(o.json, `${JSON.stringify(r, null, 2)}\n`);
  else console.error(`results: ${writeResults('ktls', r)}`);
}

main().catch((e: unknown) => {
  console.error(`bench/ktls: ${(e as Error).message}`);
  process.exit(1);
});
