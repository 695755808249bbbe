// SPDX-License-Identifier: Apache-2.0
/**
 * bench/gate: what the container start hook adds to a container start. `RUNTIME run --rm IMAGE
 * true` (or `ctr run --rm`) N times in each of three modes, interleaved in blocks of 10 so drift
 * of a shared machine falls on every mode alike:
 *   off    — nothing of tlscope runs;
 *   hook   — a ContainerIndex with the start hook in this process (each start held until the
 *            index's subscribers have run: here none, so the hook's own cost);
 *   sni    — a real `tlscope trace sni` beside it (unfiltered: every start held while it opens
 *            a packet socket in the container's network namespace).
 * Prints p50/p99 of the run's wall time per mode and what each adds over off, plus the hook's
 * own hold times (from the worker's clock). A benchmark, not a timed test.
 *
 *   npm run build && node dist/bench/gate/run.js --runs 200 --runtime docker
 */
import { execFile, spawn } from 'node:child_process';
import { benchOptions, fixed, markdownTable, numberOption, sleep, writeResults, ROOT } from '../common.js';
import { ContainerIndex } from '../../src/containers/index.js';

const opts = benchOptions(process.argv.slice(2), {
  runs: { type: 'string' },
  runtime: { type: 'string' },
  image: { type: 'string' },
}, 'node dist/bench/gate/run.js [--runs N (200 per mode)] [--runtime docker|containerd|podman] [--image REF]');
const runs = numberOption('runs', opts['runs'], 1) ?? 200;
const runtime = typeof opts['runtime'] === 'string' ? opts['runtime'] : 'docker';
const image = typeof opts['image'] === 'string' ? opts['image'] : defaultImage(runtime);

function defaultImage(rt: string): string {
  const tag = process.env['TLSCOPE_BENCH_IMAGE_TAG'] ?? '';
  if (tag === '') throw new Error('give --image (a local image with /bin/true), or TLSCOPE_BENCH_IMAGE_TAG');
  return rt === 'docker' ? `tlscope-test:${tag}` : rt === 'podman' ? `localhost/tlscope-test:${tag}` : `docker.io/library/tlscope-test:${tag}`;
}

let counter = 0;
function runOne(): Promise<number> {
  const name = `tlscope-bench-gate-${process.pid}-${counter++}`;
  const [cmd, args] = runtime === 'containerd'
    ? ['ctr', ['run', '--rm', image, name, 'true']]
    : [runtime, ['run', '--rm', '--name', name, image, 'true']];
  const t0 = performance.now();
  return new Promise((resolve, reject) => execFile(cmd, args, { timeout: 60_000 }, (err, _o, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr}`)) : resolve(performance.now() - t0))));
}

function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

type Mode = 'off' | 'hook' | 'sni';
const times: Record<Mode, number[]> = { off: [], hook: [], sni: [] };
let heldMs: number[] = [];

async function block(mode: Mode, n: number): Promise<void> {
  let stop: () => Promise<void> = async () => {};
  if (mode === 'hook') {
    const index = new ContainerIndex({ hook: true });
    await index.start();
    if (!index.hookStatus().active) throw new Error(`the start hook is not active: ${index.hookStatus().reason}`);
    stop = async () => {
      heldMs = heldMs.concat(index.hookStatus().stats.heldMs);
      await index.close();
    };
  } else if (mode === 'sni') {
    const child = spawn(process.execPath, [`${ROOT}dist/src/cli/bin.js`, 'trace', 'sni', '-o', 'json'], { stdio: ['ignore', 'ignore', 'pipe'] });
    await sleep(3000); // its index and hook are up well within this
    if (child.exitCode !== null) throw new Error('tlscope trace sni exited');
    stop = async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      await exited;
    };
  }
  try {
    for (let i = 0; i < n; i++) times[mode].push(await runOne());
  } finally {
    await stop();
  }
}

await runOne(); // the image's layers in the page cache
for (let done = 0; done < runs; done += 10) {
  const n = Math.min(10, runs - done);
  for (const mode of ['off', 'hook', 'sni'] as const) await block(mode, n);
  process.stderr.write(`${done + n}/${runs}\r`);
}
const row = (mode: Mode): string[] => {
  const p50 = pct(times[mode], 50);
  const p99 = pct(times[mode], 99);
  return [mode, String(times[mode].length), fixed(p50), fixed(p99), mode === 'off' ? '' : fixed(p50 - pct(times.off, 50)), mode === 'off' ? '' : fixed(p99 - pct(times.off, 99))];
};
process.stdout.write(`\n${runtime} run --rm ${image} true, ${runs} per mode\n\n`);
process.stdout.write(`${markdownTable(['mode', 'runs', 'p50 ms', 'p99 ms', '+p50 ms', '+p99 ms'], 'lrrrrr', (['off', 'hook', 'sni'] as const).map(row))}\n`);
process.stdout.write(`\nhook hold (worker clock): p50 ${fixed(pct(heldMs, 50), 2)} ms, p99 ${fixed(pct(heldMs, 99), 2)} ms, max ${fixed(Math.max(...heldMs), 2)} ms over ${heldMs.length} holds\n`);
const file = writeResults('gate', { runtime, image, runs, times, heldMs });
process.stderr.write(`results: ${file}\n`);
