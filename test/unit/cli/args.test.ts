// SPDX-License-Identifier: Apache-2.0
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { helpText, int, list, parse, type OptionSpecs } from '../../../src/cli/args.js';
import { main } from '../../../src/cli/main.js';
import { UsageError } from '../../../src/errors.js';
import { summarizeVerifierLog } from '../../../src/ebpf/errors.js';

const specs: OptionSpecs = {
  containername: { type: 'string', short: 'c', arg: 'NAME', description: 'container', multiple: true },
  timeout: { type: 'string', arg: 'SECONDS', description: 'stop after' },
  host: { type: 'boolean', description: 'host only' },
};

test('repeatable, comma-separated lists', () => {
  const p = parse(['-c', 'a,b', '--containername', 'c', '--host'], specs, false);
  assert.deepEqual(list(p.values, 'containername'), ['a', 'b', 'c']);
  assert.equal(p.values.host, true);
});

test('bad flags and values are usage errors that name the flag', () => {
  assert.throws(() => parse(['--nope'], specs, false), (e: unknown) => e instanceof UsageError && /--nope/.test(e.message) && e.exitCode === 2);
  const p = parse(['--timeout', 'soon'], specs, false);
  assert.throws(() => int(p.values, 'timeout', { min: 1 }), /--timeout wants a whole number ≥ 1, got "soon"/);
});

test('help lists every option with its argument', () => {
  const h = helpText('tlscope x', 'Does x.', specs);
  assert.match(h, /-c, --containername NAME\s+container/);
  assert.match(h, /--timeout SECONDS\s+stop after/);
});

test('an unknown command is a usage error with a hint', async () => {
  const sink = { write: () => true };
  const ctx = { out: sink, err: sink, verbose: false, signal: new AbortController().signal };
  await assert.rejects(main(['trace', 'nope'], ctx), (e: unknown) => e instanceof UsageError && /unknown command "trace nope"/.test(e.message));
});

test('verifier log summary: the reason after the last instruction, with the source line', () => {
  const log = [
    "libbpf: prog 'p': BPF program load failed: Permission denied",
    "libbpf: prog 'p': -- BEGIN PROG LOAD LOG --",
    '; return *(v + 4); @ x.bpf.c:74',
    '8: (79) r6 = *(u64 *)(r0 +32)',
    'invalid access to map value, value_size=8 off=32 size=8',
    'R0 min value is outside of the allowed memory range',
    'processed 8 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0',
    '-- END PROG LOAD LOG --',
  ].join('\n');
  assert.equal(
    summarizeVerifierLog(log),
    'invalid access to map value, value_size=8 off=32 size=8; R0 min value is outside of the allowed memory range (at x.bpf.c:74: return *(v + 4);)',
  );
});
