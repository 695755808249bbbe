// SPDX-License-Identifier: Apache-2.0
/**
 * What trace sni's owner hooks cost the traced host, per system call: a C loop
 * (`syscall-loop.c`) times getppid, write to /dev/null, to a pipe and to a loopback TCP
 * connection past the 16 KiB owner limit, with nothing attached, with the syscall-tracepoint
 * fallback (`syscalls`, kernels before 6.16) and with `tcp_sendmsg_locked` (6.16+), the hooks
 * loaded in-process through SniGadget exactly as `trace sni` loads them. The order of the hooks
 * rotates every rep; each cell is the median of the reps.
 *
 *   npm run build && node dist/bench/sni/owner-cost.js [--reps 7] [--quick]
 *
 * Needs root and cc. Prints a markdown table; writes JSON to bench/out/.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probeFeature } from '../../src/ebpf/features.js';
import { SniGadget, type OwnerHook } from '../../src/gadgets/sni/gadget.js';
import { benchOptions, fixed, machineBusyPct, markdownTable, median, numberOption, ROOT, waitQuiet, writeResults } from '../common.js';

const LOOP_SRC = join(ROOT, 'bench/sni/syscall-loop.c');
const MODES = [['getppid', 2_000_000], ['devnull', 2_000_000], ['pipe', 500_000], ['tcp', 300_000]] as const;
type Hook = 'none' | OwnerHook;

async function main(): Promise<void> {
  const v = benchOptions(process.argv.slice(2), { reps: { type: 'string' }, quick: { type: 'boolean' } },
    'node dist/bench/sni/owner-cost.js [--reps 7] [--quick]   (prices trace sni\'s owner hooks per system call; see bench/sni/owner-cost.ts)');
  const quick = v['quick'] === true;
  if (process.getuid?.() !== 0) throw new Error('bench/sni/owner-cost needs root (it loads BPF programs)');
  const reps = quick ? 3 : numberOption('reps', v['reps'], 1) ?? 7;
  const scale = quick ? 0.2 : 1;
  const hooks: Hook[] = ['none', 'syscalls'];
  const tp = probeFeature('tp_tcp_sendmsg_locked');
  if (tp.supported) hooks.push('tcp_sendmsg_locked');
  else console.error(`tcp_sendmsg_locked: not measured (${tp.reason})`);

  const work = mkdtempSync(join(tmpdir(), 'tlscope-bench-owner-'));
  const results: Record<string, number[]> = {};
  try {
    const loop = join(work, 'syscall-loop');
    execFileSync('cc', ['-O2', '-Wall', '-pthread', '-o', loop, LOOP_SRC]);
    const before = await waitQuiet(10, 30);
    for (let rep = 0; rep < reps; rep++) {
      const order = hooks.map((_, i) => hooks[(i + rep) % hooks.length]!);
      for (const hook of order) {
        const g = hook === 'none' ? undefined : SniGadget.open({ ownerHook: hook });
        try {
          for (const [mode, n] of MODES) {
            const out = execFileSync(loop, [mode, String(Math.round(n * scale))], { encoding: 'utf8' });
            (results[`${mode}/${hook}`] ??= []).push(Number(out.trim().split(' ')[1]));
          }
        } finally {
          await g?.close();
        }
      }
      console.error(`rep ${rep + 1}/${reps} done`);
    }
    const after = await machineBusyPct();
    const head = ['call', ...hooks.map((h) => (h === 'none' ? 'nothing attached (ns)' : `${h} (ns)`)), ...hooks.filter((h) => h !== 'none').map((h) => `${h}: added`)];
    const rows = MODES.map(([mode]) => {
      const base = median(results[`${mode}/none`] ?? []);
      const cells = hooks.map((h) => fixed(median(results[`${mode}/${h}`] ?? []), 0));
      const added = hooks.filter((h) => h !== 'none').map((h) => {
        const d = median(results[`${mode}/${h}`] ?? []) - base;
        return `${d < 0 ? '−' : '+'}${fixed(Math.abs(d), 0)} ns`;
      });
      return [mode, ...cells, ...added];
    });
    console.log(`\n## trace sni owner hooks: cost per system call (median of ${reps} reps; machine busy before ${fixed(before)} %, after ${fixed(after)} %)\n`);
    console.log(markdownTable(head, 'l' + 'r'.repeat(head.length - 1), rows));
    console.log(`\nwrote ${writeResults('sni-owner-cost', { reps, quick, hooks, results })}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(`bench/sni/owner-cost: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
