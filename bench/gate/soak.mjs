#!/usr/bin/env node
// Soak (not CI): the start-hook test with 100 containers per runtime (TLSCOPE_START_RUNS),
// printing the per-runtime counts. usage: node bench/gate/soak.mjs [runs]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
const runs = process.argv[2] ?? '100';
const test = fileURLToPath(new URL('../../dist/test/integration/start/first-act.test.js', import.meta.url));
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', test], { env: { ...process.env, TLSCOPE_START_RUNS: runs }, encoding: 'utf8' });
for (const line of `${r.stdout}`.split('\n')) if (/reported by|✔|✖/.test(line)) console.log(line.trim());
process.exit(r.status ?? 1);
