// SPDX-License-Identifier: Apache-2.0
// scripts/run-tests.mjs itself, run on fixture suites (TLSCOPE_TEST_DIST): a suite where every
// test skipped fails the run; a failing hook is counted as a failure (before, after, inside
// describe); a subtest's failure is not counted twice; a crashed file counts; a real pass passes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RUNNER = fileURLToPath(new URL('../../../../scripts/run-tests.mjs', import.meta.url));
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const HEAD = "const { test, describe, before, after } = require('node:test');\n";

interface RunnerResult {
  code: number | null;
  out: string;
  /** "N passed, N failed, N skipped" of the closing line */
  summary: { passed: number; failed: number; skipped: number; line: string };
}

/** Runs the runner's integration phase over these files (name → CommonJS source). */
function runner(files: Readonly<Record<string, string>>, suite = 'integration'): Promise<RunnerResult> {
  const dist = mkdtempSync(join(tmpdir(), 'tlscope-runner-test-'));
  dirs.push(dist);
  mkdirSync(join(dist, suite));
  for (const [name, body] of Object.entries(files)) writeFileSync(join(dist, suite, name), HEAD + body);
  const env: NodeJS.ProcessEnv = { ...process.env, TLSCOPE_TEST_DIST: dist, TLSCOPE_KERNELS: 'none' };
  delete env['NODE_TEST_CONTEXT']; // or the inner `node --test` reports to this one instead
  return new Promise((resolve, reject) => {
    // the filter (the fixture directory's name) also keeps a runner that ignored
    // TLSCOPE_TEST_DIST from running the real suites
    const child = spawn(process.execPath, [RUNNER, suite, dist], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const m = /^(\d+) passed, (\d+) failed, (\d+) skipped.*$/m.exec(out);
      if (m === null) {
        reject(new Error(`no closing line:\n${out}`));
        return;
      }
      resolve({ code, out, summary: { passed: Number(m[1]), failed: Number(m[2]), skipped: Number(m[3]), line: m[0] } });
    });
  });
}

test('runner: a suite where every test skipped fails the run, and says why', async () => {
  const r = await runner({
    'a.test.js': "test('needs root', { skip: 'needs root' }, () => {});\ntest('also', { skip: 'needs root' }, () => {});\n",
    'b.test.js': "test('needs go', { skip: 'no go toolchain' }, () => {});\n",
  });
  assert.equal(r.code, 1, r.out);
  assert.deepEqual([r.summary.passed, r.summary.failed, r.summary.skipped], [0, 0, 3], r.summary.line);
  assert.match(r.summary.line, /no test passed in integration/);
  assert.match(r.out, /# integration: no test passed \(3 skipped: 2× needs root; 1× no go toolchain\)/);
});

test('runner: one test passing with others skipped passes', async () => {
  const r = await runner({
    'a.test.js': "test('runs', () => {});\ntest('needs root', { skip: 'needs root' }, () => {});\n",
  });
  assert.equal(r.code, 0, r.out);
  assert.deepEqual([r.summary.passed, r.summary.failed, r.summary.skipped], [1, 0, 1], r.summary.line);
});

test('runner: failing hooks are failures (after at file level, after and before inside describe, before while tests skip)', async () => {
  const r = await runner({
    'a.test.js': "after(() => { throw new Error('after boom'); });\ntest('ok a', () => {});\n",
    'b.test.js': "describe('suite b', () => {\n  after(() => { throw new Error('after in describe'); });\n  test('ok b', () => {});\n});\n",
    'c.test.js': "describe('suite c', () => {\n  before(() => { throw new Error('before in describe'); });\n  test('never runs', () => {});\n});\n",
    'd.test.js': "before(() => { throw new Error('before boom'); });\ntest('skipped d', { skip: 'x' }, () => {});\n",
    'e.test.js': "test('ok e', () => {});\n",
  });
  assert.equal(r.code, 1, r.out);
  // a: the file; b: the suite; c: its test (cancelled, the suite not counted again); d: the test
  assert.equal(r.summary.failed, 4, `${r.summary.line}\n${r.out}`);
  assert.equal(r.summary.passed, 3, r.summary.line);
  assert.match(r.out, /# integration: 4 failed: .*a\.test\.js; suite b; never runs; skipped d \(its before hook failed\)/);
});

test('runner: a failing subtest is one failure, not two; a failing todo is none', async () => {
  const r = await runner({
    'a.test.js': [
      "test('parent', async (t) => { await t.test('child ok', () => {}); await t.test('child bad', () => { throw new Error('x'); }); });",
      "test('later', { todo: 'not yet' }, () => { throw new Error('todo'); });",
      "test('fine', () => {});",
    ].join('\n'),
  });
  assert.equal(r.code, 1, r.out);
  assert.equal(r.summary.failed, 1, `${r.summary.line}\n${r.out}`);
  assert.match(r.out, /# integration: 1 failed: child bad\n/);
});

test('runner: a file that dies is a failure', async () => {
  const r = await runner({
    'a.test.js': "test('ok', () => {});\n",
    'b.test.js': "test('dies', () => { process.exit(3); });\n",
  });
  assert.equal(r.code, 1, r.out);
  assert.ok(r.summary.failed >= 1, `${r.summary.line}\n${r.out}`);
});
