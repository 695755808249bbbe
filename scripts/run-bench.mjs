#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Runs the benchmarks (`npm run bench`): every compiled dist/bench/<name>/run.js in turn, or
// only the ones named. Options after the names go to each run.js unchanged.
//
//   npm run build && npm run bench                  every benchmark
//   npm run bench -- ringbuf --quick                 one, with its own options
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = join(root, 'dist', 'bench');

const args = process.argv.slice(2);
const firstOption = args.findIndex((a) => a.startsWith('-'));
const names = firstOption < 0 ? args : args.slice(0, firstOption);
const passThrough = firstOption < 0 ? [] : args.slice(firstOption);

const available = existsSync(benchDir)
  ? readdirSync(benchDir, { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(join(benchDir, d.name, 'run.js')))
      .map((d) => d.name)
      .sort()
  : [];
if (available.length === 0) {
  console.error('no compiled benchmarks under dist/bench: run `npm run build` first');
  process.exit(1);
}
const unknown = names.filter((n) => !available.includes(n));
if (unknown.length > 0) {
  console.error(`unknown benchmark ${unknown.join(', ')}; available: ${available.join(', ')}`);
  process.exit(2);
}

let failed = 0;
for (const name of names.length > 0 ? names : available) {
  console.error(`\n=== bench/${name}`);
  const r = spawnSync(process.execPath, [join(benchDir, name, 'run.js'), ...passThrough], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) {
    failed++;
    console.error(`bench/${name} failed (${r.signal ?? `exit ${r.status}`})`);
  }
}
process.exit(failed > 0 ? 1 : 0);
